"""The OpenAPI document is the product's API definition: it must not drift unnoticed.

Regenerate the snapshot after an intended change with:
    CLIPQ_UPDATE_SNAPSHOT=1 pytest tests/api/test_openapi.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")


def current_document() -> dict:
    from api.main import create_app

    return create_app().openapi()


def test_openapi_matches_snapshot() -> None:
    document = current_document()
    if os.environ.get("CLIPQ_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert document == expected, "OpenAPI changed; see the module docstring to regenerate"


def test_every_operation_has_a_readable_id() -> None:
    ids = [
        operation["operationId"]
        for path in current_document()["paths"].values()
        for operation in path.values()
    ]
    assert len(ids) == len(set(ids))
    assert all(op.replace("_", "").isalpha() and op.islower() for op in ids), ids


def test_job_result_is_a_discriminated_union() -> None:
    schemas = current_document()["components"]["schemas"]
    result = schemas["Job"]["properties"]["result"]
    union = next(option for option in result["anyOf"] if "oneOf" in option)
    assert union["discriminator"]["propertyName"] == "kind"


def test_api_never_imports_the_ml_stack() -> None:
    code = (
        "import sys, api.main\n"
        "heavy = {'torch', 'transformers', 'torchvision', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
