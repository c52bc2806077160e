"""The Amazon ECR Public API (botocore service `ecr-public`).

Where an operation's shapes are ECR's (layers, images, policies, tags), ECR's function runs on
the account's public registry (`Call.registry` picks it for ECR Public calls) and its answer
is narrowed to ECR Public's shape.
"""

from __future__ import annotations

from ecrd.aws.ecr import images as ecr_images
from ecrd.aws.ecr import layers as ecr_layers
from ecrd.aws.ecr import policies as ecr_policies
from ecrd.aws.ecr import repositories as ecr_repositories
from ecrd.aws.ecr_public import images, registries, repositories
from ecrd.aws.ecr_public.narrowing import narrowed
from ecrd.aws.endpoint import Operation

OPERATIONS: dict[str, Operation] = {
    "CreateRepository": repositories.create_repository,
    "DescribeRepositories": narrowed(ecr_repositories.describe_repositories),
    "DeleteRepository": narrowed(ecr_repositories.delete_repository),
    "GetRepositoryCatalogData": repositories.get_repository_catalog_data,
    "PutRepositoryCatalogData": repositories.put_repository_catalog_data,
    "DescribeRegistries": registries.describe_registries,
    "GetRegistryCatalogData": registries.get_registry_catalog_data,
    "PutRegistryCatalogData": registries.put_registry_catalog_data,
    "GetAuthorizationToken": registries.get_authorization_token,
    "DescribeImages": narrowed(ecr_images.describe_images),
    "DescribeImageTags": images.describe_image_tags,
    "PutImage": narrowed(ecr_images.put_image),
    "BatchDeleteImage": narrowed(ecr_images.batch_delete_image),
    "BatchCheckLayerAvailability": narrowed(ecr_layers.batch_check_layer_availability),
    "InitiateLayerUpload": narrowed(ecr_layers.initiate_layer_upload),
    "UploadLayerPart": narrowed(ecr_layers.upload_layer_part),
    "CompleteLayerUpload": narrowed(ecr_layers.complete_layer_upload),
    "GetRepositoryPolicy": narrowed(ecr_policies.get_repository_policy),
    "SetRepositoryPolicy": narrowed(ecr_policies.set_repository_policy),
    "DeleteRepositoryPolicy": narrowed(ecr_policies.delete_repository_policy),
    "TagResource": narrowed(ecr_repositories.tag_resource),
    "UntagResource": narrowed(ecr_repositories.untag_resource),
    "ListTagsForResource": narrowed(ecr_repositories.list_tags_for_resource),
}
