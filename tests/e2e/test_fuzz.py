"""Fuzzing every operation of the live service's /openapi.json with schemathesis.

Valid and invalid inputs, a bounded number per operation, derandomized (the same cases
every run): no answer may be a 5xx, and every answer must be one the document declares,
with the declared content type and shape.

The operations are those the code declares; each is looked up in the document the live
service serves, so a route missing from it fails too. (schemathesis's own lazy fixture
loader, ``schemathesis.pytest.from_fixture``, breaks on pytest 9.2, which dropped the
private ``Node._nodeid`` it rewrites; hence plain Hypothesis over ``as_strategy``.)
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from tests.e2e.conftest import Service

OPERATIONS = [
    (method.upper(), path)
    for path, methods in create_app().openapi()["paths"].items()
    for method in methods
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SETTINGS = hypothesis.settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def live_schema(service: Service) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{service.base_url}/openapi.json")


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_conforms_to_the_document(
    live_schema: schemathesis.BaseSchema, method: str, path: str
) -> None:
    operation = live_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @SETTINGS
    @hypothesis.given(case=cases)
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=60)

    fuzz()
