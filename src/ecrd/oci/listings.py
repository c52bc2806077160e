"""Lists: tags of a repository, the catalog of repositories, and referrers of a manifest."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ecrd.digests import Digest
from ecrd.errors import RepositoryNotFound
from ecrd.oci.requests import next_link, page, registry_of, repository_to_read, services_of
from ecrd.registry import media_types


async def _page_of_names(
    request: Request,
    path: str,
    fetch: Callable[[str | None, int], Awaitable[list[str]]],
) -> tuple[list[str], dict[str, str]]:
    """One page of names, fetching one extra to know whether a `Link` to the next is due."""
    limit, last = page(request)
    names = await fetch(last, limit + 1) if limit else []
    if len(names) <= limit:
        return names, {}
    names = names[:limit]
    return names, {"Link": next_link(path, limit, names[-1])}


async def list_tags(request: Request) -> Response:
    services = services_of(request)
    repository = await repository_to_read(request)

    async def fetch(after: str | None, limit: int) -> list[str]:
        return await services.manifests.tags(repository, after, limit)

    # Named as the path names it (`<alias>/<name>` for a public repository).
    path_name = request.path_params["name"]
    names, headers = await _page_of_names(request, f"/v2/{path_name}/tags/list", fetch)
    return JSONResponse({"name": path_name, "tags": names}, headers=headers)


async def catalog(request: Request) -> Response:
    services = services_of(request)
    registry = await registry_of(request)

    async def fetch(after: str | None, limit: int) -> list[str]:
        return await services.repositories.names(registry, after, limit)

    names, headers = await _page_of_names(request, "/v2/_catalog", fetch)
    return JSONResponse({"repositories": names}, headers=headers)


async def referrers(request: Request) -> Response:
    services = services_of(request)
    artifact_type = request.query_params.get("artifactType") or None
    subject_digest = str(Digest.parse(request.path_params["digest"]))
    try:
        repository = await repository_to_read(request)
    except RepositoryNotFound:
        # Nothing refers to anything in a repository never pushed to: an empty index, as
        # the Distribution Spec's conformance tests expect.
        repository = None
    found = []
    if repository is not None:
        found = await services.manifests.referrers(
            repository, subject_digest, [artifact_type] if artifact_type else None
        )
    descriptors = []
    for manifest in found:
        descriptor: dict[str, object] = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(manifest.payload),
        }
        if manifest.artifact_type is not None:
            descriptor["artifactType"] = manifest.artifact_type
        if manifest.annotations_json is not None:
            descriptor["annotations"] = json.loads(manifest.annotations_json)
        descriptors.append(descriptor)
    index = {
        "schemaVersion": 2,
        "mediaType": media_types.OCI_INDEX,
        "manifests": descriptors,
    }
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return Response(
        json.dumps(index, separators=(",", ":")),
        headers=headers,
        media_type=media_types.OCI_INDEX,
    )
