"""Map a pydantic error location to the line of a YAML document it refers to.

Usage in a loader::

    except ValidationError as exc:
        for err in exc.errors():
            line = locate(text, err["loc"])
            problems.append(format_problem(path, line, err["loc"], err["msg"]))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from gatewarden.errors import ConfigError

Loc = Sequence[str | int]


def locate(yaml_text: str, loc: Loc) -> int | None:
    """1-based line of the field ``loc`` points at in ``yaml_text`` (the first document).

    Walks the composed node tree (which keeps source marks) along ``loc``: a ``str`` part
    selects a mapping key, an ``int`` part a sequence item (or a mapping key spelt as that
    number). Returns the line of the deepest node reached: the key's own line when the last
    part is a mapping key, so an unknown field points at itself and a missing field at the
    mapping that lacks it. None when the text is not YAML or is empty.
    """
    try:
        node = yaml.compose(yaml_text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        key_node, node = found
        line = (key_node or node).start_mark.line + 1
    return line


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
        return None
    is_item = isinstance(node, yaml.SequenceNode) and isinstance(part, int)
    if is_item and 0 <= int(part) < len(node.value):
        return None, node.value[int(part)]
    return None


def format_loc(loc: Loc) -> str:
    """``("filter", "threshold")`` -> ``filter.threshold``; ``(0, "name")`` -> ``[0].name``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def format_problem(path: Path | str, line: int | None, loc: Loc, message: str) -> str:
    """One ``file:line: field: message`` problem line (line omitted when unknown)."""
    where = f"{path}:{line}" if line is not None else str(path)
    return f"{where}: {format_loc(loc)}: {message}"


def parse_yaml(text: str, *, origin: Path | str = "<text>") -> object:
    """Parsed content of YAML text; every way PyYAML can fail becomes one ConfigError."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        message = f"invalid YAML: {reason}"
    except RecursionError:
        line, message = None, "invalid YAML: nested too deeply"
    except ValueError as exc:
        # e.g. an integer literal longer than Python will convert (4300 digits)
        line, message = None, f"invalid YAML: {str(exc)[:200]}"
    raise ConfigError([format_problem(origin, line, (), message)])
