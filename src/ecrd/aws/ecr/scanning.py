"""Scanning operations: the registry's scanning configuration."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.registry.scanning_configurations import BASIC


async def put_registry_scanning_configuration(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    configuration = await call.services.scanning.put(
        registry, params.get("scanType", BASIC), list(params.get("rules") or [])
    )
    return {"registryScanningConfiguration": configuration}


async def get_registry_scanning_configuration(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    return {
        "registryId": registry.account_id,
        "scanningConfiguration": await call.services.scanning.get(registry),
    }
