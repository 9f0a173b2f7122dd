from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from slack_sdk import WebClient

from gatewarden.clock import VirtualClock
from gatewarden.errors import ConfigError, NotifyRejected, NotifyRetryable
from gatewarden.models import Event, EventType, Message, Severity
from gatewarden.notify.config import NotifyConfig, SlackConfig, build_notifiers
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.messages import UPDATE_KIND, root_message_id
from gatewarden.notify.outbox import NotifyStage
from gatewarden.notify.slack import SlackNotifier, build_blocks
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.blockkit import validate_blocks
from tests.notify.factory import INCIDENT, RUN, T0, lifecycle
from tests.notify.slack_standin import CHANNEL_ID, CHANNEL_NAME, SlackStandin
from tests.notify.slackkit import TOKEN, tick


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin(TOKEN) as standin:
        yield standin


def notifier(standin: SlackStandin, token: str = TOKEN) -> SlackNotifier:
    return SlackNotifier(token, CHANNEL_NAME, base_url=standin.base_url)


def of_type(store: SQLiteStore, type_: EventType) -> list[Event]:
    return store.events(types=[type_.value])


def queued(store: SQLiteStore, *, updates: bool) -> list[str]:
    """Queued message ids, in queue order: the posts, or the in-place rewrites."""
    out = []
    for q in of_type(store, EventType.NOTIFICATION_QUEUED):
        message = q.payload["message"]
        if (message["kind"] == UPDATE_KIND) is updates:
            out.append(str(message["id"]))
    return out


