"""The /v2/ routes. Names may hold slashes, so each route ends in a fixed suffix."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ecrd.oci import blobs, listings, manifests, uploads

_NAME = "/v2/{name:path}"


async def base(request: Request) -> Response:
    return JSONResponse({})


def oci_routes() -> list[BaseRoute]:
    return [
        Route("/v2/", base, methods=["GET"]),
        Route("/v2/_catalog", listings.catalog, methods=["GET"]),
        Route(f"{_NAME}/tags/list", listings.list_tags, methods=["GET"]),
        Route(f"{_NAME}/referrers/{{digest}}", listings.referrers, methods=["GET"]),
        Route(f"{_NAME}/manifests/{{reference}}", manifests.get_manifest, methods=["GET"]),
        Route(f"{_NAME}/manifests/{{reference}}", manifests.put_manifest, methods=["PUT"]),
        Route(f"{_NAME}/manifests/{{reference}}", manifests.delete_manifest, methods=["DELETE"]),
        Route(f"{_NAME}/blobs/uploads/", uploads.start_upload, methods=["POST"]),
        Route(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.patch_upload, methods=["PATCH"]),
        Route(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.finish_upload, methods=["PUT"]),
        Route(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.upload_status, methods=["GET"]),
        Route(f"{_NAME}/blobs/uploads/{{upload_id}}", uploads.cancel_upload, methods=["DELETE"]),
        Route(f"{_NAME}/blobs/{{digest}}", blobs.get_blob, methods=["GET"]),
        Route(f"{_NAME}/blobs/{{digest}}", blobs.delete_blob, methods=["DELETE"]),
    ]
