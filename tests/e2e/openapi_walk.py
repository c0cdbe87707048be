"""Every operation of the OpenAPI document, with a request the schema accepts.

The access tests walk these, so a route added tomorrow is checked without anyone
writing its test: the paths come from ``/openapi.json``, the ids from resources
that really exist, and the bodies from the operations' own schemas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.support import png_bytes

PNG = png_bytes((200, 40, 40))


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # e.g. /v1/collections/{collection_id}
    spec: dict[str, Any]

    @property
    def parameters(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "path"]

    def url(self, ids: dict[str, str]) -> str:
        missing = [name for name in self.parameters if name not in ids]
        assert not missing, f"{self.method} {self.template}: no test resource for {missing}"
        return self.template.format(**{name: ids[name] for name in self.parameters})


def operations(document: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method.upper(), path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
    ]


def request_body(document: dict[str, Any], operation: Operation) -> dict[str, Any]:
    """httpx keyword arguments for a body the operation's schema accepts (none if it has none)."""
    content = operation.spec.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        schema = content["application/json"]["schema"]
        return {"json": _example(document, schema)}
    if "multipart/form-data" in content:
        schema = _resolve(document, content["multipart/form-data"]["schema"])
        return {"files": _multipart(document, schema)}
    assert not content, f"{operation.method} {operation.template}: unexpected body {content}"
    return {}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _is_file(schema: dict[str, Any]) -> bool:
    return schema.get("format") == "binary" or "contentMediaType" in schema


def _multipart(document: dict[str, Any], schema: dict[str, Any]) -> list[tuple]:
    parts: list[tuple] = []
    for name in schema.get("required", []):
        field = _resolve(document, schema["properties"][name])
        items = _resolve(document, field.get("items", {}))
        if _is_file(field) or _is_file(items):
            parts.append((name, ("a.png", PNG, "image/png")))
        else:
            value = _example(document, field)
            for element in value if isinstance(value, list) else [value]:
                text = element if isinstance(element, str) else json.dumps(element)
                parts.append((name, (None, text)))
    return parts


def _example(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A small value the schema accepts: its required properties only, defaults where given."""
    schema = _resolve(document, schema)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:  # a discriminator's value
        return schema["const"]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            options = [o for o in schema[union] if _resolve(document, o).get("type") != "null"]
            return _example(document, options[0])
    kind = schema.get("type")
    if kind == "object":
        return {
            name: _example(document, schema["properties"][name])
            for name in schema.get("required", [])
        }
    if kind == "array":
        return [_example(document, schema.get("items", {}))] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return "x" * max(1, schema.get("minLength", 1))
