"""Reusing an ECR operation for ECR Public: where an ECR Public shape is ECR's minus some
members, the ECR answer is narrowed to the members the ECR Public shape has."""

from __future__ import annotations

from typing import Any

from botocore.model import Shape

from ecrd.aws.calls import Call
from ecrd.aws.endpoint import Operation


def narrowed(operation: Operation) -> Operation:
    async def public_operation(call: Call, params: dict[str, Any]) -> dict[str, Any]:
        return dict(narrow(call.operation.output_shape, await operation(call, params)))

    public_operation.__name__ = operation.__name__
    return public_operation


def narrow(shape: Shape, value: Any) -> Any:
    """`value` with every structure member the shape does not have removed, recursively."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return {
            name: narrow(shape.members[name], member)
            for name, member in value.items()
            if name in shape.members
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [narrow(shape.member, item) for item in value]
    return value
