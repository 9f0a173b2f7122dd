"""Slack user groups as approvers: members looked up with ``usergroups.users.list``, cached.

A playbook's approvers may name a Slack user group (``group:S0123ABCD`` or the bare id
``S0123ABCD``). Who may decide is one rule (:func:`gatewarden.remediate.approvals.approver_entry`)
used by the engine, Slack, the console and the CLI alike:

* when the approval is requested, the engine expands every group through
  :class:`ApproverGroups` (config groups first, then Slack's) and persists the members;
* a Slack group that could not be listed then stays in the list as itself, and its members are
  asked again (:class:`SlackGroupMap`) when one of them decides.

Members come from ``usergroups.users.list`` (scope ``usergroups:read``) and are cached for
``ttl_s`` on the wall clock (the cache spares Slack's rate limits, which run on real time even
when the daemon runs simulated time), so a burst of clicks costs one lookup. A lookup that fails
counts as "not a member": refusing an approval is safe (the CLI still works), granting on a
guess is not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence

from slack_sdk import WebClient

from gatewarden.errors import NotifyRejected, NotifyRetryable
from gatewarden.notify.slack.api import call
from gatewarden.protocols import Clock
from gatewarden.remediate.runlog import SLACK_USER_GROUP

log = logging.getLogger(__name__)


def is_user_group(entry: str) -> bool:
    return bool(SLACK_USER_GROUP.match(entry))


class ApproverDirectory:
    def __init__(self, client: WebClient, clock: Clock, *, ttl_s: float = 300.0) -> None:
        self._client = client
        self._clock = clock
        self.ttl_s = ttl_s
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()
        self.lookups = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"ApproverDirectory(ttl_s={self.ttl_s!r}, groups={len(self._groups)})"

    def members(self, group: str) -> frozenset[str] | None:
        """The group's members (cached), or None when Slack could not tell us."""
        now = self._clock.now()
        with self._lock:
            cached = self._groups.get(group)
            if cached is not None and now - cached[0] < self.ttl_s:
                return cached[1]
        self.lookups += 1
        try:
            response = call(
                "usergroups.users.list",
                lambda: self._client.usergroups_users_list(usergroup=group),
            )
        except (NotifyRejected, NotifyRetryable) as exc:
            self.failures += 1
            log.warning("cannot list members of user group %s: %s", group, exc)
            return None
        users = frozenset(str(u) for u in response.get("users") or [])
        with self._lock:
            self._groups[group] = (now, users)
        return users

    def cached_groups(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)


class SlackGroupMap(Mapping[str, Sequence[str]]):
    """Slack user groups as a mapping: group id -> its members now (cached).

    Only Slack user-group ids are keys; a group Slack cannot list is missing (KeyError), which
    the approval rule treats as "nobody". ``get`` costs one lookup (``Mapping.get`` goes
    through ``__getitem__`` once; ``ChainMap.get`` would look up twice).
    """

    def __init__(self, directory: ApproverDirectory) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"SlackGroupMap({self.directory!r})"

    def __getitem__(self, group: str) -> Sequence[str]:
        members = self.directory.members(group) if is_user_group(group) else None
        if members is None:
            raise KeyError(group)
        return sorted(members)

    def __iter__(self) -> Iterator[str]:
        return iter(self.directory.cached_groups())

    def __len__(self) -> int:
        return len(self.directory.cached_groups())


class ApproverGroups(Mapping[str, Sequence[str]]):
    """The engine's ``approver_groups``: ``remediate.approver_groups`` from the config first,
    then Slack user groups (when Slack is configured). Kept live by the engine, so a Slack
    group is listed when an approval is requested, not when the daemon starts."""

    def __init__(
        self, configured: Mapping[str, Sequence[str]], slack: SlackGroupMap | None = None
    ) -> None:
        self._configured = dict(configured)
        self.slack = slack

    def __repr__(self) -> str:
        return f"ApproverGroups(configured={sorted(self._configured)}, slack={self.slack!r})"

    def __getitem__(self, name: str) -> Sequence[str]:
        if name in self._configured:
            return self._configured[name]
        if self.slack is None:
            raise KeyError(name)
        return self.slack[name]

    def __iter__(self) -> Iterator[str]:
        slack = list(self.slack) if self.slack is not None else []
        return iter(dict.fromkeys([*self._configured, *slack]))

    def __len__(self) -> int:
        return sum(1 for _ in self)
