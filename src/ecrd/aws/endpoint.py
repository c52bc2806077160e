"""The AWS JSON 1.1 front door: `POST /` routed by X-Amz-Target.

Each request: find the operation in the botocore model, validate the JSON body against its
input shape, run the operation, and render the result through its output shape. Every
response carries x-amzn-RequestId; every error is `{"__type", "message"}` with the shape's
name, also in x-amzn-ErrorType.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ecrd.auth.authorizer import AccessDenied, Origin
from ecrd.auth.principals import Principal, root_of
from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError, from_registry_error, generic_error, unsupported
from ecrd.aws.model import AwsService
from ecrd.aws.permissions import authorize_call, request_tags
from ecrd.aws.serialization import serialize_output
from ecrd.aws.signature import ReceivedRequest, read_signature, unknown_key, verify_signature
from ecrd.aws.validation import ParameterInvalid, validate_input
from ecrd.bounded_parsing import InputInvalid, parse_json
from ecrd.errors import RegistryError
from ecrd.settings import Settings

Operation = Callable[[Call, dict[str, Any]], Awaitable[dict[str, Any]]]

CONTENT_TYPE = "application/x-amz-json-1.1"
# The largest request is UploadLayerPart: a 20 MiB part, base64-encoded, plus JSON around it.
MAX_BODY_BYTES = 28 * 1024 * 1024
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
        body = await _read_body(request)
        principal, region = await _authenticate(request, body, service)
        request.state.principal = principal  # the access log names the caller
        params = _parse_json(body)
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
            principal=principal,
            region=region,
            request_id=request_id,
        )
        try:
            await authorize_call(call, validated, _origin(request, validated))
            return await implementation(call, validated), operation.output_shape
        except AccessDenied as denied:
            raise AwsError("AccessDeniedException", denied.message) from None
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
        return parse_json(body)
    except InputInvalid as error:
        raise AwsError("SerializationException", f"request body: {error}") from None


async def _authenticate(
    request: Request, body: bytes, service: AwsService
) -> tuple[Principal, str]:
    """The principal whose key signed the request, and the region of its credential scope."""
    received = ReceivedRequest(
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        headers=[
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in request.scope["headers"]
        ],
        body=body,
    )
    signed = read_signature(received, service.model.signing_name)
    settings: Settings = request.app.state.settings
    if settings.auth_mode == "open":
        return root_of(settings.account_id), signed.region
    owner = await request.app.state.services.identities.owner_of(signed.access_key_id)
    if owner is None:
        raise unknown_key()
    verify_signature(received, signed, owner.secret_access_key)
    return owner.principal, signed.region


def _origin(request: Request, params: dict[str, Any]) -> Origin:
    return Origin(
        source_ip=request.client.host if request.client else None,
        secure=request.url.scheme == "https",
        extra=request_tags(params),
    )


def _response(status: int, body: str, request_id: str, error_code: str | None = None) -> Response:
    headers = {"x-amzn-RequestId": request_id}
    if error_code is not None:
        headers["x-amzn-ErrorType"] = error_code
    return Response(body, status_code=status, media_type=CONTENT_TYPE, headers=headers)


def _error_response(error: AwsError, request_id: str) -> Response:
    body = {"__type": error.code, "message": error.message, **error.fields}
    return _response(error.status, json.dumps(body), request_id, error.code)
