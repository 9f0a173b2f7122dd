"""``gatewarden playbook test PLAYBOOK --incident FIXTURE``: what a playbook would do, no call made.

The playbook runs through the real engine in dry-run mode against a recorded incident: its
templates render, every action is planned against a gateway state (the in-memory gateway seeded
from a fixture, a live LiteLLM proxy read-only, or a LiteLLM config file), and the command prints
each step with its preview, its inverse and the exact requests the daemon would send. The
gateway is wrapped so that nothing can be applied, whatever the playbook's mode.

Exit status: 0 the playbook matches and every action could be planned; 1 it does not match or
a step cannot be planned or rendered; 2 an input file is invalid.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
from pydantic import ValidationError

from gatewarden.clock import VirtualClock
from gatewarden.errors import ConfigError, GatewayError, PlaybookError
from gatewarden.gateways.actions import SECRET_REF, HttpParams, parse_params
from gatewarden.gateways.http_action import HttpActionGateway
from gatewarden.gateways.litellm_admin import LiteLLMAdmin, admin_requests, lookup_requests
from gatewarden.gateways.litellm_config import LiteLLMConfigFile
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.gateways.router import GatewayRouter
from gatewarden.models import (
    ActionOutcome,
    ActionPlan,
    Event,
    EventType,
    GatewayAction,
    Incident,
    IncidentStatus,
    Severity,
)
from gatewarden.protocols import GatewayAdmin, Tick
from gatewarden.remediate.engine import RemediateStage
from gatewarden.remediate.language import (
    ActionStep,
    ApprovalStep,
    Playbook,
    VerifyStep,
    WaitStep,
    load_playbook,
)
from gatewarden.store.sqlite import SQLiteStore
from gatewarden.yamlconfig import read_yaml

_T0 = 1_700_000_000.0


class PlanOnly:
    """Passes ``plan`` through and refuses ``apply``: the guarantee that a test calls nothing."""

    def __init__(self, inner: GatewayAdmin) -> None:
        self.inner = inner
        self.name = inner.name

    def plan(self, action: GatewayAction) -> ActionPlan:
        return self.inner.plan(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        raise PlaybookError("playbook test never applies an action")


class _NoMetrics:
    def query(self, metric: str, where: dict[str, str], level: str | None = None) -> float | None:
        return None


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("playbook", help="playbook file (or a name in --playbooks-dir)")
    p.add_argument("--incident", required=True, help="incident fixture (YAML or JSON)")
    p.add_argument("--playbooks-dir", default="playbooks", help="where to find a playbook name")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--gateway-state", help="gateway fixture (default: fixtures/gateway-state.yaml beside it)"
    )
    source.add_argument("--litellm-url", help="plan against a live LiteLLM proxy (reads only)")
    source.add_argument("--litellm-config", help="plan against a LiteLLM config file (diff)")
    p.add_argument(
        "--master-key-env",
        default="GATEWARDEN_GATEWAY_MASTER_KEY",
        help="env var holding the proxy master key (with --litellm-url)",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")


def _playbook_path(arg: str, directory: str) -> Path:
    path = Path(arg)
    if path.is_file():
        return path
    for suffix in (".yaml", ".yml"):
        candidate = Path(directory) / f"{arg}{suffix}"
        if candidate.is_file():
            return candidate
    raise ConfigError([f"{arg}: no such playbook file (nor in {directory})"])


#: optional fixture key: the recent calls (``api_key``, ``workflow``, ``cost_usd``) that tell
#: ``throttle_workflow`` which keys carry a workflow
TRAFFIC = "recent_traffic"


def load_traffic(path: Path) -> pd.DataFrame:
    """The fixture's ``recent_traffic`` as the records of one tick (empty without it)."""
    _, data = read_yaml(path)
    rows = data.get(TRAFFIC) if isinstance(data, dict) else None
    if rows is None:
        return pd.DataFrame()
    ok = isinstance(rows, list) and all(
        isinstance(r, dict)
        and isinstance(r.get("api_key"), str)
        and isinstance(r.get("workflow"), str)
        and isinstance(r.get("cost_usd", 0.0), int | float)
        for r in rows
    )
    if not ok:
        raise ConfigError([f"{path}: {TRAFFIC}: a list of {{api_key, workflow, cost_usd}}"])
    return pd.DataFrame(
        {
            "api_key": [r["api_key"] for r in rows],
            "workflow": [r["workflow"] for r in rows],
            "cost_usd": [float(r.get("cost_usd", 0.0)) for r in rows],
        }
    )


