"""ECR Public repositories: create (with catalog data) and catalog data.

Creating runs ECR's operation on the account's public registry and narrows its answer to ECR
Public's shape (describe and delete are ECR's, narrowed, in the operation table); ECR Public
has no mutability, scanning or encryption settings, so the ECR defaults it gets are never
shown.
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
