"""Structure-aware mutation shared by the fuzz suites: take a valid document (a shipped YAML
file, a Slack payload) and replace, delete or add one node, so examples stay close enough to
valid to reach the code behind the first type check."""

from __future__ import annotations

from collections.abc import Iterator
from copy import deepcopy
from typing import Any

OPS = ("replace", "replace", "delete", "add")


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every node's path: dict keys and list indices."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


def mutate(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    """A copy of ``doc`` with the node at ``path`` replaced, deleted, or given a sibling."""
    if not path:
        return value if op == "replace" else doc
    copy = deepcopy(doc)
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"unknown_{last}"] = value
    else:
        parent.append(value)
    return copy
