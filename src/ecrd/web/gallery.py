"""GET /gallery (search), /gallery/<alias>/<name> (one repository) and its logo."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from ecrd.metadata.gallery import GalleryStore, PublicRepository
from ecrd.registry.services import RegistryServices
from ecrd.web.markdown import render

# The tag table shows at most this many tags, newest image first.
MAX_TAGS = 500
_TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_TEMPLATES.env.filters["markdown"] = render


# The pages need no script at all; the policy makes any that slipped into catalog text inert.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def _page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    return _TEMPLATES.TemplateResponse(
        request, template, context, status_code=status_code, headers=_PAGE_HEADERS
    )


def _services(request: Request) -> RegistryServices:
    services: RegistryServices = request.app.state.services
    return services


def _gallery(request: Request) -> GalleryStore:
    return GalleryStore(_services(request).database)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _matches(repository: PublicRepository, query: str) -> bool:
    wanted = query.casefold()
    description = str(repository.catalog_data.get("description", ""))
    return wanted in repository.path.casefold() or wanted in description.casefold()


async def gallery(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()[:200]
    found = await _gallery(request).repositories()
    if query:
        found = [repository for repository in found if _matches(repository, query)]
    return _page(request, "list.html", {"repositories": found, "query": query})


async def repository_page(request: Request) -> Response:
    alias, name = request.path_params["alias"], request.path_params["name"]
    found = await _gallery(request).repositories(alias, name)
    if not found:
        return _page(request, "not_found.html", {"path": f"{alias}/{name}"}, status_code=404)
    return _page(
        request,
        "repository.html",
        {
            "repository": found[0],
            "tags": await _tags(request, alias, name),
            "image": _services(request).hosts.public_image(alias, name),
        },
    )


async def _tags(request: Request, alias: str, name: str) -> list[dict[str, Any]]:
    services = _services(request)
    registry = await services.registries.by_alias(alias)
    repository = None if registry is None else await services.repositories.lookup(registry, name)
    if repository is None:
        return []
    page, _ = await services.images.tagged_page(repository, None, MAX_TAGS)
    rows = [
        {
            "tag": entry.tag,
            "size": human_size(entry.image.size),
            "pushed_at": entry.image.pushed_at,
        }
        for entry in page
    ]
    rows.sort(key=lambda row: (row["pushed_at"], row["tag"]), reverse=True)
    return rows


async def logo(request: Request) -> Response:
    alias, name = request.path_params["alias"], request.path_params["name"]
    found = await _gallery(request).repositories(alias, name)
    encoded = found[0].catalog_data.get("logo") if found else None
    if not encoded:
        return Response("no logo", status_code=404, media_type="text/plain")
    return Response(
        base64.b64decode(encoded),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_TEMPLATES.env.filters["iso"] = iso


def gallery_routes() -> list[BaseRoute]:
    return [
        Route("/gallery", gallery, methods=["GET"]),
        Route("/gallery/{alias}/{name:path}/logo.png", logo, methods=["GET"]),
        Route("/gallery/{alias}/{name:path}", repository_page, methods=["GET"]),
    ]
