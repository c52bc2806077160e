"""Rendering results through the botocore output shape: epoch-second timestamps, base64
blobs, and only the members the shape has."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from botocore.model import Shape  # type: ignore[import-untyped]


def serialize_output(shape: Shape | None, value: Any) -> Any:
    """`value` as the JSON the shape describes; a key the shape lacks raises ValueError (a
    bug in ecrd that tests must catch)."""
    if shape is None:
        return {}
    kind = shape.type_name
    if kind == "structure":
        output = {}
        for name, item in value.items():
            if name not in shape.members:
                raise ValueError(f"{shape.name} has no member {name!r}")
            if item is not None:
                output[name] = serialize_output(shape.members[name], item)
        return output
    if kind == "list":
        return [serialize_output(shape.member, item) for item in value]
    if kind == "map":
        return {key: serialize_output(shape.value, item) for key, item in value.items()}
    if kind == "timestamp":
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.timestamp() if isinstance(moment, datetime) else value
    if kind == "blob":
        return base64.b64encode(value).decode()
    return value
