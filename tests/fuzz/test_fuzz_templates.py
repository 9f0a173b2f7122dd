"""Hostile playbook templates: the sandbox never lets one reach Python internals or run code.

Templates are rendered with the context remediation really passes (``incident_context``).
Every render returns text or raises PlaybookError; an attempt to reach an underscore attribute
(``__class__``, ``__globals__``, ``_TemplateReference__context`` ...) by any route (``.``,
``[]``, ``|attr``, ``format``, ``map(attribute=)``) raises PlaybookError or yields Undefined,
never the object; and a canary file that a successful escape would create never appears.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewarden.errors import PlaybookError
from gatewarden.models import Incident, IncidentStatus, Severity
from gatewarden.remediate.templating import incident_context, render
from tests.fuzz.settings import fuzz

INCIDENT = Incident(
    id="inc-1",
    status=IncidentStatus.OPEN,
    kinds=("error_rate",),
    scope={"provider": "openai"},
    severity=Severity.CRITICAL,
    title="error_rate on provider=openai",
    opened_at=1_700_000_000.0,
)
CONTEXT = incident_context(INCIDENT, run_id="inc-1:provider-failover", playbook="failover")
CANARY = Path("/tmp/gatewarden-template-canary")  # created only by an escape
ESCAPE_CALL = f"system('touch {CANARY}')"
#: What a leaked object looks like when printed (repr of a class, function, module, frame ...).
LEAKS = ("<class", "<function", "<module", "<built-in", "<bound", "<method", "<code", "<frame",
         "mappingproxy", "{'__")  # fmt: skip

ROOTS = ["incident", "incident.scope", "incident.kinds", "run", "run.id", "''", "()", "{}",
         "[]", "1", "range", "lipsum", "cycler", "joiner", "namespace", "dict", "self",
         "loop", "caller", "config", "request", "x", "incident.scope.provider"]  # fmt: skip
DUNDERS = ["__class__", "__mro__", "__base__", "__bases__", "__subclasses__", "__globals__",
           "__builtins__", "__init__", "__dict__", "__getattribute__", "__import__",
           "__code__", "__func__", "__self__", "__module__", "__reduce_ex__", "__call__",
           "_TemplateReference__context", "_module", "_undefined_name", "__len__"]  # fmt: skip
SAFE = ["items", "keys", "values", "get", "upper", "lower", "split", "join", "format",
        "os", "system", "popen", "eval", "environ", "read", "mro", "func_globals",
        "gi_frame", "f_globals", "tb_frame", "cr_frame", "provider", "scope", "id"]  # fmt: skip


def try_render(template: str) -> str | None:
    """The output, or None when render refused with a PlaybookError (anything else fails)."""
    try:
        return render(template, CONTEXT)
    except PlaybookError as exc:
        assert "failed" in str(exc)
        return None


def dunder_step(name: str, route: str) -> str:
    """One access to ``name`` by one route, as a suffix of an expression."""
    return {
        "dot": f".{name}",
        "item": f"['{name}']",
        "attr": f"|attr('{name}')",
        "getattr": f".__getattribute__('{name}')",
    }[route]


@st.composite
def dunder_template(draw: st.DrawFn) -> str:
    """An expression that reaches at least one underscore attribute somewhere in a chain."""
    expr = draw(st.sampled_from(ROOTS))
    steps = draw(st.lists(st.sampled_from(SAFE + DUNDERS), min_size=0, max_size=3))
    steps.insert(draw(st.integers(0, len(steps))), draw(st.sampled_from(DUNDERS)))
    for name in steps:
        expr += dunder_step(name, draw(st.sampled_from(["dot", "item", "attr", "getattr"])))
        if draw(st.booleans()):
            expr += draw(st.sampled_from(["()", "(0)", "[0]", "[1]", f".{ESCAPE_CALL}"]))
    form = draw(
        st.sampled_from(
            [
                "{{ %s }}",
                "{{ (%s)|string }}",
                "{%% set x = %s %%}{{ x }}",
                "{%% for x in [%s] %%}{{ x }}{%% endfor %%}",
                "{{ [%s]|map('string')|join }}",
            ]
        )
    )
    return form % expr


format_escapes = st.builds(
    lambda root, name: "{{ '{0." + name + "}'.format(" + root + ") }}",
    st.sampled_from(ROOTS),
    st.sampled_from(DUNDERS),
) | st.sampled_from(DUNDERS).map(lambda name: "{{ [incident]|map(attribute='" + name + "')|list }}")


@fuzz(1000)
@given(template=dunder_template() | format_escapes)
def test_no_template_reaches_an_underscore_attribute(template: str) -> None:
    out = try_render(template)
    # An unsafe attribute is Undefined; only inside a container does it print (as "Undefined")
    # instead of raising. Either way nothing of the object may come out.
    assert out is None or not any(marker in out for marker in LEAKS), out
    assert not CANARY.exists()


# Everything else a playbook author (or an attacker with write access to playbooks) can type:
# arithmetic, filters, tests, loops, free text. No ``*``: a digit run typed after it would make
# a multi-gigabyte string (see test_a_huge_output_is_refused).
pieces = st.sampled_from(
    ["{{", "}}", "{%", "%}", "{#", "#}", "incident", ".scope", ".provider", "run.id", "|upper",
     "|default('x')", "|join(',')", "|length", "|int", "|float", "|tojson", "|e", "|list",
     "|sort", "|replace('a','b')", " + ", " - ", " ~ ", " if ", " else ", " is ",
     " defined", " in ", "(", ")", "[", "]", "'", '"', "1", "-1", "1e308", "{}", "set x = 1",
     "for i in incident.kinds", "endfor", "raw", "endraw", "\n", " ", "x", "é"]
)  # fmt: skip
free_template = st.lists(pieces | st.text(max_size=4), max_size=12).map("".join)


@fuzz(1000)
@given(template=free_template)
def test_any_template_renders_or_fails_with_a_playbook_error(template: str) -> None:
    out = try_render(template)
    assert out is None or isinstance(out, str)


# -- known bugs: minimal failing inputs (the fix flips these to passing) ----------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ incident.items(0) }}",
        "{{ '{0}'.format() }}",
        "{{ '%d' % 'x' }}",
        "{{ 1 / 0 }}",
        "{{ 1 // 0 }}",
        "{{ 1 % 0 }}",
        "{{ range(10**6)|list }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    ],
)
def test_runtime_errors_are_playbook_errors(template: str) -> None:
    with pytest.raises(PlaybookError):
        render(template, CONTEXT)


def test_a_huge_output_is_refused() -> None:
    with pytest.raises(PlaybookError):
        render('{{ "x" * 10**7 }}', CONTEXT)


@pytest.mark.parametrize("template", ["{{ [incident.scope.provder] }}", '{{ {"a": incident.x} }}'])
def test_a_typo_inside_a_container_is_an_error(template: str) -> None:
    with pytest.raises(PlaybookError):
        render(template, CONTEXT)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x'.center(10**10) }}",
        "{{ 9 ** (9 ** 9) }}",  # Jinja's ** is left-associative: 9**9**9 is only 78 digits
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ [1] * 10**6 }}",
    ],
)
def test_size_bombs_are_refused(template: str) -> None:
    with pytest.raises(PlaybookError):
        render(template, CONTEXT)


def test_a_template_cannot_change_its_context() -> None:
    with pytest.raises(PlaybookError):
        render("{{ incident.scope.update({'provider': 'x'}) }}", CONTEXT)
    assert CONTEXT["incident"]["scope"]["provider"] != "x"
