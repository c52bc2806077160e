"""Every implemented AWS operation, by botocore service name and operation name."""

from __future__ import annotations

from ecrd.aws import ecr, ecr_public, secretsmanager
from ecrd.aws.endpoint import Operation


def operation_tables() -> dict[str, dict[str, Operation]]:
    return {
        "ecr": ecr.OPERATIONS,
        "ecr-public": ecr_public.OPERATIONS,
        "secretsmanager": secretsmanager.OPERATIONS,
    }
