"""Slack interactions: Approve / Deny / reason / Snooze clicks, verified and recorded.

They arrive at ``POST /slack/interactions`` (every request is checked first: signature,
five-minute window, replay memory: :mod:`.signing`; then the ``payload`` form field is parsed)
or over Socket Mode (:mod:`.socket_mode`, where the connection opened with the app-level token
is the authentication); both hand the payload to :meth:`SlackInteractions.handle_payload`.
A decision is recorded synchronously with
:func:`gatewarden.remediate.approvals.record_decision`, which validates the approver (one rule
with the engine and the console, Slack user groups included) and is idempotent per
(run, step, person), so a double click records once. The work before the answer
is small (one read of the run's events, one append, a user-group lookup that is cached), well
inside Slack's 3 s; feedback to the clicker (an ephemeral message) and ``views.open`` run after
the answer. The thread itself is updated by the notify stage from the recorded events, so the
event log stays the only source of what Slack shows.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from slack_sdk import WebClient
from starlette.background import BackgroundTasks
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gatewarden.errors import NotifyRejected, NotifyRetryable
from gatewarden.models import ApprovalDecision, EventType
from gatewarden.notify.approval_view import approval_views
from gatewarden.notify.messages import APPROVE, DENY, fmt_time
from gatewarden.notify.slack.api import call
from gatewarden.notify.slack.blocks import REASON, SNOOZE
from gatewarden.notify.slack.directory import ApproverDirectory, SlackGroupMap
from gatewarden.notify.slack.modal import CALLBACK_ID, parse_submission, reason_modal
from gatewarden.notify.slack.signing import RequestVerifier
from gatewarden.notify.slack.snooze import SnoozeRefused, snooze_incident
from gatewarden.protocols import Clock, Store
from gatewarden.remediate.approvals import ApprovalRefused, record_decision

log = logging.getLogger(__name__)

PATH = "/slack/interactions"
MAX_BODY = 256 * 1024  # block_actions carry the whole message; Slack keeps them far smaller
_DECISIONS = {APPROVE: ApprovalDecision.GRANTED, DENY: ApprovalDecision.DENIED}


@dataclass
class Outcome:
    """The HTTP answer, and what to do once it is sent."""

    status: int = 200
    body: dict[str, Any] | None = None
    later: list[Callable[[], None]] = field(default_factory=list)


class SlackInteractions:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        verifier: RequestVerifier | None,
        client: WebClient,
        directory: ApproverDirectory,
        *,
        team_id: str | None = None,
        snooze_s: float = 3600.0,
    ) -> None:
        """``verifier`` None: no HTTP endpoint (Socket Mode only), so :meth:`handle` refuses."""
        self._store = store
        self._clock = clock
        self.verifier = verifier
        self._client = client
        self.directory = directory
        self.groups = SlackGroupMap(directory)
        self.team_id = team_id
        self.snooze_s = snooze_s
        self.refused: Counter[str] = Counter()
        self.recorded: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"SlackInteractions(team_id={self.team_id!r}, snooze_s={self.snooze_s!r})"

    def stats(self) -> dict[str, float]:
        """Counters for the daemon's self-metrics (``StatusSnapshot.extra``)."""
        rejections = self.verifier.rejections if self.verifier is not None else {}
        out = {f"slack_requests_rejected_{k}": float(v) for k, v in rejections.items()}
        out.update({f"slack_interactions_refused_{k}": float(v) for k, v in self.refused.items()})
        out.update({f"slack_interactions_{k}": float(v) for k, v in self.recorded.items()})
        out["slack_usergroup_lookups"] = float(self.directory.lookups)
        out["slack_usergroup_lookup_failures"] = float(self.directory.failures)
        return out

    # -- entry point ------------------------------------------------------------------------
    def handle(self, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """One ``POST /slack/interactions``: verified, then :meth:`handle_payload`."""
        if self.verifier is None:
            return self._refuse("no_endpoint", 404, "HTTP interactions are off (Socket Mode)")
        if len(body) > MAX_BODY:
            return self._refuse("too_large", 413, f"body over {MAX_BODY} bytes")
        why = self.verifier.check(body, headers)
        if why is not None:
            return Outcome(401, {"error": why.value})
        try:
            payload = _payload(body)
        except ValueError as exc:
            return self._refuse("malformed", 400, str(exc))
        return self.handle_payload(payload)

    def handle_payload(self, payload: Mapping[str, Any]) -> Outcome:
        """An authenticated interaction payload, from either transport."""
        user = _dig(payload, "user", "id")
        team = _dig(payload, "team", "id") or _dig(payload, "user", "team_id")
        if self.team_id and team != self.team_id:
            return self._refuse("wrong_team", 403, f"team {team!r}")
        if not user:
            return self._refuse("malformed", 400, "no user")
        kind = payload.get("type")
        if kind == "block_actions":
            return self._actions(payload, user)
        if kind == "view_submission" and _dig(payload, "view", "callback_id") == CALLBACK_ID:
            return self._submission(payload, user)
        return Outcome()  # acknowledged; nothing of ours (e.g. a view closing)

    def _refuse(self, why: str, status: int, detail: str) -> Outcome:
        self._note(why, detail)
        return Outcome(status, {"error": why})

    def _note(self, why: str, detail: str) -> None:
        self.refused[why] += 1
        log.warning("refused Slack interaction (%s): %s", why, detail)

    # -- block_actions ----------------------------------------------------------------------
    def _actions(self, payload: Mapping[str, Any], user: str) -> Outcome:
        channel = _dig(payload, "channel", "id") or _dig(payload, "container", "channel_id")
        outcome = Outcome()
        actions = payload.get("actions") or []
        if not isinstance(actions, list):
            return self._refuse("malformed", 400, f"actions is a {type(actions).__name__}")
        for action in actions[:5]:
            action_id = str(action.get("action_id", "")) if isinstance(action, dict) else ""
            value = _button_value(action)
            if value is None:
                self._note("malformed", f"action {action_id!r} without a JSON value")
                continue
            if action_id in _DECISIONS:
                step = _int(value.get("step"))
                run_id = str(value.get("run_id") or "")
                if step is None or not run_id:
                    self._note("malformed", "decision without run or step")
                    continue
                _ok, text = self.decide(run_id, step, _DECISIONS[action_id], user, "")
                outcome.later.append(self._ephemeral(channel, user, text))
            elif action_id == REASON:
                step = _int(value.get("step"))
                trigger = str(payload.get("trigger_id") or "")
                if step is not None and trigger:
                    try:
                        view = reason_modal(str(value.get("run_id", "")), step, channel=channel)
                    except ValueError as exc:  # a run id too long for the modal's metadata
                        self._note("malformed", str(exc))
                        continue
                    outcome.later.append(self._open_view(trigger, view))
            elif action_id == SNOOZE:
                text = self.snooze(str(value.get("incident_id") or ""), user)
                outcome.later.append(self._ephemeral(channel, user, text))
        return outcome

    def _submission(self, payload: Mapping[str, Any], user: str) -> Outcome:
        try:
            sub = parse_submission(payload.get("view"))
        except ValueError as exc:
            return self._refuse("malformed", 400, str(exc))
        ok, text = self.decide(sub.run_id, sub.step, sub.decision, user, sub.reason)
        if not ok:
            return Outcome(200, {"response_action": "errors", "errors": {"decision": text}})
        return Outcome(
            200, {"response_action": "clear"}, [self._ephemeral(sub.channel, user, text)]
        )

    # -- the decisions ------------------------------------------------------------------------
    def decide(
        self, run_id: str, step: int, decision: ApprovalDecision, user: str, reason: str
    ) -> tuple[bool, str]:
        """Record ``user``'s decision; (recorded or already recorded, text for the user)."""
        events = self._store.events(run_id=run_id)
        gate = approval_views(events).get(step)
        if gate is None:
            self.refused["unknown_step"] += 1
            return False, f"Not allowed: run {run_id} has no approval at step {step}."
        decided = (EventType.APPROVAL_GRANTED, EventType.APPROVAL_DENIED)
        prior = next(
            (
                e
                for e in events
                if e.type in decided
                and e.payload.get("step") == step
                and e.payload.get("by") == user
            ),
            None,
        )
        try:
            event = record_decision(
                self._store,
                run_id=run_id,
                step=step,
                decision=decision,
                by=user,
                reason=reason,
                now=self._clock.now(),
                live_groups=self.groups,
            )
        except ApprovalRefused as exc:
            self.refused["not_allowed"] += 1
            log.warning("Slack decision by %s on %s step %d refused: %s", user, run_id, step, exc)
            return False, f"Not allowed: {exc}."
        verb = "approved" if event.type is EventType.APPROVAL_GRANTED else "denied"
        if prior is not None:
            self.recorded["repeated"] += 1
            return True, f"You already {verb} step {step} of {run_id}; nothing changed."
        self.recorded[verb] += 1
        log.info("step %d of %s %s by %s via Slack", step, run_id, verb, user)
        tally = approval_views(self._store.events(run_id=run_id)).get(step)
        count = f" ({len(tally.granted)} of {tally.quorum} approvals)" if tally else ""
        return True, f"Recorded: you {verb} step {step} of {run_id}{count}."

    def snooze(self, incident_id: str, user: str) -> str:
        try:
            silence = snooze_incident(
                self._store,
                incident_id=incident_id,
                by=user,
                duration_s=self.snooze_s,
                now=self._clock.now(),
            )
        except SnoozeRefused as exc:
            self.refused["snooze"] += 1
            return f"Cannot snooze: {exc}."
        self.recorded["snoozed"] += 1
        log.info("incident %s snoozed by %s via Slack (%s)", incident_id, user, silence.id)
        return f"Snoozed {incident_id} until {fmt_time(silence.ends_at)} ({silence.id})."

    # -- after the answer -----------------------------------------------------------------------
    def _ephemeral(self, channel: str | None, user: str, text: str) -> Callable[[], None]:
        def send() -> None:
            if not channel:
                return
            self._best_effort(
                "chat.postEphemeral",
                lambda: call(
                    "chat.postEphemeral",
                    lambda: self._client.chat_postEphemeral(channel=channel, user=user, text=text),
                ),
            )

        return send

    def _open_view(self, trigger_id: str, view: dict[str, Any]) -> Callable[[], None]:
        def send() -> None:
            self._best_effort(
                "views.open",
                lambda: call(
                    "views.open", lambda: self._client.views_open(trigger_id=trigger_id, view=view)
                ),
            )

        return send

    @staticmethod
    def _best_effort(what: str, fn: Callable[[], object]) -> None:
        # Feedback only: the decision is already in the event log and the thread will show it.
        try:
            fn()
        except (NotifyRejected, NotifyRetryable) as exc:
            log.warning("Slack %s failed: %s", what, exc)


def _payload(body: bytes) -> dict[str, Any]:
    form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    raw = form.get("payload")
    if not raw:
        raise ValueError("no payload field")
    try:
        payload = json.loads(raw[-1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"payload is not JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        # An int literal past 4300 digits, or nesting deeper than the interpreter allows.
        raise ValueError(f"payload is not usable JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    return payload


def _dig(data: Mapping[str, Any], *path: str) -> str | None:
    node: Any = data
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return str(node) if isinstance(node, str | int) and node != "" else None


def _button_value(action: object) -> dict[str, Any] | None:
    """The JSON object our buttons carry in ``value``; None for anything else."""
    raw = action.get("value") if isinstance(action, dict) else None
    try:
        value = json.loads(str(raw or "{}"))
    except (ValueError, RecursionError):  # bad JSON, int literals past 4300 digits, deep nesting
        return None
    return value if isinstance(value, dict) else None


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # isdecimal, not isdigit: int() refuses "²"; and a step never needs 19 digits.
    if isinstance(value, str) and value.isdecimal() and len(value) <= 18:
        return int(value)
    return None


def slack_routes(interactions: SlackInteractions, *, path: str = PATH) -> list[BaseRoute]:
    """The route to mount on the daemon's web app. It authenticates by Slack's signature, not
    the daemon's bearer token (Slack cannot send one)."""

    async def endpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY:
                break  # handle() refuses it; no need to read the rest
        outcome = await run_in_threadpool(interactions.handle, bytes(body), dict(request.headers))
        tasks = BackgroundTasks()
        for job in outcome.later:
            tasks.add_task(job)
        if outcome.body is None:
            return Response(status_code=outcome.status, background=tasks)
        return JSONResponse(outcome.body, status_code=outcome.status, background=tasks)

    return [Route(path, endpoint, methods=["POST"])]
