"""GatewayAdmin for a LiteLLM proxy run without a database: rewrite its YAML config, reload it.

Such a proxy takes deployments (``model_list``: ``litellm_params.order``/``rpm``/``tpm``) and
``router_settings.fallbacks`` from its config file only; its admin endpoints refuse to change
them. ``apply`` therefore:

1. edits the file with a comment-preserving YAML round trip (operators document their config);
2. keeps the previous content in ``<file>.gatewarden.bak`` and writes the new one atomically
   (temp file in the same directory, fsync, rename, fsync of the directory);
3. runs the configured reload/restart command (an argv list, no shell, bounded timeout);
4. polls ``/health/liveliness`` and ``/health/readiness`` until both answer healthy.

If the command fails or the proxy stays unhealthy, the backup is restored, the command is run
again so the proxy serves the old config, and the step fails with GatewayRejected: repeating a
change that broke the proxy would only break it again. A marker file (``.gatewarden.pending``)
lives from the write until the proxy is confirmed healthy, so a re-apply after a crash reloads
even though the file already holds the change.

Virtual keys live in the database, so key actions are refused with a clear message.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways import planner
from gatewarden.gateways.actions import (
    KEY_ACTIONS,
    DeploymentLimitsParams,
    DeploymentOrderParams,
    DeploymentOrdersParams,
    FailoverParams,
    FallbacksParams,
    GroupFailoverParams,
    ModelParams,
    describe,
    parse_params,
)
from gatewarden.gateways.routing import DeploymentView, provider_of, served_model
from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction

log = logging.getLogger(__name__)

NO_DB = (
    "this LiteLLM proxy is configured from a file, without a database: virtual keys and teams "
    "(block, unblock, limits) can only be changed through the admin API of a proxy with a "
    "database"
)
_TAIL = 300


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines (api_base URLs, prompts)
    yaml.indent(mapping=2, sequence=4, offset=2)
    # Keep ``fallbacks: [{"gpt-4o": [...]}]`` as written: LiteLLM's docs use braces.
    yaml.brace_single_entry_mapping_in_flow_sequence = True
    return yaml


class ConfigDoc:
    """A parsed LiteLLM config and the StateReader over it."""

    def __init__(self, text: str, where: str) -> None:
        try:
            data = _yaml().load(text)
        except YAMLError as exc:
            raise GatewayRejected(f"{where}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise GatewayRejected(f"{where}: expected a mapping at the top level")
        self.data: Any = data
        self.where = where

    def dump(self) -> str:
        out = io.StringIO()
        _yaml().dump(self.data, out)
        return out.getvalue()

    # -- deployments -------------------------------------------------------------------------

    def entries(self) -> dict[str, Any]:
        """Deployment id -> its ``model_list`` entry. The id is ``model_info.id``, else
        ``<model_name>/<litellm_params.model>`` (with ``#n`` when that repeats)."""
        out: dict[str, Any] = {}
        for entry in self.data.get("model_list") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("litellm_params"), dict):
                continue
            info = entry.get("model_info")
            dep_id = str(info["id"]) if isinstance(info, dict) and info.get("id") else ""
            if not dep_id:
                base = f"{entry.get('model_name', '')}/{entry['litellm_params'].get('model', '')}"
                dep_id, n = base, 1
                while dep_id in out:
                    n += 1
                    dep_id = f"{base}#{n}"
            out[dep_id] = entry
        return out

    def key(self, key: str) -> Mapping[str, Any]:
        raise GatewayRejected(NO_DB)

    def team(self, team: str) -> Mapping[str, Any]:
        raise GatewayRejected(NO_DB)

    def deployments(self) -> list[DeploymentView]:
        views = []
        for dep_id, entry in self.entries().items():
            params = entry["litellm_params"]
            model = str(params.get("model", ""))
            views.append(
                DeploymentView(
                    id=dep_id,
                    model_name=str(entry.get("model_name", "")),
                    provider=provider_of(model, params.get("custom_llm_provider")),
                    order=_opt_int(params.get("order")),
                    model=served_model(model),
                    rpm=_opt_int(params.get("rpm")),
                    tpm=_opt_int(params.get("tpm")),
                )
            )
        return views

    def set_param(self, dep_id: str, name: str, value: int | None) -> None:
        entry = self.entries().get(dep_id)
        if entry is None:
            raise GatewayRejected(f"{self.where}: unknown deployment {dep_id}", status=404)
        if value is None:
            entry["litellm_params"].pop(name, None)
        else:
            entry["litellm_params"][name] = value

    # -- fallbacks ---------------------------------------------------------------------------

    def _fallback_list(self, create: bool) -> Any:
        # LiteLLM reads ``router_settings.fallbacks`` and, older style, ``litellm_settings``.
        for section in ("router_settings", "litellm_settings"):
            settings = self.data.get(section)
            if isinstance(settings, dict) and isinstance(settings.get("fallbacks"), list):
                return settings["fallbacks"]
        if not create:
            return []
        settings = self.data.get("router_settings")
        if not isinstance(settings, dict):
            self.data["router_settings"] = settings = {}
        settings["fallbacks"] = []
        return settings["fallbacks"]

    def fallbacks(self, model: str) -> list[str]:
        for rule in self._fallback_list(create=False):
            if isinstance(rule, dict) and model in rule:
                return [str(m) for m in rule[model] or []]
        return []

    def set_fallbacks(self, model: str, models: list[str] | None) -> None:
        rules = self._fallback_list(create=models is not None)
        for i, rule in enumerate(rules):
            if isinstance(rule, dict) and model in rule:
                if models is None:
                    del rules[i]
                else:
                    rule[model] = list(models)
                return
        if models is not None:
            rules.append({model: list(models)})

    def apply(self, action: GatewayAction) -> None:
        params = parse_params(action)
        if isinstance(params, DeploymentOrderParams):
            self.set_param(params.deployment_id, "order", params.order)
        elif isinstance(params, DeploymentOrdersParams | FailoverParams | GroupFailoverParams):
            for dep_id, order in (params.orders or {}).items():
                self.set_param(dep_id, "order", order)
        elif isinstance(params, DeploymentLimitsParams):
            for name, value in params.limits().items():
                self.set_param(params.deployment_id, name, value)
        elif isinstance(params, FallbacksParams):
            self.set_fallbacks(params.model, params.fallback_models)
        elif isinstance(params, ModelParams):
            self.set_fallbacks(params.model, None)
        else:
            raise GatewayRejected(f"action {action.type} is not supported by the config file")


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power cut
    finally:
        os.close(dir_fd)


