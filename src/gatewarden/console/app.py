"""The local incident console: starlette routes the daemon mounts beside its health endpoints.

Read-mostly: open and recent incidents, each incident's live timeline, impact and charts, and
approve / deny for pending approval steps. A decision is recorded as the user whose console token
made the request (:mod:`.auth`) and goes through
:func:`gatewarden.remediate.approvals.record_decision`, which checks that user against the step's
approvers with the same rule as Slack (Slack user groups included, via ``live_groups``); the
playbook engine picks it up on its next tick.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from gatewarden.console.assets import HEADERS, LOGIN_CSS, STATIC, static_file, templates
from gatewarden.console.auth import ConsoleAuth, safe_next
from gatewarden.console.views import (
    ChartCache,
    incident_rows,
    incident_version,
    overview_version,
    pending_approvals,
    plans_of,
    timeline_of,
)
from gatewarden.errors import StoreError
from gatewarden.models import ApprovalDecision
from gatewarden.protocols import Clock, Store
from gatewarden.remediate.approvals import ApprovalRefused, record_decision
from gatewarden.report.impact import impact_rows
from gatewarden.report.render import export_document, scrub
from gatewarden.report.series import load_series
from gatewarden.report.timeline import IncidentNotFound

log = logging.getLogger(__name__)

_MAX_FORM = 16 * 1024
_NOTICES = {
    "granted": "Approval recorded. The playbook acts on its next tick.",
    "denied": "Denial recorded. The playbook stops on its next tick.",
}


class Console:
    """Request handlers; :func:`console_routes` mounts them under ``prefix``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        token: str | None,
        *,
        prefix: str,
        recent: int,
        users: Mapping[str, str] | None = None,
        live_groups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.prefix = prefix.rstrip("/")
        self.recent = recent
        self.auth = ConsoleAuth(token, path=self.prefix, users=users)
        self.live_groups = live_groups
        self.charts = ChartCache()

    # -- plumbing -------------------------------------------------------------------------------
    def _page(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        **context: Any,
    ) -> Response:
        session = self.auth.session_of(request)
        fresh = session is None
        if session is None:
            session = self.auth.new_session()
        me = self.auth.principal(request)
        html = (
            templates()
            .get_template(template)
            .render(
                prefix=self.prefix,
                csrf=self.auth.csrf_for(me, session),
                me=me,
                now=self.clock.now(),
                login_css=LOGIN_CSS,
                **context,
            )
        )
        response = Response(scrub(html), status_code=status, media_type="text/html")
        response.headers.update(HEADERS)
        if fresh and me is not None:
            self.auth.set_cookie(response, "gatewarden_session", session)
        return response

    def _login_redirect(self, request: Request) -> Response:
        target = quote(request.url.path, safe="/")
        return RedirectResponse(f"{self.prefix}/login?next={target}", status_code=303)

    def _denied(self, request: Request) -> Response | None:
        if self.auth.authenticated(request):
            return None
        if request.url.path.startswith(self.prefix + "/api/") or self.auth.by_header(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401, headers=HEADERS)
        return self._login_redirect(request)

    @staticmethod
    async def _form(request: Request) -> dict[str, str] | None:
        body = await request.body()
        if len(body) > _MAX_FORM:
            return None
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items() if v}

    # -- login ----------------------------------------------------------------------------------
    def login_form(self, request: Request) -> Response:
        return self._page(
            request,
            "login.html.j2",
            next=safe_next(request.query_params.get("next"), self.prefix),
            error=None if self.auth.configured else "No console token is configured.",
        )

    async def login(self, request: Request) -> Response:
        form = await self._form(request) or {}
        target = safe_next(form.get("next"), self.prefix)
        principal = self.auth.principal_for(form.get("token", ""))
        if principal is None:
            log.warning("console login refused from %s", request.client)
            return self._page(
                request, "login.html.j2", status=401, next=target, error="Wrong token."
            )
        log.info("console login: %s", principal.label)
        response = RedirectResponse(target, status_code=303)
        self.auth.log_in(response, principal, self.auth.new_session())
        return response

    async def logout(self, request: Request) -> Response:
        form = await self._form(request) or {}
        if not self.auth.csrf_ok(request, form.get("csrf", "")):
            return JSONResponse({"error": "bad csrf token"}, status_code=403)
        response = RedirectResponse(f"{self.prefix}/login", status_code=303)
        self.auth.log_out(response)
        return response

    # -- pages ----------------------------------------------------------------------------------
    def index(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            open_rows, recent_rows = incident_rows(self.store, recent=self.recent)
            version = overview_version(self.store)
        except StoreError as exc:
            return self._page(request, "error.html.j2", status=503, error=str(exc))
        return self._page(
            request,
            "index.html.j2",
            open_rows=open_rows,
            recent_rows=recent_rows,
            version=version,
            poll=f"{self.prefix}/api/version",
            page=f"{self.prefix}/",
        )

    def incident(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        return self._incident_page(request, str(request.path_params["incident_id"]))

    def _incident_page(
        self,
        request: Request,
        incident_id: str,
        *,
        status: int = 200,
        error: str | None = None,
        notice: str | None = None,
    ) -> Response:
        try:
            timeline = timeline_of(self.store, incident_id)
            version = incident_version(self.store, incident_id)
            charts = plans_of(self.store, timeline)
            pending = pending_approvals(self.store, incident_id)
        except IncidentNotFound:
            return self._page(request, "error.html.j2", status=404, error="No such incident.")
        except StoreError as exc:
            return self._page(request, "error.html.j2", status=503, error=str(exc))
        base = f"{self.prefix}/incidents/{quote(incident_id, safe='')}"
        return self._page(
            request,
            "incident.html.j2",
            status=status,
            t=timeline,
            f=timeline.figures,
            impact=impact_rows(timeline.impact),
            charts=[
                {"title": c.title, "alt": c.alt, "src": f"{base}/charts/{i}.png?v={version}"}
                for i, c in enumerate(charts, start=1)
            ],
            pending=pending,
            base=base,
            version=version,
            poll=f"{self.prefix}/api/incidents/{quote(incident_id, safe='')}/version",
            page=base,
            error=error,
            # Only known notices: a crafted link must not make the console say anything else.
            notice=notice or _NOTICES.get(request.query_params.get("done", "")),
        )

    def chart(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        incident_id = str(request.path_params["incident_id"])
        index = int(request.path_params["index"])
        try:
            # The version in the URL names what the page listed; drawing uses the data as it
            # is now, so a stale version simply gets the newest chart.
            version = request.query_params.get("v") or incident_version(self.store, incident_id)
            png = self.charts.png(self.store, incident_id, version[:40], index)
        except (IncidentNotFound, StoreError):
            png = None
        if png is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(png, media_type="image/png", headers=HEADERS)

    def static(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        name = str(request.path_params["name"])
        if name not in STATIC:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(static_file(name), media_type=STATIC[name], headers=HEADERS)

    # -- JSON -----------------------------------------------------------------------------------
    def api_incidents(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        open_rows, recent_rows = incident_rows(self.store, recent=self.recent)
        rows = [
            {**r.incident.model_dump(mode="json"), "pending_approvals": r.pending}
            for r in open_rows + recent_rows
        ]
        return _json({"incidents": rows})

    def api_incident(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        incident_id = str(request.path_params["incident_id"])
        try:
            timeline = timeline_of(self.store, incident_id)
        except IncidentNotFound:
            return JSONResponse({"error": "not found"}, status_code=404, headers=HEADERS)
        document = export_document(timeline, load_series(self.store, incident_id))
        document["pending_approvals"] = [
            vars(p) for p in pending_approvals(self.store, incident_id)
        ]
        document["version"] = incident_version(self.store, incident_id)
        return _json(document)

    def api_version(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        incident_id = request.path_params.get("incident_id")
        if incident_id is None:
            version = overview_version(self.store)
        else:
            version = incident_version(self.store, str(incident_id))
        return JSONResponse({"version": version}, headers=HEADERS)

    # -- decisions ------------------------------------------------------------------------------
    async def decide(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        incident_id = str(request.path_params["incident_id"])
        form = await self._form(request)
        if form is None or not self.auth.same_origin(request):
            return JSONResponse({"error": "bad request"}, status_code=400)
        if not self.auth.csrf_ok(request, form.get("csrf", "")):
            log.warning("console decision with a bad CSRF token refused")
            return JSONResponse({"error": "bad csrf token"}, status_code=403)
        return await run_in_threadpool(self._decide, request, incident_id, form)

    def _decide(self, request: Request, incident_id: str, form: Mapping[str, str]) -> Response:
        me = self.auth.principal(request)
        if me is None or me.user is None:
            return self._incident_page(
                request,
                incident_id,
                status=403,
                error="This token is view-only: log in with your own console token to decide.",
            )
        by = me.user
        claimed = form.get("by", "").strip()
        if claimed and claimed != by:
            # Scripts that still send an id: it must be the token's own, never someone else's.
            log.warning("console decision by %s claiming to be %r refused", by, claimed)
            return self._incident_page(
                request, incident_id, status=403, error=f"You are {by}, not {claimed}."
            )
        verb = form.get("decision", "")
        decision = {"approve": ApprovalDecision.GRANTED, "deny": ApprovalDecision.DENIED}.get(verb)
        try:
            step = int(form.get("step", ""))
        except ValueError:
            step = -1
        run_id = form.get("run_id", "")
        if decision is None or step < 0 or not run_id:
            return self._incident_page(
                request, incident_id, status=400, error="Choose approve or deny."
            )
        owned = {p.run_id for p in pending_approvals(self.store, incident_id)}
        if run_id not in owned:
            return self._incident_page(
                request, incident_id, status=409, error="That approval is no longer pending."
            )
        try:
            event = record_decision(
                self.store,
                run_id=run_id,
                step=step,
                decision=decision,
                by=by,
                reason=form.get("reason", "").strip()[:500] or f"via console ({verb})",
                now=self.clock.now(),
                live_groups=self.live_groups,
            )
        except ApprovalRefused as exc:
            return self._incident_page(request, incident_id, status=403, error=str(exc))
        log.info("console: %s by %s on %s step %d", event.type.value, by, run_id, step)
        done = "granted" if decision is ApprovalDecision.GRANTED else "denied"
        target = f"{self.prefix}/incidents/{quote(incident_id, safe='')}?done={done}"
        return RedirectResponse(target, status_code=303)


def _json(document: Any) -> Response:
    """JSON through the same redaction as every page: payloads are written by many hands."""
    body = scrub(json.dumps(document, default=str))
    return Response(body, media_type="application/json", headers=HEADERS)


def console_routes(
    store: Store,
    clock: Clock,
    token: str | None,
    *,
    users: Mapping[str, str] | None = None,
    live_groups: Mapping[str, Sequence[str]] | None = None,
    prefix: str = "/console",
    recent: int = 20,
) -> list[BaseRoute]:
    """The console's routes, for ``create_app(status, extra_routes=console_routes(...))``.

    ``token`` (the daemon's ``web.token``) only views; ``users`` (user id -> token) may decide,
    as themselves; ``live_groups`` are the Slack user groups for the shared approver rule.
    """
    c = Console(
        store, clock, token, prefix=prefix, recent=recent, users=users, live_groups=live_groups
    )
    routes: list[BaseRoute] = [
        Route("/", c.index, methods=["GET"]),
        Route("/login", c.login_form, methods=["GET"]),
        Route("/login", c.login, methods=["POST"]),
        Route("/logout", c.logout, methods=["POST"]),
        Route("/static/{name}", c.static, methods=["GET"]),
        Route("/incidents/{incident_id}", c.incident, methods=["GET"]),
        Route("/incidents/{incident_id}/decide", c.decide, methods=["POST"]),
        Route("/incidents/{incident_id}/charts/{index:int}.png", c.chart, methods=["GET"]),
        Route("/api/incidents", c.api_incidents, methods=["GET"]),
        Route("/api/incidents/{incident_id}", c.api_incident, methods=["GET"]),
        Route("/api/incidents/{incident_id}/version", c.api_version, methods=["GET"]),
        Route("/api/version", c.api_version, methods=["GET"]),
    ]
    return [
        Route(c.prefix, lambda request: RedirectResponse(f"{c.prefix}/", status_code=307)),
        Mount(c.prefix, routes=routes),
    ]
