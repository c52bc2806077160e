"""GET /: what a person who opens the server's address needs to know, instead of a 405.

A short HTML page, or JSON for a client that asks for JSON (and not HTML), naming the API
endpoint, the registry, the gallery and the operator's endpoints with example commands. Both
are made once, from the settings: the address is the one clients are told to use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from starlette.requests import Request
from starlette.responses import Response

from ecrd import __version__
from ecrd.settings import Settings

# The page needs no script, no style sheet and no image.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept",
}
_VARY = {"Vary": "Accept"}


@dataclass(frozen=True)
class Entry:
    name: str
    method: str
    path: str
    description: str
    example: str


def entries(settings: Settings) -> list[Entry]:
    url = f"{settings.public_scheme}://{settings.public_address}"
    host = settings.public_address
    return [
        Entry(
            "api", "POST", "/",
            "The Amazon ECR and ECR Public APIs (AWS JSON 1.1, SigV4): point the aws CLI or "
            "boto3 here with their endpoint URL.",
            f"aws ecr describe-repositories --endpoint-url {url}\n"
            f"aws ecr-public describe-registries --endpoint-url {url}",
        ),
        Entry(
            "registry", "GET", "/v2/",
            "The OCI Distribution API: docker, podman, skopeo and oras push and pull here, "
            "logged in with a token from get-login-password.",
            f"aws ecr get-login-password --endpoint-url {url} "
            f"| docker login --username AWS --password-stdin {host}",
        ),
        Entry("gallery", "GET", "/gallery", "The public repositories, searchable.", ""),
        Entry("health", "GET", "/healthz", "200 while the process answers.", ""),
        Entry(
            "readiness", "GET", "/readyz",
            "200 when the metadata and blob stores answer, 503 naming the one that does not.", "",
        ),
        Entry("metrics", "GET", "/metrics", "Prometheus metrics, text format.", ""),
    ]  # fmt: skip


def _html(found: list[Entry]) -> str:
    rows = []
    for entry in found:
        example = f"<pre>{escape(entry.example)}</pre>" if entry.example else ""
        path = escape(entry.path)
        if entry.method == "GET":
            path = f'<a href="{path}">{path}</a>'
        rows.append(
            f"<dt><code>{entry.method} {path}</code></dt>"
            f"<dd>{escape(entry.description)}{example}</dd>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        "<title>ecrd</title><style>body{font-family:system-ui,sans-serif;max-width:48rem;"
        "margin:2rem auto;padding:0 1rem;line-height:1.5}dd{margin:0 0 1rem 1.5rem}"
        "pre{background:#f4f4f4;padding:.5rem;overflow-x:auto;white-space:pre-wrap}</style>"
        f"</head><body><h1>ecrd {escape(__version__)}</h1><p>A container registry speaking "
        "the Amazon ECR and ECR Public APIs and the OCI Distribution API, on this one port."
        f"</p><dl>{''.join(rows)}</dl></body></html>"
    )


class HomePage:
    def __init__(self, settings: Settings) -> None:
        found = entries(settings)
        self._html = _html(found).encode()
        self._json = json.dumps(
            {
                "service": "ecrd",
                "version": __version__,
                "endpoints": {
                    entry.name: {
                        "method": entry.method,
                        "path": entry.path,
                        "description": entry.description,
                        **({"example": entry.example} if entry.example else {}),
                    }
                    for entry in found
                },
            }
        ).encode()

    async def answer(self, request: Request) -> Response:
        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/html" not in accept:
            return Response(self._json, media_type="application/json", headers=_VARY)
        return Response(self._html, media_type="text/html", headers=_HEADERS)
