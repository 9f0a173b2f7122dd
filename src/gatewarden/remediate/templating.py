"""Playbook templates: Jinja2 in a sandbox with StrictUndefined.

Playbooks are configuration, but a template must still never execute code: the sandbox refuses
attribute access to internals (``__class__``, ``__globals__`` ...) and unsafe callables, and
StrictUndefined turns a typo like ``incident.scope.provder`` into an error instead of an empty
string sent to the gateway. Every failure surfaces as :class:`PlaybookError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gatewarden.errors import PlaybookError
from gatewarden.models import Incident

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def check_syntax(template: str) -> None:
    """Raise ValueError (for pydantic validators) when ``template`` does not parse."""
    try:
        _ENV.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error: {exc.message} (line {exc.lineno})") from None


@lru_cache(maxsize=512)
def _compile(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render one template; PlaybookError on syntax, undefined or sandbox violations."""
    if "{" not in template:
        return template
    try:
        return _compile(template).render(**context)
    except jinja2.TemplateError as exc:
        # SecurityError and UndefinedError are both TemplateErrors.
        kind = type(exc).__name__
        raise PlaybookError(f"template {template!r} failed: {kind}: {exc}") from None


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists recursively); others pass through."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, Mapping):
        return {str(k): render_value(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, context) for v in value]
    return value


def iter_strings(value: Any) -> list[str]:
    """Every string inside ``value``, for load-time syntax checks."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in iter_strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in iter_strings(v)]
    return []


class SecretRefs:
    """``secrets`` as the engine's templates see it: ``{{ secrets.kong_token }}`` renders back
    to itself. The action is persisted with the reference, never the value; the HTTP adapter
    substitutes allow-listed secrets at call time (see :mod:`gatewarden.gateways.http_action`).
    """

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return f"{{{{ secrets.{name} }}}}"

    def __getitem__(self, name: str) -> str:
        return self.__getattr__(name)


def incident_context(incident: Incident, *, run_id: str, playbook: str) -> dict[str, Any]:
    """What templates see: ``incident`` (id, kinds, scope, severity, title ...), ``run``, and
    ``secrets`` references that stay unresolved until the HTTP adapter sends the request."""
    data = incident.model_dump(mode="json")
    return {"incident": data, "run": {"id": run_id, "playbook": playbook}, "secrets": SecretRefs()}
