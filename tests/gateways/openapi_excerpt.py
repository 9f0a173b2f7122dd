"""The LiteLLM proxy's OpenAPI document, cut down to what gatewarden's adapter calls, and a
small structural validator for it (jsonschema is not a dependency).

``tests/fixtures/litellm_openapi_excerpt.json`` was made by this module from the
``/openapi.json`` of ``litellm[proxy]==1.106.2`` served offline (no database is needed to
serve the document)::

    curl -s http://127.0.0.1:4000/openapi.json > openapi.json
    python -m tests.gateways.openapi_excerpt openapi.json \
        > tests/fixtures/litellm_openapi_excerpt.json

The excerpt keeps, for every operation gatewarden calls, its query parameters and request and
response schemas. Every property *name* of a kept schema is kept (so a misspelt field is
caught), but only the properties gatewarden sends or reads keep their own schema; the others
become ``{}`` (anything), which keeps the file small.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

#: (method, path) of every call the LiteLLM adapter makes
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("get", "/key/info"),
    ("get", "/key/list"),
    ("post", "/key/block"),
    ("post", "/key/unblock"),
    ("post", "/key/update"),
    ("get", "/team/info"),
    ("get", "/v2/team/list"),
    ("post", "/team/update"),
    ("get", "/model/info"),
    ("post", "/model/update"),
    ("post", "/fallback"),
    ("get", "/fallback/{model}"),
    ("delete", "/fallback/{model}"),
)

#: properties whose schema is kept (what gatewarden sends or reads)
USED: frozenset[str] = frozenset(
    {
        "key",
        "key_alias",
        "token",
        "team_id",
        "team_alias",
        "blocked",
        "rpm_limit",
        "tpm_limit",
        "max_budget",
        "model_info",
        "litellm_params",
        "id",
        "order",
        "rpm",
        "tpm",
        "model",
        "fallback_models",
        "fallback_type",
        "keys",
        "teams",
        "total_count",
        "current_page",
        "total_pages",
        "total",
        "page",
        "page_size",
        "message",
    }
)

#: large schemas cut to the properties listed (their other properties are left out entirely)
TRIM: dict[str, tuple[str, ...]] = {
    "updateLiteLLMParams": ("order", "rpm", "tpm", "max_budget"),
}

_REF = "#/components/schemas/"


def excerpt(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The excerpt of a full OpenAPI document (see the module docstring)."""
    schemas: Mapping[str, Any] = doc["components"]["schemas"]
    wanted: dict[str, Any] = {}
    pending: list[str] = []

    def refs(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                name = str(node["$ref"]).removeprefix(_REF)
                if name not in wanted and name not in pending:
                    pending.append(name)
            return {k: refs(v) for k, v in node.items()}
        if isinstance(node, list):
            return [refs(v) for v in node]
        return node

    paths: dict[str, Any] = {}
    for method, path in OPERATIONS:
        op = doc["paths"][path][method]
        entry: dict[str, Any] = {
            "parameters": [
                {k: p[k] for k in ("name", "in", "required", "schema") if k in p}
                for p in op.get("parameters", [])
                if p.get("in") in ("query", "path")
            ]
        }
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "schema" in body:
            entry["requestBody"] = refs(body["schema"])
        ok = op.get("responses", {}).get("200", {}).get("content", {})
        response = ok.get("application/json", {}).get("schema")
        if response:
            entry["response"] = refs(response)
        paths.setdefault(path, {})[method] = refs(entry)
    while pending:
        name = pending.pop(0)
        schema = dict(schemas[name])
        props = schema.get("properties", {})
        if name in TRIM:
            props = {k: v for k, v in props.items() if k in TRIM[name]}
            schema["x-trimmed"] = True
        schema["properties"] = {k: (refs(v) if k in USED else {}) for k, v in props.items()}
        for drop in ("description", "examples", "example"):
            schema.pop(drop, None)
        wanted[name] = schema
    return {
        "x-source": "litellm[proxy]==1.106.2 /openapi.json (tests/gateways/openapi_excerpt.py)",
        "paths": paths,
        "components": {"schemas": dict(sorted(wanted.items()))},
    }


# -- validation ---------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False  # bool is an int in Python, never in JSON
    return isinstance(value, _TYPES[kind])


def problems(value: Any, schema: Mapping[str, Any], doc: Mapping[str, Any], at: str) -> list[str]:
    """Why ``value`` does not fit ``schema`` (empty when it does). Covers what the excerpt uses:
    $ref, anyOf, type, enum, required, properties (unknown names are problems: the proxy would
    silently ignore a misspelt field), additionalProperties, items, minItems, minimum."""
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(_REF)
        return problems(value, doc["components"]["schemas"][name], doc, at)
    if "anyOf" in schema:
        options = [problems(value, option, doc, at) for option in schema["anyOf"]]
        if any(not found for found in options):
            return []
        return [f"{at}: fits none of anyOf: " + " | ".join("; ".join(o) for o in options)]
    out: list[str] = []
    kind = schema.get("type")
    if isinstance(kind, str) and not _is(value, kind):
        return [f"{at}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, (int, float)) and "minimum" in schema and value < schema["minimum"]:
        out.append(f"{at}: {value!r} < minimum {schema['minimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{at}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            out.extend(problems(item, schema.get("items", {}), doc, f"{at}[{i}]"))
    if isinstance(value, dict) and ("properties" in schema or kind == "object"):
        props: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{at}: missing required {name!r}")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in props:
                out.extend(problems(item, props[name], doc, f"{at}.{name}"))
            elif isinstance(extra, dict):
                out.extend(problems(item, extra, doc, f"{at}.{name}"))
            elif extra is not True:
                out.append(f"{at}: unknown property {name!r}")
    return out


def _main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    json.dump(excerpt(doc), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv))
