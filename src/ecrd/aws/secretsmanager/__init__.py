"""The AWS Secrets Manager API (botocore service `secretsmanager`): the secrets a pull-through
cache rule's credentials live in, and what tools that set them up call."""

from __future__ import annotations

from ecrd.aws.endpoint import Operation
from ecrd.aws.secretsmanager import listing, secrets

OPERATIONS: dict[str, Operation] = {
    "CreateSecret": secrets.create_secret,
    "DescribeSecret": secrets.describe_secret,
    "GetSecretValue": secrets.get_secret_value,
    "PutSecretValue": secrets.put_secret_value,
    "UpdateSecret": secrets.update_secret,
    "DeleteSecret": secrets.delete_secret,
    "RestoreSecret": secrets.restore_secret,
    "TagResource": secrets.tag_resource,
    "UntagResource": secrets.untag_resource,
    "GetResourcePolicy": secrets.get_resource_policy,
    "ListSecrets": listing.list_secrets,
}
