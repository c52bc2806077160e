"""OCI error envelope, and the one table mapping domain errors to spec codes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ecrd import errors

OCI_ERRORS: dict[type[errors.RegistryError], tuple[int, str]] = {
    errors.NameInvalid: (400, "NAME_INVALID"),
    errors.TagInvalid: (400, "TAG_INVALID"),
    errors.DigestInvalid: (400, "DIGEST_INVALID"),
    errors.SizeInvalid: (400, "SIZE_INVALID"),
    errors.RepositoryNotFound: (404, "NAME_UNKNOWN"),
    errors.BlobNotFound: (404, "BLOB_UNKNOWN"),
    errors.ManifestNotFound: (404, "MANIFEST_UNKNOWN"),
    errors.UploadNotFound: (404, "BLOB_UPLOAD_UNKNOWN"),
    errors.UploadOutOfOrder: (416, "BLOB_UPLOAD_INVALID"),
    errors.ManifestInvalid: (400, "MANIFEST_INVALID"),
    errors.ManifestTooLarge: (413, "MANIFEST_INVALID"),
    errors.ManifestBlobUnknown: (400, "MANIFEST_BLOB_UNKNOWN"),
    errors.ManifestReferenced: (409, "DENIED"),
    errors.TagImmutable: (400, "TAG_INVALID"),
    errors.TooManyUploads: (429, "TOOMANYREQUESTS"),
    errors.BlobBusy: (429, "TOOMANYREQUESTS"),
    errors.UploadTooFragmented: (400, "BLOB_UPLOAD_INVALID"),
    errors.PullThroughPushRefused: (403, "DENIED"),
    errors.UpstreamDenied: (403, "DENIED"),
    # The spec has no code for an upstream out of reach; 503 tells clients to retry later.
    errors.UpstreamUnavailable: (503, "UNAVAILABLE"),
    # The spec has no code for it; Distribution answers its own failures with UNKNOWN.
    errors.StorageFull: (507, "UNKNOWN"),
}


class OciError(Exception):
    """An error found at the edge itself (a malformed header or parameter)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    detail: object = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"errors": [{"code": code, "message": message, "detail": detail}]}
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


async def registry_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, errors.RegistryError):
        raise error
    status, code = next(
        (OCI_ERRORS[kind] for kind in type(error).__mro__ if kind in OCI_ERRORS),
        (400, "UNSUPPORTED"),
    )
    headers = None
    detail: object = None
    if isinstance(error, errors.UploadOutOfOrder):
        headers = {"Range": f"0-{max(error.offset - 1, 0)}"}
        detail = {"offset": error.offset}
    if isinstance(error, errors.ManifestBlobUnknown):
        detail = {"digest": error.digest}
    return error_response(request, status, code, error.message, detail, headers)


async def oci_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, OciError):
        raise error
    return error_response(request, error.status, error.code, error.message)
