"""The AWS JSON 1.1 front door: `POST /` routed by X-Amz-Target.

Each request: find the operation in the botocore model, validate the JSON body against its
input shape, run the operation, and render the result through its output shape. Every
response carries x-amzn-RequestId; every error is `{"__type", "message"}` with the shape's
name, also in x-amzn-ErrorType.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError, from_registry_error, generic_error, unsupported
from ecrd.aws.model import AwsService
from ecrd.aws.serialization import serialize_output
from ecrd.aws.validation import ParameterInvalid, validate_input
from ecrd.errors import RegistryError

Operation = Callable[[Call, dict[str, Any]], Awaitable[dict[str, Any]]]

CONTENT_TYPE = "application/x-amz-json-1.1"
# The largest request is UploadLayerPart: a 20 MiB part, base64-encoded, plus JSON around it.
MAX_BODY_BYTES = 28 * 1024 * 1024
_CREDENTIAL_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
logger = logging.getLogger("ecrd.aws")


class AwsEndpoint:
    """The ASGI endpoint for every AWS service ecrd answers."""

    def __init__(
        self, services: dict[str, AwsService], operations: dict[str, dict[str, Operation]]
    ) -> None:
        self._services = services
        # service name -> operation name -> implementation
        self._operations = operations

    async def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            result, output_shape = await self._answer(request, request_id)
            body = json.dumps(serialize_output(output_shape, result))
            return _response(200, body, request_id)
        except AwsError as error:
            return _error_response(error, request_id)
        except Exception:  # a bug: answer in AWS's shape and keep the details in the log
            logger.exception("request %s failed", request_id)
            return _error_response(
                AwsError("ServerException", "internal error", status=500), request_id
            )

    async def _answer(self, request: Request, request_id: str) -> tuple[dict[str, Any], Any]:
        target = request.headers.get("x-amz-target", "")
        prefix, _, operation_name = target.partition(".")
        service = self._services.get(prefix)
        operation = service.operation(operation_name) if service is not None else None
        if service is None or operation is None:
            raise AwsError("UnknownOperationException", f"Unknown operation {target[:200]!r}")
        params = _parse_json(await _read_body(request))
        try:
            validated = validate_input(operation.input_shape, params)
        except ParameterInvalid as invalid:
            code = generic_error(operation)
            message = (
                invalid.invalid_parameter_message()
                if code == "InvalidParameterException"
                else invalid.validation_message()
            )
            raise AwsError(code, message) from None
        implementation = self._operations.get(service.name, {}).get(operation.name)
        if implementation is None:
            raise unsupported(operation)
        call = Call(
            services=request.app.state.services,
            settings=request.app.state.settings,
            operation=operation,
            account_id=request.app.state.settings.account_id,
            region=_region_of(request, request.app.state.settings.region),
            request_id=request_id,
        )
        try:
            return await implementation(call, validated), operation.output_shape
        except RegistryError as error:
            raise from_registry_error(error, operation) from None


async def _read_body(request: Request) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise AwsError(
                    "RequestEntityTooLargeException",
                    f"request body exceeds {MAX_BODY_BYTES} bytes",
                    status=413,
                )
            parts.append(chunk)
    except ClientDisconnect:
        raise AwsError("SerializationException", "request body ended early") from None
    return b"".join(parts)


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AwsError(
            "SerializationException", f"request body is not valid JSON: {error}"
        ) from None


def _region_of(request: Request, default_region: str) -> str:
    """The region of the SigV4 credential scope; the default one when unsigned."""
    match = _CREDENTIAL_REGION.search(request.headers.get("authorization", ""))
    if match is not None and _REGION.match(match.group(1)):
        return match.group(1)
    return default_region


def _response(status: int, body: str, request_id: str, error_code: str | None = None) -> Response:
    headers = {"x-amzn-RequestId": request_id}
    if error_code is not None:
        headers["x-amzn-ErrorType"] = error_code
    return Response(body, status_code=status, media_type=CONTENT_TYPE, headers=headers)


def _error_response(error: AwsError, request_id: str) -> Response:
    body = {"__type": error.code, "message": error.message, **error.fields}
    return _response(error.status, json.dumps(body), request_id, error.code)
