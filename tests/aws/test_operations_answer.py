"""Every operation of both models answers with a modeled error or a result, never a 500, and
the coverage table in docs/ is the one the code generates."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ecrd.aws.coverage import coverage_markdown
from ecrd.aws.model import load_services

SERVICES = load_services()
OPERATIONS = [
    (service.target_prefix, name)
    for service in SERVICES.values()
    for name in sorted(service.model.operation_names)
]
GENERIC = {"InvalidParameterException", "ValidationException", "UnsupportedCommandException"}


@pytest.mark.parametrize(("prefix", "operation"), OPERATIONS)
def test_operation_with_empty_request_answers_a_modeled_error_or_result(
    client: httpx.Client, prefix: str, operation: str
) -> None:
    # Given an operation of the model, when it is called with an empty JSON object
    response = client.post(
        "/",
        content=b"{}",
        headers={
            "X-Amz-Target": f"{prefix}.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    # Then the answer is a success or a 400 whose __type is one the operation may raise
    assert response.headers["x-amzn-RequestId"]
    if response.status_code == 200:
        return
    assert response.status_code == 400, response.text
    body = response.json()
    model = SERVICES[prefix].model.operation_model(operation)
    modeled = {shape.name for shape in model.error_shapes} | GENERIC
    assert body["__type"] in modeled
    assert response.headers["x-amzn-ErrorType"] == body["__type"]
    assert body["message"]


def test_coverage_table_is_current() -> None:
    # The docs table is generated; a change to the operations must regenerate it.
    written = (Path(__file__).parents[2] / "docs" / "api-coverage.md").read_text()
    assert written == coverage_markdown(), "run: python -m ecrd.aws.coverage > docs/api-coverage.md"
