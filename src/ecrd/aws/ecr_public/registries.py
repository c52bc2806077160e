"""The account's public registry: its description, alias, catalog data and login token."""

from __future__ import annotations

import base64
from typing import Any

from ecrd.aws.calls import Call


async def describe_registries(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    # Each account has one public registry; the listing is never longer than a page.
    registry = await call.registry({})
    return {
        "registries": [
            {
                "registryId": registry.account_id,
                "registryArn": f"arn:aws:ecr-public::{registry.account_id}:registry/"
                f"{registry.account_id}",
                "registryUri": call.registry_host(registry),
                "verified": False,
                "aliases": [
                    {
                        "name": registry.alias,
                        "status": "ACTIVE",
                        "primaryRegistryAlias": True,
                        "defaultRegistryAlias": True,
                    }
                ],
            }
        ]
    }


async def get_registry_catalog_data(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry({})
    settings = await call.services.registries.settings(registry.id)
    return {"registryCatalogData": settings.get("catalogData", {})}


async def put_registry_catalog_data(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry({})
    settings = await call.services.registries.settings(registry.id)
    catalog = dict(settings.get("catalogData", {}))
    if "displayName" in params:
        catalog["displayName"] = params["displayName"]
    settings["catalogData"] = catalog
    await call.services.registries.set_settings(registry, settings)
    return {"registryCatalogData": catalog}


async def get_authorization_token(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    token, expires_at = await call.services.tokens.issue(
        call.account_id, call.principal.user_name, call.region, user_id=call.principal.user_id
    )
    return {
        "authorizationData": {
            "authorizationToken": base64.b64encode(f"AWS:{token}".encode()).decode(),
            "expiresAt": expires_at,
        }
    }
