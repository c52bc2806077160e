"""The Amazon ECR API (botocore service `ecr`): one small function per operation."""

from __future__ import annotations

from ecrd.aws.ecr import (
    authorization,
    creation_templates,
    images,
    layers,
    lifecycle,
    policies,
    pull_through_rules,
    pull_time_exclusions,
    registry,
    replication,
    repositories,
    storage_classes,
)
from ecrd.aws.endpoint import Operation

OPERATIONS: dict[str, Operation] = {
    "CreateRepository": repositories.create_repository,
    "DescribeRepositories": repositories.describe_repositories,
    "DeleteRepository": repositories.delete_repository,
    "PutImageTagMutability": repositories.put_image_tag_mutability,
    "PutImageScanningConfiguration": repositories.put_image_scanning_configuration,
    "TagResource": repositories.tag_resource,
    "UntagResource": repositories.untag_resource,
    "ListTagsForResource": repositories.list_tags_for_resource,
    "GetRepositoryPolicy": policies.get_repository_policy,
    "SetRepositoryPolicy": policies.set_repository_policy,
    "DeleteRepositoryPolicy": policies.delete_repository_policy,
    "PutImage": images.put_image,
    "BatchGetImage": images.batch_get_image,
    "BatchDeleteImage": images.batch_delete_image,
    "DescribeImages": images.describe_images,
    "ListImages": images.list_images,
    "ListImageReferrers": images.list_image_referrers,
    "BatchCheckLayerAvailability": layers.batch_check_layer_availability,
    "InitiateLayerUpload": layers.initiate_layer_upload,
    "UploadLayerPart": layers.upload_layer_part,
    "CompleteLayerUpload": layers.complete_layer_upload,
    "GetDownloadUrlForLayer": layers.get_download_url_for_layer,
    "GetAuthorizationToken": authorization.get_authorization_token,
    "DescribeRegistry": replication.describe_registry,
    "PutReplicationConfiguration": replication.put_replication_configuration,
    "DescribeImageReplicationStatus": replication.describe_image_replication_status,
    "StartReplicationBackfill": replication.start_replication_backfill,
    "StopReplicationBackfill": replication.stop_replication_backfill,
    "DescribeReplicationBackfillResults": replication.describe_replication_backfill_results,
    "ListReplicationBackfills": replication.list_replication_backfills,
    "GetRegistryPolicy": registry.get_registry_policy,
    "PutRegistryPolicy": registry.put_registry_policy,
    "DeleteRegistryPolicy": registry.delete_registry_policy,
    "GetAccountSetting": registry.get_account_setting,
    "PutAccountSetting": registry.put_account_setting,
    "BatchGetRepositoryScanningConfiguration": (
        repositories.batch_get_repository_scanning_configuration
    ),
    "PutLifecyclePolicy": lifecycle.put_lifecycle_policy,
    "GetLifecyclePolicy": lifecycle.get_lifecycle_policy,
    "DeleteLifecyclePolicy": lifecycle.delete_lifecycle_policy,
    "StartLifecyclePolicyPreview": lifecycle.start_lifecycle_policy_preview,
    "GetLifecyclePolicyPreview": lifecycle.get_lifecycle_policy_preview,
    "UpdateImageStorageClass": storage_classes.update_image_storage_class,
    "RegisterPullTimeUpdateExclusion": pull_time_exclusions.register_pull_time_update_exclusion,
    "DeregisterPullTimeUpdateExclusion": (
        pull_time_exclusions.deregister_pull_time_update_exclusion
    ),
    "ListPullTimeUpdateExclusions": pull_time_exclusions.list_pull_time_update_exclusions,
    "CreateRepositoryCreationTemplate": creation_templates.create_repository_creation_template,
    "DescribeRepositoryCreationTemplates": (
        creation_templates.describe_repository_creation_templates
    ),
    "UpdateRepositoryCreationTemplate": creation_templates.update_repository_creation_template,
    "DeleteRepositoryCreationTemplate": creation_templates.delete_repository_creation_template,
    "CreatePullThroughCacheRule": pull_through_rules.create_pull_through_cache_rule,
    "DescribePullThroughCacheRules": pull_through_rules.describe_pull_through_cache_rules,
    "UpdatePullThroughCacheRule": pull_through_rules.update_pull_through_cache_rule,
    "DeletePullThroughCacheRule": pull_through_rules.delete_pull_through_cache_rule,
    "ValidatePullThroughCacheRule": pull_through_rules.validate_pull_through_cache_rule,
}
