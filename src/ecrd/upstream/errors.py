"""What an upstream registry can do wrong, told apart as the pull-through cache needs them.

These are not domain errors (`ecrd.errors`): the cache decides what each means for a pull
(serve what is cached, or answer not found, denied or unavailable). Messages name the
upstream's host and path and the upstream's own error message; never credentials or tokens.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Any failure of an upstream request; `status` is the HTTP status when there was one.

    Raised as itself for answers none of the subclasses describe (a 400 or 405, say)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UpstreamUnauthorized(UpstreamError):
    """401 or 403 after the auth flow: the credentials are wrong, or missing where the upstream
    wants some (also: the token endpoint refused them)."""


class UpstreamNotFound(UpstreamError):
    """404, or MANIFEST_UNKNOWN / NAME_UNKNOWN / BLOB_UNKNOWN: no such repository, manifest or
    blob upstream."""


class UpstreamUnavailable(UpstreamError):
    """Out of reach for now: connection refused, a timeout, a body that broke off, 429 or a
    5xx."""


class UpstreamInvalid(UpstreamError):
    """An answer against the distribution spec: a digest that does not match, a manifest too
    large, a body that does not parse, a redirect loop."""