def load_incident(path: Path) -> Incident:
    """An Incident from a fixture; id, status, severity and opened_at have defaults."""
    _, data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: expected a mapping (an incident)"])
    data = {k: v for k, v in data.items() if k != TRAFFIC}
    defaults: dict[str, Any] = {
        "id": path.stem,
        "status": IncidentStatus.OPEN,
        "severity": Severity.WARNING,
        "opened_at": _T0,
    }
    try:
        return Incident.model_validate({**defaults, **data})
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(map(str, e['loc'])) or '(incident)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigError(problems) from exc


def _state_gateway(path: Path) -> InMemoryGateway:
    _, data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: expected a mapping with deployments, keys, fallbacks"])
    try:
        return InMemoryGateway.build(
            keys=data.get("keys") or {},
            deployments=data.get("deployments") or [],
            fallbacks=data.get("fallbacks") or {},
            teams=data.get("teams") or {},
        )
    except (TypeError, KeyError, ValueError) as exc:
        raise ConfigError([f"{path}: invalid gateway state: {exc}"]) from exc


def _http_preview(playbook: Playbook) -> HttpActionGateway:
    # The daemon's allow-lists live in its config; here every host and secret the playbook names
    # is allowed so the request can be shown (secrets masked: no value is ever read).
    hosts: set[str] = set()
    secrets: set[str] = set()
    for step in playbook.steps:
        if isinstance(step, ActionStep) and step.action == "http":
            text = json.dumps(step.params)
            hosts.update(h.split("/")[0].split("@")[-1] for h in text.split("://")[1:])
            secrets.update(SECRET_REF.findall(text))
    return HttpActionGateway(secrets=dict.fromkeys(secrets, ""), allowed_hosts=sorted(hosts))


def _gateway(args: argparse.Namespace, playbook: Playbook, book: Path) -> GatewayAdmin:
    primary: GatewayAdmin
    if args.litellm_url:
        key = os.environ.get(args.master_key_env, "")
        primary = LiteLLMAdmin(args.litellm_url, key)
    elif args.litellm_config:
        primary = LiteLLMConfigFile(args.litellm_config, reload_command=["true"], health_url="")
    else:
        state = Path(args.gateway_state or book.parent / "fixtures" / "gateway-state.yaml")
        primary = _state_gateway(state)
    return GatewayRouter(primary, {"http": _http_preview(playbook)})


def dry_run(
    playbook: Playbook,
    incident: Incident,
    gateway: GatewayAdmin,
    records: pd.DataFrame | None = None,
) -> list[Event]:
    """Run ``playbook`` once in dry-run mode on ``incident`` (``records``: the calls of the
    tick it runs in); the run's events."""
    store = SQLiteStore(":memory:")
    try:
        store.append(
            [
                Event(
                    ts=_T0,
                    type=EventType.INCIDENT_OPENED,
                    incident_id=incident.id,
                    key=f"opened:{incident.id}",
                    payload={
                        "kinds": list(incident.kinds),
                        "scope": dict(incident.scope),
                        "severity": incident.severity.value,
                        "title": incident.title,
                        "root_cause": incident.root_cause,
                        "alerts": list(incident.alerts),
                    },
                )
            ]
        )
        stage = RemediateStage(
            [playbook], store, PlanOnly(gateway), _NoMetrics(), VirtualClock(_T0), dry_run=True
        )
        frame = records if records is not None else pd.DataFrame()
        stage.run(Tick(now=_T0 + 1, start=_T0, records=frame))
        return [e for e in store.events() if e.run_id is not None]
    finally:
        store.close()


def _requests(action: GatewayAction, gateway: GatewayAdmin) -> list[dict[str, Any]]:
    adapter = gateway.adapter_for(action.type) if isinstance(gateway, GatewayRouter) else gateway
    params = parse_params(action)
    if isinstance(params, HttpParams) and isinstance(adapter, HttpActionGateway):
        return [adapter.describe_request(params.request)]
    if isinstance(adapter, LiteLLMConfigFile):
        _, same, new = adapter.proposed(action)
        diff = difflib.unified_diff(
            same.splitlines(), new.splitlines(), str(adapter.path), str(adapter.path), lineterm=""
        )
        return [{"file": str(adapter.path), "diff": "\n".join(diff)}]
    # A live proxy resolves key and team names for real (reads only); otherwise placeholders.
    ids = adapter if isinstance(adapter, LiteLLMAdmin) else None
    return [r.as_dict() for r in (*lookup_requests(action), *admin_requests(action, ids))]


