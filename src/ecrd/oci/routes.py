"""The /v2/ routes. Names may hold slashes, so each route ends in a fixed suffix."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ecrd.oci import blobs, listings, manifests, uploads
from ecrd.oci.access import (
    CATALOG,
    CHECK_LAYER,
    DELETE,
    DOWNLOAD,
    LIST,
    PULL,
    PUSH,
    UPLOAD_PART,
    Actions,
    Endpoint,
    finish_upload_actions,
    guarded,
    start_upload_actions,
    token_endpoint,
)

_NAME = "/v2/{name:path}"


async def base(request: Request) -> Response:
    return JSONResponse({})


_MANIFEST = f"{_NAME}/manifests/{{reference}}"
_UPLOADS = f"{_NAME}/blobs/uploads/"
_UPLOAD = f"{_NAME}/blobs/uploads/{{upload_id}}"
_BLOB = f"{_NAME}/blobs/{{digest}}"

# (path, method, endpoint, the ECR action(s) it stands for). Where two routes share a path,
# HEAD comes before GET because Starlette lets a GET route answer HEAD as well.
_TABLE: list[tuple[str, str, Endpoint, Actions]] = [
    ("/v2/", "GET", base, None),
    ("/v2/_catalog", "GET", listings.catalog, CATALOG),
    (f"{_NAME}/tags/list", "GET", listings.list_tags, LIST),
    # Referrers are read with the image: whoever may pull may verify its signatures.
    (f"{_NAME}/referrers/{{digest}}", "GET", listings.referrers, PULL),
    (_MANIFEST, "GET", manifests.get_manifest, PULL),
    (_MANIFEST, "PUT", manifests.put_manifest, PUSH),
    (_MANIFEST, "DELETE", manifests.delete_manifest, DELETE),
    (_UPLOADS, "POST", uploads.start_upload, start_upload_actions),
    (_UPLOAD, "PATCH", uploads.patch_upload, UPLOAD_PART),
    (_UPLOAD, "PUT", uploads.finish_upload, finish_upload_actions),
    (_UPLOAD, "GET", uploads.upload_status, UPLOAD_PART),
    (_UPLOAD, "DELETE", uploads.cancel_upload, UPLOAD_PART),
    # HEAD is how pushers check for a layer; GET is a pull's download.
    (_BLOB, "HEAD", blobs.get_blob, CHECK_LAYER),
    (_BLOB, "GET", blobs.get_blob, DOWNLOAD),
    (_BLOB, "DELETE", blobs.delete_blob, DELETE),
]


def oci_routes() -> list[BaseRoute]:
    """Each route authorized as the ECR action it stands for before it runs, and the token
    endpoint ECR Public clients get their Bearer token from."""
    return [
        *(
            Route(path, guarded(endpoint, actions), methods=[method])
            for path, method, endpoint, actions in _TABLE
        ),
        Route("/token", token_endpoint, methods=["GET"]),
    ]
