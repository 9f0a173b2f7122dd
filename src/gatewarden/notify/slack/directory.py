"""Who may approve: Slack user ids, or members of a Slack user group (cached with a TTL).

A playbook's approvers may list user ids (``U0123ABCD``) and user group ids (``S0123ABCD``);
:class:`SlackGroupMap` lets the remediation engine expand ``group:S0123ABCD`` at request time.
Group members come from ``usergroups.users.list`` (scope ``usergroups:read``) and are cached for
``ttl_s`` on the injected clock, so a burst of clicks costs one lookup. A lookup that fails
counts as "not a member": refusing an approval is safe (the CLI still works), granting on a
guess is not.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

from slack_sdk import WebClient

from gatewarden.errors import NotifyRejected, NotifyRetryable
from gatewarden.notify.slack.api import call
from gatewarden.protocols import Clock

log = logging.getLogger(__name__)

USER_GROUP = re.compile(r"^S[A-Z0-9]{6,}$")


def is_user_group(entry: str) -> bool:
    return bool(USER_GROUP.match(entry))


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

    def allowed(self, user: str, approvers: Iterable[str]) -> bool:
        """True if ``user`` is listed, or belongs to a listed user group."""
        entries = list(approvers)
        if user in entries:
            return True
        for entry in entries:
            if is_user_group(entry):
                members = self.members(entry)
                if members is not None and user in members:
                    return True
        return False


class SlackGroupMap(Mapping[str, Sequence[str]]):
    """Slack user groups as the remediation engine's ``approver_groups`` mapping.

    A playbook approver ``group:S0123ABCD`` then resolves, when the approval is requested, to
    the group's members at that moment; the engine persists them with the request and counts
    the quorum over them. Combine with configured groups through ``collections.ChainMap``.
    A group Slack cannot list is missing (KeyError), which the engine treats as "nobody".
    """

    def __init__(self, directory: ApproverDirectory) -> None:
        self._directory = directory

    def __getitem__(self, group: str) -> Sequence[str]:
        members = self._directory.members(group) if is_user_group(group) else None
        if members is None:
            raise KeyError(group)
        return sorted(members)

    def __iter__(self) -> Iterator[str]:
        return iter(self._directory.cached_groups())

    def __len__(self) -> int:
        return len(self._directory.cached_groups())
