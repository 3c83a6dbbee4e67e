"""Property-based fuzzing of the HTTP service from its own OpenAPI schema (schemathesis).

Every operation gets a bounded number of generated requests (valid and invalid ones); each answer
must not be a server error and must match the status codes, content types and response schemas
the OpenAPI document declares.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from test_service import write_scenario

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory):
    from lifecircle.service import Limits, create_app, load_state

    scenario = write_scenario(tmp_path_factory.mktemp("fuzz"))
    state = load_state(scenario, cache_dir=None, limits=Limits(max_features=50, timeout_s=10))
    return create_app(state)


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


#: (method, path, max_examples per generation mode): bounded so the file stays well under a minute.
OPERATIONS = [
    ("GET", "/health", 5),
    ("GET", "/standard", 5),
    ("GET", "/coverage/summary", 5),
    ("GET", "/coverage/units", 25),
    ("POST", "/distances", 25),
    ("POST", "/service-areas", 25),
    ("POST", "/score", 25),
    ("GET", "/layers/{layer}", 12),
    ("GET", "/map", 3),
]


#: Endpoints without parameters or body have nothing to make invalid: positive cases only.
NO_INPUT = ("/health", "/standard", "/coverage/summary")
CASES = [
    (m, p, n, mode)
    for mode in ("positive", "negative")
    for m, p, n in OPERATIONS
    if not (mode == "negative" and p in NO_INPUT)
]


@pytest.mark.parametrize(
    ("method", "path", "n", "mode"), CASES, ids=[f"{mode} {m} {p}" for m, p, _, mode in CASES]
)
def test_api_conforms_to_its_schema(api_schema, method: str, path: str, n: int, mode: str) -> None:
    from hypothesis import given
    from schemathesis import GenerationMode

    op = api_schema[path][method]
    strategy = op.as_strategy(
        GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    )
    statuses: list[int] = []

    @given(case=strategy)
    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case) -> None:
        response = case.call_and_validate(checks=CHECKS)
        statuses.append(response.status_code)

    run()
    assert statuses and all(s < 500 for s in statuses)


def test_schema_documents_every_endpoint(fuzz_app) -> None:
    paths = fuzz_app.openapi()["paths"]
    for p in (
        "/health",
        "/standard",
        "/coverage/summary",
        "/coverage/units",
        "/distances",
        "/service-areas",
        "/score",
        "/layers/{layer}",
        "/map",
    ):
        assert p in paths, p
    # request bodies carry examples, errors are problem details
    dist = paths["/distances"]["post"]
    assert "example" in str(dist["requestBody"]) or "examples" in str(dist["requestBody"])
    assert "application/problem+json" in dist["responses"]["422"]["content"]
    assert Path(__file__).exists()