def report(playbook: Playbook, events: list[Event], gateway: GatewayAdmin) -> dict[str, Any]:
    """What each step would do, from the dry run's events."""
    intended = {e.payload["step"]: e for e in events if e.type is EventType.ACTION_INTENDED}
    failed = {e.payload["step"]: e for e in events if e.type is EventType.ACTION_FAILED}
    finished = next((e for e in events if e.type is EventType.PLAYBOOK_FINISHED), None)
    steps: list[dict[str, Any]] = []
    ok = finished is not None and finished.payload.get("state") == "dry_run"
    for index, step in enumerate(playbook.steps):
        entry: dict[str, Any] = {"step": index, "type": step.type}
        if isinstance(step, ApprovalStep):
            entry["approvers"] = step.approvers
            timeout = f"timeout {step.timeout_s:g}s -> {step.on_timeout}"
            entry["note"] = f"quorum {step.quorum}, {timeout}"
        elif isinstance(step, WaitStep):
            entry["note"] = f"wait {step.seconds:g}s"
        elif isinstance(step, VerifyStep):
            entry["note"] = f"{len(step.checks)} check(s) for {step.for_ticks} ticks"
        elif isinstance(step, ActionStep):
            if index in failed:
                entry["error"] = str(failed[index].payload.get("error"))
                ok = False
            elif index in intended:
                p = intended[index].payload
                action = GatewayAction.model_validate(p["action"])
                entry.update(action=p["action"], inverse=p.get("inverse"), preview=p["preview"])
                if "could not plan" in str(p["preview"]):
                    ok = False
                else:
                    try:
                        entry["requests"] = _requests(action, gateway)
                    except GatewayError as exc:
                        entry["error"] = str(exc)
                        ok = False
        steps.append(entry)
    return {"playbook": playbook.name, "mode": playbook.mode, "ok": ok, "steps": steps}


def _request_line(req: dict[str, Any]) -> str:
    if "diff" in req:
        return f"  would rewrite {req['file']}:\n{req['diff']}\n"
    target = req.get("path") or req.get("url")
    body = req.get("body", req.get("json"))
    line = f"  would call {req['method']} {target}"
    if body is not None:
        line += f" {json.dumps(body, sort_keys=True)}"
    if req.get("headers"):
        line += f" headers {json.dumps(req['headers'], sort_keys=True)}"
    return line + "\n"


def _print_text(result: dict[str, Any], incident: Incident, out: TextIO) -> None:
    out.write(f"playbook {result['playbook']} ({result['mode']} mode) on incident {incident.id}\n")
    out.write(f"  kinds {', '.join(incident.kinds)}; scope {incident.scope}\n")
    for s in result["steps"]:
        head = f"step {s['step']}: {s['type']}"
        if "approvers" in s:
            head += f" by {', '.join(s['approvers'])}"
        if "note" in s:
            head += f" ({s['note']})"
        out.write(head + "\n")
        if "error" in s:
            out.write(f"  ERROR: {s['error']}\n")
        if "preview" in s:
            out.write(f"  {s['preview']}\n")
            out.write(f"  action:  {json.dumps(s['action'], sort_keys=True)}\n")
            out.write(f"  inverse: {json.dumps(s['inverse'], sort_keys=True)}\n")
        for req in s.get("requests", []):
            out.write(_request_line(req))
    out.write("result: OK (nothing was called)\n" if result["ok"] else "result: PROBLEMS\n")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        book = _playbook_path(args.playbook, args.playbooks_dir)
        playbook = load_playbook(book)
        incident = load_incident(Path(args.incident))
        records = load_traffic(Path(args.incident))
        gateway = _gateway(args, playbook, book)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    if not playbook.match.matches(incident):
        m = playbook.match
        print(
            f"{playbook.name} does not match incident {incident.id}: it wants kinds {m.kinds}, "
            f"scope {m.scope}, severity >= {m.min_severity.value}; the incident has kinds "
            f"{list(incident.kinds)}, scope {incident.scope}, severity {incident.severity.value}",
            file=out,
        )
        return 1
    result = report(playbook, dry_run(playbook, incident, gateway, records), gateway)
    if args.format == "json":
        out.write(json.dumps({"incident": incident.model_dump(mode="json"), **result}) + "\n")
    else:
        _print_text(result, incident, out)
    return 0 if result["ok"] else 1


__all__ = ["PlanOnly", "configure_parser", "dry_run", "load_incident", "report", "run"]