class LiteLLMConfigFile:
    """Config-file adapter; ``client`` and ``sleep`` are injectable for tests."""

    name = "litellm-config"

    def __init__(
        self,
        path: Path | str,
        *,
        reload_command: Sequence[str],
        health_url: str,
        reload_timeout_s: float = 120.0,
        health_attempts: int = 30,
        health_interval_s: float = 2.0,
        settle_s: float = 0.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not reload_command:
            raise ValueError("reload_command must name a program")
        self.path = Path(path)
        self.backup = self.path.with_name(self.path.name + ".gatewarden.bak")
        self.marker = self.path.with_name(self.path.name + ".gatewarden.pending")
        self.reload_command = list(reload_command)
        self.health_url = health_url.rstrip("/")
        self.reload_timeout_s = reload_timeout_s
        self.health_attempts = max(1, health_attempts)
        self.health_interval_s = health_interval_s
        self.settle_s = settle_s
        self._client = client if client is not None else httpx.Client(timeout=5.0)
        self._sleep = sleep
        self._outcomes: dict[str, ActionOutcome] = {}

    def __repr__(self) -> str:
        return f"LiteLLMConfigFile(path={str(self.path)!r})"

    def close(self) -> None:
        self._client.close()

    # -- reading -----------------------------------------------------------------------------

    def _read(self) -> tuple[str, ConfigDoc]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GatewayUnavailable(f"cannot read {self.path}: {exc}") from None
        return text, ConfigDoc(text, str(self.path))

    def _refuse(self, action: GatewayAction) -> None:
        if action.type in KEY_ACTIONS:
            raise GatewayRejected(NO_DB)
        if action.type == "http":
            raise GatewayRejected("http actions go to the http adapter, not the config file")

    # -- GatewayAdmin ------------------------------------------------------------------------

    def plan(self, action: GatewayAction) -> ActionPlan:
        self._refuse(action)
        return planner.plan_action(action, self._read()[1])

    def satisfied(self, action: GatewayAction) -> bool:
        # The file holding the change is not enough: the proxy must have reloaded it.
        if action.type in KEY_ACTIONS or action.type == "http" or self.marker.exists():
            return False
        return planner.satisfied(action, self._read()[1])

    def proposed(self, action: GatewayAction) -> tuple[str, str, str]:
        """(current text, current text as the round trip writes it, text after ``action``).
        The change is the difference of the last two: formatting alone never triggers one."""
        self._refuse(action)
        old, doc = self._read()
        same = doc.dump()
        doc.apply(planner.concrete(action, doc))
        return old, same, doc.dump()

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        if key in self._outcomes:
            return self._outcomes[key]
        old, same, new = self.proposed(action)
        pending = self.marker.exists()
        if new == same and not pending:
            outcome = ActionOutcome(ok=True, status=200, detail=f"{describe(action)}: no change")
        else:
            log.info("litellm config: applying %s to %s (key %s)", action.type, self.path, key)
            try:
                if not pending:
                    # With a change still unconfirmed, the backup already holds the last
                    # config known to be healthy: keep it.
                    atomic_write(self.backup, old)
                atomic_write(self.marker, key + "\n")
                atomic_write(self.path, new)
            except OSError as exc:
                raise GatewayUnavailable(f"cannot write {self.path}: {exc}") from None
            problem = self._reload()
            if problem is not None:
                raise GatewayRejected(f"{describe(action)}: {problem}; {self._restore()}")
            self.marker.unlink(missing_ok=True)
            outcome = ActionOutcome(
                ok=True, status=200, detail=f"{describe(action)}: config rewritten and reloaded"
            )
        self._outcomes[key] = outcome
        return outcome

    # -- reload and health -------------------------------------------------------------------

    def _reload(self) -> str | None:
        """Run the reload command, then wait for health; the problem, or None when healthy."""
        argv = self.reload_command
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.reload_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"reload command {argv[0]} timed out after {self.reload_timeout_s:g}s"
        except OSError as exc:
            return f"reload command {argv[0]} could not run: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout or "").strip()[-_TAIL:]
            return f"reload command {argv[0]} exited {done.returncode}: {tail}"
        return self._wait_healthy()

    def _wait_healthy(self) -> str | None:
        if self.settle_s > 0:
            self._sleep(self.settle_s)
        problem: str | None = None
        for attempt in range(self.health_attempts):
            if attempt:
                self._sleep(self.health_interval_s)
            problem = self._health_problem()
            if problem is None:
                return None
        return f"proxy unhealthy after {self.health_attempts} checks (last: {problem})"

    def _health_problem(self) -> str | None:
        for path in ("/health/liveliness", "/health/readiness"):
            try:
                response = self._client.get(self.health_url + path)
            except httpx.HTTPError as exc:
                return f"GET {path}: {type(exc).__name__}"
            if response.status_code != 200:
                return f"GET {path}: HTTP {response.status_code}"
            if path.endswith("readiness"):
                try:
                    body = response.json()
                except ValueError:
                    return f"GET {path}: not JSON"
                if isinstance(body, dict) and body.get("status") not in (None, "healthy"):
                    return f"GET {path}: status {body.get('status')!r}"
        return None

    def _restore(self) -> str:
        try:
            atomic_write(self.path, self.backup.read_text(encoding="utf-8"))
        except OSError as exc:
            return f"could not restore {self.backup.name}: {exc}; the new config is in place"
        problem = self._reload()
        if problem is not None:
            return f"restored {self.backup.name}, but the proxy is still unhealthy: {problem}"
        self.marker.unlink(missing_ok=True)
        return f"restored {self.backup.name} and the proxy is healthy again"


__all__ = ["NO_DB", "ConfigDoc", "LiteLLMConfigFile", "atomic_write"]
