"""Leader election over the store's lease, and fencing of gateway actions.

Two daemons share one PostgreSQL store; each calls :meth:`LeaderElector.tick` at the start of
every pipeline tick. The lease row hands out a fencing token that grows on every change of
hands, so "am I still the leader?" has a precise answer: my token is still the current one and
my lease has not run out on my clock.

Choosing ``ttl_s``: the leader renews once per tick, so the lease must outlive one tick
(``ttl_s > tick_s``, with room for a late tick); and the standby should lead within two of its
own ticks after the leader's first missed renewal, whatever the phase between the replicas'
tick schedules, which holds when ``ttl_s < 2 * tick_s``. :func:`ttl_for` gives ``1.5 * tick_s``.

Fencing: the gateway's admin API knows nothing of tokens, so :class:`FencedGateway` checks the
token in the store right before each ``apply`` and refuses (``LeaseLostError``) if another
replica has taken over or the lease has run out. The window left between that check and the
call is bounded by ``margin_s``: an ``apply`` is only started while at least ``margin_s`` of
lease remains, so set it to the gateway call timeout.
"""

from __future__ import annotations

import logging
from typing import Protocol

from gatewarden.errors import LeaseLostError, StoreError
from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction
from gatewarden.protocols import Clock, GatewayAdmin

log = logging.getLogger(__name__)

#: Default lease name of the daemon's leadership.
LEADER_LEASE = "gatewarden.leader"


def ttl_for(tick_s: float) -> float:
    """A lease TTL that survives one renewal tick and expires within two."""
    return 1.5 * tick_s


class LeaseStore(Protocol):
    """The part of the Store protocol leadership needs."""

    def lease(self, name: str, holder: str, ttl: float, now: float) -> int | None: ...

    def lease_token(self, name: str) -> int | None: ...


class LeaderElector:
    """Takes or renews the lease ``name`` for ``holder`` on every :meth:`tick`.

    ``holder`` must be unique per replica (e.g. ``hostname:pid``): two replicas with the same
    holder would both believe they lead.
    """

    def __init__(
        self,
        store: LeaseStore,
        name: str,
        holder: str,
        ttl_s: float,
        clock: Clock,
        *,
        margin_s: float = 0.0,
    ) -> None:
        if not ttl_s > margin_s >= 0:
            raise ValueError("need ttl_s > margin_s >= 0")
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self.clock = clock
        self.margin_s = margin_s
        self.last_error = ""
        self._token: int | None = None
        self._expires = float("-inf")

    @property
    def token(self) -> int | None:
        """The fencing token of the last successful take/renew, None while standing by."""
        return self._token

    @property
    def is_leader(self) -> bool:
        return self._token is not None and self.clock.now() <= self._expires

    def tick(self) -> int | None:
        """Renew (or take) the lease; the fencing token while leader, else None.

        A store failure counts as not leading (fail closed): the caller must not act on a
        lease it could not confirm.
        """
        now = self.clock.now()
        try:
            token = self.store.lease(self.name, self.holder, self.ttl_s, now)
        except StoreError as exc:
            self.last_error = str(exc)
            token = None
            log.warning("lease %s: cannot renew, standing by: %s", self.name, exc)
        else:
            self.last_error = ""
        if token != self._token:
            if token is None:
                log.warning(
                    "lease %s: %s lost leadership (token %s)", self.name, self.holder, self._token
                )
            else:
                log.info("lease %s: %s leads with token %d", self.name, self.holder, token)
        self._token = token
        self._expires = now + self.ttl_s if token is not None else float("-inf")
        return token

    def check(self) -> int:
        """The fencing token if this replica may act right now; LeaseLostError otherwise."""
        token = self._token
        now = self.clock.now()
        if token is None:
            raise LeaseLostError(f"lease {self.name}: {self.holder} is not the leader")
        if now + self.margin_s > self._expires:
            raise LeaseLostError(
                f"lease {self.name}: token {token} of {self.holder} expires at "
                f"{self._expires:.3f}, too soon to act at {now:.3f}"
            )
        try:
            current = self.store.lease_token(self.name)
        except StoreError as exc:
            raise LeaseLostError(f"lease {self.name}: cannot confirm token {token}: {exc}") from exc
        if current != token:
            self._token, self._expires = None, float("-inf")
            raise LeaseLostError(
                f"lease {self.name}: token {token} of {self.holder} superseded by {current}"
            )
        return token


class FencedGateway:
    """A GatewayAdmin that only lets the current leader change the gateway.

    ``plan`` only reads the gateway and passes through; ``apply`` first confirms the lease
    (:meth:`LeaderElector.check`) and raises LeaseLostError, without calling, when fenced.
    """

    def __init__(self, inner: GatewayAdmin, elector: LeaderElector) -> None:
        self.inner = inner
        self.elector = elector
        self.name = inner.name
        self.refused = 0

    def plan(self, action: GatewayAction) -> ActionPlan:
        return self.inner.plan(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        try:
            token = self.elector.check()
        except LeaseLostError as exc:
            self.refused += 1
            log.warning("fenced: not applying %s (%s): %s", action.type, key, exc)
            raise
        log.debug("applying %s (%s) under token %d", action.type, key, token)
        return self.inner.apply(action, key=key)