def test_post_with_blocks_buttons_and_thread_replies(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    NotifyStage(store, [notifier(slack)], clock).run(tick(clock, store.append(lifecycle())))
    posts = slack.posts()
    assert len(posts) == 12
    root = posts[0]
    assert root.headers["Authorization"] == f"Bearer {TOKEN}"
    assert root.params["channel"] == CHANNEL_NAME and "thread_ts" not in root.params
    blocks = root.params["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"].startswith(":warning: WARNING incident opened: error_rate")
    fields = [f["text"] for b in blocks if b["type"] == "section" for f in b.get("fields", [])]
    assert "*Observed*\n0.31" in fields and "*Baseline*\n0.01" in fields
    assert blocks[-1]["type"] == "context"
    root_ts = root.response["ts"]
    assert all(p.params["thread_ts"] == root_ts for p in posts[1:])
    assert all(p.params["channel"] == CHANNEL_ID for p in posts[1:])
    delivered = of_type(store, EventType.NOTIFICATION_DELIVERED)
    assert delivered[0].payload["ref"] == f"{CHANNEL_ID}:{root_ts}"

    approval = next(p for p in posts if p.params["text"].startswith("WARNING approval needed"))
    actions = next(b for b in approval.params["blocks"] if b["type"] == "actions")
    buttons = actions["elements"]
    assert [b["action_id"] for b in buttons] == ["approve", "deny", "reason"]
    assert [b.get("style") for b in buttons] == ["primary", "danger", None]
    assert all(json.loads(b["value"]) == {"run_id": RUN, "step": "0"} for b in buttons)
    assert "confirm" in buttons[0] and "confirm" in buttons[1]


def test_outage_then_recovery_delivers_everything_once_in_order(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    stage = NotifyStage(store, [notifier(slack)], clock, base_backoff_s=5, max_backoff_s=60)
    slack.fail_next(4, status=503)
    events = store.append(lifecycle())
    stage.run(tick(clock, events))
    for _ in range(10):
        clock.advance(60)
        stage.run(tick(clock))
    assert slack.posted_ids() == queued(store, updates=False)
    assert len(set(slack.posted_ids())) == 12
    rewrites = queued(store, updates=True)
    assert len(rewrites) >= 2 and len(slack.ok_calls("chat.update")) == len(rewrites)
    failed = of_type(store, EventType.NOTIFICATION_FAILED)
    assert len(failed) == 4 and all(f.payload["retryable"] for f in failed)
    assert [f.payload["attempt"] for f in failed] == [1, 2, 3, 4]
    assert stage.pending() == []


def test_rate_limit_honours_retry_after(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    stage = NotifyStage(store, [notifier(slack)], clock, base_backoff_s=1)
    slack.rate_limit_next(1, retry_after=30)
    stage.run(tick(clock, store.append(lifecycle()[:2])))
    failed = of_type(store, EventType.NOTIFICATION_FAILED)
    assert failed[0].payload["next_attempt_at"] == T0 + 30
    assert "429" in failed[0].payload["error"]
    calls = len(slack.calls)
    for _ in range(29):
        clock.advance(1)
        stage.run(tick(clock))
    assert len(slack.calls) == calls  # not one attempt before Retry-After elapsed
    clock.advance(1)
    stage.run(tick(clock))
    assert slack.posted_ids() == [root_message_id(INCIDENT)]


def test_invalid_auth_is_rejected_and_never_retried(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    stage = NotifyStage(store, [notifier(slack, token="xoxb-wrong-token-000")], clock)
    stage.run(tick(clock, store.append(lifecycle()[:2])))
    failed = of_type(store, EventType.NOTIFICATION_FAILED)
    assert len(failed) == 1 and failed[0].payload["retryable"] is False
    assert "invalid_auth" in failed[0].payload["error"]
    calls = len(slack.calls)
    clock.advance(3600)
    stage.run(tick(clock))
    assert len(slack.calls) == calls


def test_error_mapping(slack: SlackStandin) -> None:
    message = Message(id="m1", incident_id=None, ts=T0, kind="x", title="t")
    bad_channel = SlackNotifier(TOKEN, "#nowhere", base_url=slack.base_url)
    with pytest.raises(NotifyRejected, match="channel_not_found"):
        bad_channel.deliver(message)
    slack.fail_next(1, status=500)
    with pytest.raises(NotifyRetryable, match="HTTP 500"):
        notifier(slack).deliver(message)
    unreachable = SlackNotifier(TOKEN, CHANNEL_NAME, base_url="http://127.0.0.1:9/api/")
    with pytest.raises(NotifyRetryable):
        unreachable.deliver(message)


class CrashAfterPost(SQLiteStore):
    """The process dies right after Slack accepted a post, before the delivery is recorded."""

    crash = True

    def append(self, events: Sequence[Event]) -> list[Event]:
        if self.crash and any(e.type is EventType.NOTIFICATION_DELIVERED for e in events):
            self.crash = False
            raise KeyboardInterrupt("simulated crash")
        return super().append(events)


def test_crash_between_post_and_record_does_not_double_post(
    slack: SlackStandin, tmp_path: Path
) -> None:
    path = f"{tmp_path}/events.db"
    store, clock = CrashAfterPost(path), VirtualClock(T0)
    slack_notifier = SlackNotifier(TOKEN, CHANNEL_ID, base_url=slack.base_url)
    with pytest.raises(KeyboardInterrupt):
        NotifyStage(store, [slack_notifier], clock).run(tick(clock, store.append(lifecycle()[:5])))
    assert len(slack.posts()) == 1 and of_type(store, EventType.NOTIFICATION_DELIVERED) == []
    store.close()

    reopened = SQLiteStore(path)  # the restarted daemon
    fresh = SlackNotifier(TOKEN, CHANNEL_ID, base_url=slack.base_url)
    NotifyStage(reopened, [fresh], clock).run(tick(clock))
    assert slack.posted_ids() == queued(reopened, updates=False)
    delivered = of_type(reopened, EventType.NOTIFICATION_DELIVERED)
    assert delivered[0].payload["detail"] == "reconciled"
    assert len(delivered) == 3 + len(queued(reopened, updates=True))


def test_crash_with_a_notifier_that_cannot_reconcile_redelivers_once(tmp_path: Path) -> None:
    path = f"{tmp_path}/events.db"
    store, clock, out = CrashAfterPost(path), VirtualClock(T0), io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        NotifyStage(store, [ConsoleNotifier(out)], clock).run(
            tick(clock, store.append(lifecycle()[:2]))
        )
    store.close()
    reopened = SQLiteStore(path)
    NotifyStage(reopened, [ConsoleNotifier(out)], clock).run(tick(clock))
    # Outcome unknown → at-least-once: the root line appears twice, never more.
    assert len(out.getvalue().splitlines()) == 2
    NotifyStage(reopened, [ConsoleNotifier(out)], clock).run(tick(clock))
    assert len(out.getvalue().splitlines()) == 2


def test_chat_update(slack: SlackStandin) -> None:
    slack_notifier = notifier(slack)
    message = Message(
        id="m1",
        incident_id=INCIDENT,
        ts=T0,
        kind="incident.opened",
        title="t",
        severity=Severity.CRITICAL,
    )
    ref = slack_notifier.deliver(message).ref
    assert ref is not None
    resolved = message.model_copy(update={"title": "t (resolved)", "severity": Severity.INFO})
    assert slack_notifier.update(ref, resolved).ref == ref
    assert slack.messages[0]["text"] == "INFO t (resolved)"
    assert slack.calls[-1].method == "chat.update"


def test_blocks_respect_slack_limits() -> None:
    message = Message(
        id="m",
        incident_id="i",
        ts=T0,
        kind="k",
        title="x" * 500,
        text="<&>" * 2000,
        fields={f"f{i}": "v" for i in range(20)},
    )
    blocks = build_blocks(message)
    assert validate_blocks(blocks) == []
    assert len(blocks[0]["text"]["text"]) <= 150
    assert len(blocks[1]["text"]["text"]) <= 3000 and "&lt;&amp;&gt;" in blocks[1]["text"]["text"]
    assert [len(b["fields"]) for b in blocks[2:4]] == [10, 10]  # twenty fields, two sections


def test_token_never_leaks(slack: SlackStandin, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    good = notifier(slack)
    stage = NotifyStage(store, [good], clock, base_backoff_s=1)
    slack.fail_next(1, status=502)
    slack.rate_limit_next(1, retry_after=1)
    stage.run(tick(clock, store.append(lifecycle())))
    for _ in range(5):
        clock.advance(5)
        stage.run(tick(clock))
    errors: list[str] = []
    message = Message(id="z", incident_id=None, ts=T0, kind="x", title="t")
    slack.fail_next(1, status=503)
    for target in (notifier(slack), SlackNotifier(TOKEN, "#nowhere", base_url=slack.base_url)):
        with pytest.raises((NotifyRejected, NotifyRetryable)) as caught:
            target.deliver(message)
        exc = caught.value
        errors.append(f"{exc!s} {exc!r} {exc.__cause__!r} {exc.__context__!r}")
    assert len(errors) == 2
    assert len(slack.posts()) == 12
    assert all(TOKEN not in call.body for call in slack.calls)
    assert TOKEN not in caplog.text
    assert all(TOKEN not in e for e in errors)
    assert TOKEN not in repr(good) and TOKEN not in str(vars(good))
    assert all(TOKEN not in json.dumps(e.payload) for e in store.events())


def test_injected_client_gets_retries_disabled() -> None:
    client = WebClient(base_url="http://127.0.0.1:9/api/")
    assert client.retry_handlers  # slack-sdk retries connection errors by default
    SlackNotifier(TOKEN, CHANNEL_ID, client=client)
    assert client.retry_handlers == [] and client.token == TOKEN


def test_build_notifiers_from_config() -> None:
    out = io.StringIO()
    cfg = NotifyConfig(slack=SlackConfig(channel=CHANNEL_ID, base_url="http://127.0.0.1:9/api/"))
    built = build_notifiers(cfg, {"GATEWARDEN_SLACK_TOKEN": TOKEN}, out)
    assert [n.name for n in built] == ["console", "slack"]
    with pytest.raises(ConfigError, match="GATEWARDEN_SLACK_TOKEN"):
        build_notifiers(cfg, {}, out)
    assert build_notifiers(NotifyConfig(), {}, out)[0].name == "console"
    with pytest.raises(ValueError):
        NotifyConfig.model_validate({"slack": {"channel": "C1", "token": TOKEN}})
