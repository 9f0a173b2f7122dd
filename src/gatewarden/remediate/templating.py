"""Playbook templates: Jinja2 in a sandbox with StrictUndefined.

Playbooks are configuration, but a template must still never execute code: the sandbox refuses
attribute access to internals (``__class__``, ``__globals__`` ...) and unsafe callables, and
StrictUndefined turns a typo like ``incident.scope.provder`` into an error instead of an empty
string sent to the gateway. Every failure surfaces as :class:`PlaybookError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gatewarden.errors import PlaybookError
from gatewarden.models import Incident

#: Largest rendered value: a gateway parameter is a name, a number, a short JSON body.
MAX_OUTPUT = 64 * 1024
#: Width/repeat counts beyond this are refused before any allocation happens.
_MAX_COUNT = 100_000
_BIG_NUMBER = re.compile(r"\d{6,}")
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined fails on str() but not repr(): inside a list or dict literal a typo would
    render as 'Undefined' and reach the gateway. Failing on repr closes that."""

    __repr__ = jinja2.StrictUndefined._fail_with_undefined_error


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, plus bounds on size: no 10 GB string from '{{ "x" * 10**10 }}', no
    never-ending '{{ 9**9**9 }}'. Immutable: templates cannot change the incident they read."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * max(count, 0) > MAX_OUTPUT:
                    raise SecurityError("repetition too large")
        if operator == "%" and isinstance(left, str) and _BIG_NUMBER.search(left):
            raise SecurityError("format width too large")
        return super().call_binop(context, operator, left, right)

    def call(
        __self,
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            counts = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
            if name in _PADDING and any(c > _MAX_COUNT for c in counts):
                raise SecurityError(f"{name} width too large")
            if name in ("format", "format_map") and _BIG_NUMBER.search(owner):
                raise SecurityError("format width too large")
        return super().call(__context, __obj, *args, **kwargs)


_ENV = _BoundedSandbox(undefined=_Undefined, autoescape=False)

#: Errors a template can raise at render time (bad call arguments, bad index, division by
#: zero, the sandbox's range limit, runaway macro recursion, a huge allocation).
_RUNTIME_ERRORS = (
    TypeError,
    ValueError,
    LookupError,
    ArithmeticError,
    RecursionError,
    MemoryError,
)


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
        out = _compile(template).render(**context)
    except (jinja2.TemplateError, *_RUNTIME_ERRORS) as exc:
        # SecurityError and UndefinedError are both TemplateErrors.
        kind = type(exc).__name__
        raise PlaybookError(f"template {template!r} failed: {kind}: {str(exc)[:300]}") from None
    if len(out) > MAX_OUTPUT:
        raise PlaybookError(f"template {template!r} failed: output over {MAX_OUTPUT} bytes")
    return out


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
