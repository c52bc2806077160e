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
    finish_upload_actions,
    guarded,
    start_upload_actions,
)

_NAME = "/v2/{name:path}"


async def base(request: Request) -> Response:
    return JSONResponse({})


def oci_routes() -> list[BaseRoute]:
    """Each route with the ECR action it stands for, authorized before it runs."""
    return [
        Route("/v2/", guarded(base, None), methods=["GET"]),
        Route("/v2/_catalog", guarded(listings.catalog, CATALOG), methods=["GET"]),
        Route(f"{_NAME}/tags/list", guarded(listings.list_tags, LIST), methods=["GET"]),
        # Referrers are read with the image: whoever may pull may verify its signatures.
        Route(f"{_NAME}/referrers/{{digest}}", guarded(listings.referrers, PULL), methods=["GET"]),
        Route(
            f"{_NAME}/manifests/{{reference}}",
            guarded(manifests.get_manifest, PULL),
            methods=["GET"],
        ),
        Route(
            f"{_NAME}/manifests/{{reference}}",
            guarded(manifests.put_manifest, PUSH),
            methods=["PUT"],
        ),
        Route(
            f"{_NAME}/manifests/{{reference}}",
            guarded(manifests.delete_manifest, DELETE),
            methods=["DELETE"],
        ),
        Route(
            f"{_NAME}/blobs/uploads/",
            guarded(uploads.start_upload, start_upload_actions),
            methods=["POST"],
        ),
        Route(
            f"{_NAME}/blobs/uploads/{{upload_id}}",
            guarded(uploads.patch_upload, UPLOAD_PART),
            methods=["PATCH"],
        ),
        Route(
            f"{_NAME}/blobs/uploads/{{upload_id}}",
            guarded(uploads.finish_upload, finish_upload_actions),
            methods=["PUT"],
        ),
        Route(
            f"{_NAME}/blobs/uploads/{{upload_id}}",
            guarded(uploads.upload_status, UPLOAD_PART),
            methods=["GET"],
        ),
        Route(
            f"{_NAME}/blobs/uploads/{{upload_id}}",
            guarded(uploads.cancel_upload, UPLOAD_PART),
            methods=["DELETE"],
        ),
        # HEAD is how pushers check for a layer; GET is a pull's download. The HEAD route
        # comes first because Starlette lets a GET route answer HEAD as well.
        Route(f"{_NAME}/blobs/{{digest}}", guarded(blobs.get_blob, CHECK_LAYER), methods=["HEAD"]),
        Route(f"{_NAME}/blobs/{{digest}}", guarded(blobs.get_blob, DOWNLOAD), methods=["GET"]),
        Route(f"{_NAME}/blobs/{{digest}}", guarded(blobs.delete_blob, DELETE), methods=["DELETE"]),
    ]
