"""Multipart form fields that need more than a type: labels and per-image metadata.

A label is checked by the one :data:`clipcore.prompts.Label` type, whether it comes as a
classification's form field or inside an ingest's comma-separated one. Each refusal is a
422 naming the field (``labels[3]``, ``metadata[0]``). What a field may derive is bounded
like what it says directly: the labels of one ingest count against the same
``CLIPQ_MAX_LABELS`` as a classification's.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from clipcore.errors import InvalidInput
from clipcore.prompts import Label
from clipq.settings import Settings

MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 8


_LABEL: TypeAdapter[str] = TypeAdapter(Label)


def _checked_label(raw: str, field: str) -> str:
    try:
        return _LABEL.validate_python(raw)
    except ValidationError as exc:
        raise InvalidInput.for_field(field, exc.errors()[0]["msg"]) from None


def clean_labels(labels: list[str], max_labels: int) -> list[str]:
    """A classification's labels (each already a valid :data:`Label`, trimmed, by its form
    field's type); refuse none, duplicate or too many."""
    if not labels:
        raise InvalidInput.for_field("labels", "at least one label is required")
    if len(labels) > max_labels:
        raise InvalidInput.for_field("labels", f"{len(labels)} labels is more than {max_labels}")
    seen: set[str] = set()
    for index, label in enumerate(labels):
        if label in seen:
            raise InvalidInput.for_field(f"labels[{index}]", f"duplicate label {label!r}")
        seen.add(label)
    return labels


def ingest_labels(fields: list[str] | None, count: int, max_labels: int) -> list[list[str]]:
    """Per image, in order, its comma-separated labels; at most ``max_labels`` distinct ones
    in the whole request (they become evaluation queries later)."""
    if not fields:
        return [[] for _ in range(count)]
    if len(fields) != count:
        raise InvalidInput.for_field(
            "labels", f"{len(fields)} label fields for {count} images: give one per image, in order"
        )
    per_image, distinct = [], set()
    for index, text in enumerate(fields):
        field = f"labels[{index}]"
        labels = list(
            dict.fromkeys(_checked_label(part, field) for part in text.split(",") if part.strip())
        )
        distinct.update(labels)
        if len(distinct) > max_labels:
            raise InvalidInput.for_field(
                field, f"the images of one request may carry at most {max_labels} distinct labels"
            )
        per_image.append(labels)
    return per_image


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (strings skipped), without parsing
    it: json.loads itself recurses, and fails past Python's recursion limit."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def ingest_metadata(fields: list[str] | None, count: int) -> list[dict[str, Any]]:
    """Per image, in order, a JSON object of at most 4 KB nested at most 8 deep."""
    if not fields:
        return [{} for _ in range(count)]
    if len(fields) != count:
        raise InvalidInput.for_field(
            "metadata", f"{len(fields)} metadata fields for {count} images: one per image"
        )
    parsed = []
    for index, text in enumerate(fields):
        field = f"metadata[{index}]"
        if len(text.encode()) > MAX_METADATA_BYTES:
            raise InvalidInput.for_field(field, f"at most {MAX_METADATA_BYTES} bytes")
        if json_depth(text) > MAX_METADATA_DEPTH:
            raise InvalidInput.for_field(
                field, f"nested more than {MAX_METADATA_DEPTH} levels deep"
            )
        try:
            value = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidInput.for_field(field, f"not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise InvalidInput.for_field(field, "must be a JSON object")
        parsed.append(value)
    return parsed


MODEL_FIELD = (
    "The model to run on, one of GET /v1/models (a model string such as 'embedded' or "
    "'hf:openai/clip-vit-base-patch32'); default: the deployment's first."
)


def served_model(settings: Settings, requested: str | None, field: str = "model") -> str:
    """The served model a request names (its default when none); a 422 naming ``field`` when
    the deployment does not serve it."""
    model = settings.served_model(requested or "")
    if model is None:
        served = ", ".join(repr(m) for m in settings.served_models)
        raise InvalidInput.for_field(
            field, f"{requested!r} is not served here; this deployment serves {served}"
        )
    return model
