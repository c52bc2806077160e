"""Catalog data: what the gallery shows of a public repository, and a registry's name."""

from __future__ import annotations

import base64
from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError
from ecrd.metadata.records import Registry, Repository

_TEXT_MEMBERS = ("description", "aboutText", "usageText")
_LIST_MEMBERS = ("architectures", "operatingSystems")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def stored_catalog_data(current: dict[str, Any] | None, given: dict[str, Any]) -> dict[str, Any]:
    """The catalog data after a put: members given replace the stored ones (a logo is kept as
    base64 of a PNG, which ECR Public requires)."""
    stored = dict(current or {})
    for name in (*_TEXT_MEMBERS, *_LIST_MEMBERS):
        if name in given:
            stored[name] = given[name]
    logo = given.get("logoImageBlob")
    if logo is not None:
        if not logo.startswith(_PNG_SIGNATURE):
            raise AwsError(
                "InvalidParameterException",
                "Invalid parameter at 'logoImageBlob' failed to satisfy constraint: "
                "'The logo image must be a PNG file'",
            )
        stored["logo"] = base64.b64encode(logo).decode()
    return stored


def catalog_data_output(
    call: Call, registry: Registry, repository: Repository, stored: dict[str, Any] | None
) -> dict[str, Any]:
    """A `RepositoryCatalogData` shape; the logo is given as the URL that serves it."""
    stored = stored or {}
    output: dict[str, Any] = {name: stored[name] for name in _TEXT_MEMBERS if name in stored}
    output.update({name: stored[name] for name in _LIST_MEMBERS if name in stored})
    if "logo" in stored:
        output["logoUrl"] = call.services.hosts.gallery_url(
            f"/gallery/{registry.alias}/{repository.name}/logo.png"
        )
    output["marketplaceCertified"] = False
    return output
