"""Load a YAML file into a pydantic model, reporting every problem as ``file:line: field: msg``.

Shared by the daemon config, detector specs and playbooks so that ``check-config`` speaks one
language about bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from gatewarden.detect.yaml_lines import format_problem, locate, parse_yaml
from gatewarden.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> tuple[str, object]:
    """Text and parsed content of a YAML file; ConfigError (with line) when it is not YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    return text, parse_yaml(text, origin=path)


def clean_loc(data: object, loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """Drop the discriminator tags pydantic puts into the location of a tagged-union member
    (``sources.0.http_request_log.timeout_s``): the file has no such level. A part is a tag
    when the mapping at that point holds it as a value (``type: action``) and it cannot be a
    key to descend through (absent, or a scalar with more of the path still to come)."""
    out: list[str | int] = []
    node = data
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(node, dict):
            more = i + 1 < len(parts)
            is_tag = isinstance(part, str) and part in node.values()
            if is_tag and (part not in node or (more and not isinstance(node[part], dict | list))):
                continue
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        out.append(part)
    return tuple(out)


def validation_problems(path: Path, text: str, data: object, exc: ValidationError) -> list[str]:
    """One ``file:line: field: message`` line per pydantic error."""
    problems = []
    for err in exc.errors():
        loc = clean_loc(data, err["loc"])
        problems.append(format_problem(path, locate(text, loc), loc, err["msg"]))
    return problems


def load_model(path: Path, model: type[M]) -> M:
    text, data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: (document): expected a mapping, got {type(data).__name__}"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(path, text, data, exc)) from exc
