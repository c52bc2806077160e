"""ECR Public repositories: create (with catalog data), describe, delete, catalog data.

Creating, describing and deleting run ECR's operations on the account's public registry and
narrow their answers to ECR Public's shapes; ECR Public has no mutability, scanning or
encryption settings, so the ECR defaults it gets are never shown.
"""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr import repositories as ecr_repositories
from ecrd.aws.ecr_public.catalog import catalog_data_output, stored_catalog_data
from ecrd.aws.ecr_public.narrowing import narrow
from ecrd.aws.errors import AwsError


async def create_repository(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    # Checked before anything is made: a refused request leaves no repository behind.
    stored = stored_catalog_data(None, params["catalogData"]) if params.get("catalogData") else None
    created = await ecr_repositories.create_repository(call, params)
    registry, repository = await call.repository(params)
    if stored is not None:
        await call.services.repositories.set_catalog_data(repository, stored)
    output = narrow(call.operation.output_shape, created)
    output["catalogData"] = catalog_data_output(call, registry, repository, stored)
    return dict(output)


async def describe_repositories(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return dict(
        narrow(
            call.operation.output_shape, await ecr_repositories.describe_repositories(call, params)
        )
    )


async def delete_repository(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return dict(
        narrow(call.operation.output_shape, await ecr_repositories.delete_repository(call, params))
    )


async def get_repository_catalog_data(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    stored = await call.services.repositories.catalog_data(repository)
    if stored is None:
        raise AwsError(
            "RepositoryCatalogDataNotFoundException",
            f"The repository catalog data for the repository with name '{repository.name}' "
            f"does not exist in the registry with id '{registry.account_id}'",
        )
    return {"catalogData": catalog_data_output(call, registry, repository, stored)}


async def put_repository_catalog_data(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    current = await call.services.repositories.catalog_data(repository)
    stored = stored_catalog_data(current, params["catalogData"])
    await call.services.repositories.set_catalog_data(repository, stored)
    return {"catalogData": catalog_data_output(call, registry, repository, stored)}
