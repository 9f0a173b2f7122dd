"""Which channel an incident's thread lives in: ordered rules on scope labels and severity.

The first matching rule wins; no match goes to the default channel. Only the root is routed:
every follow-up joins the root's thread wherever it landed, so an incident stays in one place
even when its severity later changes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from gatewarden.models import Message, Severity
from gatewarden.notify.messages import meta_of


class RouteRule(BaseModel):
    """``{match: {team: search}, min_severity: critical, channel: C0SEARCHONCALL}``"""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: str = Field(min_length=1, description="channel id (preferred) or #name")
    match: dict[str, str] = Field(
        default_factory=dict,
        description="incident scope labels; values are globs (openai, gpt-4*, *); all must match",
    )
    min_severity: Severity | None = Field(default=None, description="route only at or above")
    kinds: list[str] = Field(default_factory=list, description="any of these kinds (empty: any)")

    def matches(self, scope: Mapping[str, str], severity: Severity, kinds: Sequence[str]) -> bool:
        if self.min_severity is not None and severity.rank < self.min_severity.rank:
            return False
        if self.kinds and not set(self.kinds) & set(kinds):
            return False
        return all(
            label in scope and fnmatch.fnmatchcase(scope[label], pattern)
            for label, pattern in self.match.items()
        )


class Router:
    def __init__(self, default: str, rules: Sequence[RouteRule] = ()) -> None:
        self.default = default
        self.rules = tuple(rules)

    def channel_for(self, message: Message) -> str:
        """The channel of a top-level message (incident roots carry scope and severity)."""
        meta = meta_of(message)
        scope = meta.get("scope")
        if not isinstance(scope, Mapping):
            return self.default
        labels = {str(k): str(v) for k, v in scope.items()}
        try:
            severity = Severity(str(meta.get("severity", message.severity.value)))
        except ValueError:
            severity = message.severity
        kinds = [str(k) for k in meta.get("kinds") or []]
        for rule in self.rules:
            if rule.matches(labels, severity, kinds):
                return rule.channel
        return self.default
