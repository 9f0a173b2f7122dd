"""Hostile YAML to the three user-edited file loaders: daemon config, playbooks, detectors.

Each example is one of the shipped files with one node replaced by a hostile value, deleted, or
joined by an unknown sibling, sometimes followed by a YAML trick (tags, aliases, merge keys,
more documents). A loader either returns its models or raises ConfigError whose every problem
names the file; nothing else may escape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gatewarden.config import load_config
from gatewarden.detect import load_detector_specs
from gatewarden.errors import ConfigError
from gatewarden.remediate import load_playbooks
from tests.fuzz.mutation import OPS, mutate, paths
from tests.fuzz.settings import fuzz

ROOT = Path(__file__).resolve().parents[2]
SEEDS: dict[str, Any] = {
    "config": yaml.safe_load((ROOT / "config" / "gatewarden.example.yaml").read_text()),
    # One spec: the loaders' pure-Python YAML parsing is the cost of every example.
    "detectors": yaml.safe_load((ROOT / "detectors" / "error-rate.yaml").read_text())[:1],
    "playbooks": [
        yaml.safe_load(p.read_text()) for p in sorted((ROOT / "playbooks").glob("*.yaml"))
    ],
}

Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # generating faster leaves more examples

HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 10**30, 0.5, -0.0, 1e308, math.nan, math.inf, -math.inf,
    "", " ", "x", "-1", "1e999", "NaN", "\x00", "é" * 3, "x" * 5000, "{{", "}}", "{%",
    "{{ incident.__class__.__mro__ }}", "{{ lipsum.__globals__.os.popen('id').read() }}",
    "{{ incident.scope.nope }}", "${HOME}", "env:", "file:/etc/shadow", "../../../../etc/passwd",
    "http://[::1", "0.0.0.0", "*", "group:", [], [None], [[[]]], {}, {"": None}, {"x": [1, {}]},
    {"env": "X", "file": "y"}, {"type": "action"}, ["approval", "action"],
]  # fmt: skip

TRICKS = [
    "",
    "\n---\nsecond: document\n",
    "\nextra: !!python/object/apply:os.system ['id']\n",
    "\nalias: &a [1, 2]\nagain: *a\n",
    "\n<<: {merged: 1}\n",
    "\n? complex key\n: value\n",
    "\nbad: [unclosed\n",
    "\n\t tab: indent\n",
    "\nx: !!binary aGVsbG8=\n",
    "\nx: 2001-12-14t21:59:43.10-05:00\n",
    "\x85\u2028\ufeff",
    "\n%YAML 1.1\n",
]


@st.composite
def hostile_document(draw: st.DrawFn, seed: Any) -> str:
    node_paths = list(paths(seed))
    doc = seed
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(node_paths))
        op = draw(st.sampled_from(OPS))
        value = draw(st.sampled_from(HOSTILE) | st.text(max_size=6) | st.integers())
        with suppress(KeyError, IndexError, TypeError):  # a first mutation removed the target
            doc = mutate(doc, path, op, value)
        node_paths = list(paths(doc))
    dumped = yaml.dump(doc, Dumper=Dumper, allow_unicode=True)
    return str(dumped) + draw(st.sampled_from(TRICKS))


Loader = Callable[[Path], object]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("yaml-fuzz")


def load_one(kind: str, workdir: Path, data: bytes) -> ConfigError | None:
    """Write ``data`` where the loader of ``kind`` reads it; load; check the outcome.
    Returns the ConfigError when the loader refused the file (None when it accepted it)."""
    folder = workdir / kind
    folder.mkdir(exist_ok=True)
    path = folder / "x.yaml"
    path.write_bytes(data)
    loaders: dict[str, Loader] = {
        "config": lambda _: load_config(path),
        "detectors": lambda d: load_detector_specs(d),
        "playbooks": lambda d: load_playbooks(d),
    }
    try:
        loaders[kind](folder)
    except ConfigError as exc:
        assert exc.problems
        assert all(p.startswith(str(path)) for p in exc.problems), exc.problems
        return exc
    return None


@fuzz(1000)
@given(text=hostile_document(SEEDS["config"]))
def test_config_survives_hostile_documents(workdir: Path, text: str) -> None:
    load_one("config", workdir, text.encode())


@fuzz(1000)
@given(text=st.sampled_from(SEEDS["playbooks"]).flatmap(hostile_document))
def test_playbooks_survive_hostile_documents(workdir: Path, text: str) -> None:
    load_one("playbooks", workdir, text.encode())


@fuzz(1000)
@given(text=hostile_document(SEEDS["detectors"]))
def test_detectors_survive_hostile_documents(workdir: Path, text: str) -> None:
    load_one("detectors", workdir, text.encode())


@pytest.mark.parametrize("kind", ["config", "detectors", "playbooks"])
@fuzz(1000)
@given(text=st.text())
def test_loaders_survive_arbitrary_text(workdir: Path, kind: str, text: str) -> None:
    load_one(kind, workdir, text.encode())


# -- inputs that once escaped as raw exceptions ------------------------------------------------

DEEP = b"[" * 600 + b"]" * 600  # PyYAML's recursion runs out from ~500 levels
HUGE_INT = b"tick_seconds: " + b"9" * 5000


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        pytest.param("config", b"\xff: 1", id="config-not-utf8"),
        pytest.param("playbooks", b"\xff: 1", id="playbook-not-utf8"),
        pytest.param("config", DEEP, id="config-deep"),
        pytest.param("playbooks", DEEP, id="playbook-deep"),
        pytest.param("detectors", DEEP, id="detector-deep"),
        pytest.param("config", HUGE_INT, id="config-huge-int"),
        pytest.param("playbooks", HUGE_INT, id="playbook-huge-int"),
        pytest.param("detectors", HUGE_INT, id="detector-huge-int"),
    ],
)
def test_known_escapes_are_config_errors(workdir: Path, kind: str, data: bytes) -> None:
    assert load_one(kind, workdir, data) is not None


def test_an_infinite_tick_is_refused(workdir: Path) -> None:
    error = load_one("config", workdir, b"tick_seconds: .inf\n")
    assert error is not None and "tick_seconds" in str(error)
