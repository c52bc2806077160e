"""Rendering results through the real ecr and ecr-public output shapes."""

from __future__ import annotations

import enum
import functools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel

from ecrd.aws.serialization import serialize_output

PUSHED_AT = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64


@functools.cache
def model(service: str) -> ServiceModel:
    return ServiceModel(Loader().load_service_model(service, "service-2"), service)


def output_shape(operation: str, service: str = "ecr") -> Any:
    return model(service).operation_model(operation).output_shape


def test_describe_images_renders_nested_details() -> None:
    # given a DescribeImages result with a list of image details holding timestamps and a map
    result = {
        "imageDetails": [
            {
                "registryId": "123456789012",
                "repositoryName": "team/app",
                "imageDigest": DIGEST,
                "imageTags": ["v1", "latest"],
                "imageSizeInBytes": 1024,
                "imagePushedAt": PUSHED_AT,
                "imageScanFindingsSummary": {"findingSeverityCounts": {"HIGH": 2}},
            },
            {"imageDigest": DIGEST, "imagePushedAt": PUSHED_AT + timedelta(seconds=1)},
        ],
        "nextToken": "token",
    }
    # when it is rendered
    rendered = serialize_output(output_shape("DescribeImages"), result)
    # then timestamps are epoch seconds and everything else is as given
    assert rendered == {
        "imageDetails": [
            {
                "registryId": "123456789012",
                "repositoryName": "team/app",
                "imageDigest": DIGEST,
                "imageTags": ["v1", "latest"],
                "imageSizeInBytes": 1024,
                "imagePushedAt": 1700000000.123,
                "imageScanFindingsSummary": {"findingSeverityCounts": {"HIGH": 2}},
            },
            {"imageDigest": DIGEST, "imagePushedAt": 1700000001.123},
        ],
        "nextToken": "token",
    }
    # and the JSON text carries the milliseconds without float noise
    assert '"imagePushedAt": 1700000000.123' in json.dumps(rendered)


def test_timestamp_is_float_epoch_seconds() -> None:
    rendered = serialize_output(
        output_shape("CreateRepository"), {"repository": {"createdAt": PUSHED_AT}}
    )
    assert rendered == {"repository": {"createdAt": 1700000000.123}}
    assert isinstance(rendered["repository"]["createdAt"], float)


def test_naive_timestamp_is_taken_as_utc() -> None:
    naive = PUSHED_AT.replace(tzinfo=None)
    rendered = serialize_output(
        output_shape("CreateRepository"), {"repository": {"createdAt": naive}}
    )
    assert rendered["repository"]["createdAt"] == 1700000000.123


def test_timestamp_in_another_zone_is_the_same_moment() -> None:
    elsewhere = PUSHED_AT.astimezone(timezone(timedelta(hours=5)))
    rendered = serialize_output(
        output_shape("CreateRepository"), {"repository": {"createdAt": elsewhere}}
    )
    assert rendered["repository"]["createdAt"] == 1700000000.123


def test_blob_is_base64_text() -> None:
    # given catalog data whose logo is bytes (no output shape of either model has a blob, so
    # the ecr-public catalog input stands in)
    shape = model("ecr-public").shape_for("RepositoryCatalogDataInput")
    # when it is rendered, then the logo is base64 text
    assert serialize_output(shape, {"logoImageBlob": b"\x89PNG\r\n"}) == {
        "logoImageBlob": "iVBORw0K"
    }
    assert serialize_output(shape, {"logoImageBlob": b""}) == {"logoImageBlob": ""}


def test_unknown_key_raises_value_error() -> None:
    # given a result with a key the output shape does not have (a bug in ecrd)
    result = {"repository": {"repositoryName": "app", "repositoryNmae": "typo"}}
    # when it is rendered, then it fails naming the key
    with pytest.raises(ValueError, match="repositoryNmae"):
        serialize_output(output_shape("CreateRepository"), result)


def test_unknown_top_level_key_raises_value_error() -> None:
    with pytest.raises(ValueError, match="extra"):
        serialize_output(output_shape("DescribeImages"), {"imageDetails": [], "extra": 1})


def test_none_members_are_omitted() -> None:
    result = {"imageDetails": [{"imageDigest": DIGEST, "imageTags": None}], "nextToken": None}
    rendered = serialize_output(output_shape("DescribeImages"), result)
    assert rendered == {"imageDetails": [{"imageDigest": DIGEST}]}


def test_scalars_keep_their_json_types() -> None:
    result = {
        "repository": {
            "repositoryName": "app",
            "imageScanningConfiguration": {"scanOnPush": False},
        }
    }
    rendered = serialize_output(output_shape("CreateRepository"), result)
    assert rendered["repository"]["imageScanningConfiguration"]["scanOnPush"] is False
    size = serialize_output(model("ecr").shape_for("ImageDetail"), {"imageSizeInBytes": 2**40})
    assert size == {"imageSizeInBytes": 2**40}
    score = serialize_output(model("ecr").shape_for("CvssScore"), {"baseScore": 7.5})
    assert score == {"baseScore": 7.5}


def test_str_enum_member_goes_out_as_its_value() -> None:
    class ImageStatus(enum.StrEnum):
        ACTIVE = "ACTIVE"

    shape = model("ecr").shape_for("ImageDetail")
    rendered = serialize_output(shape, {"imageStatus": ImageStatus.ACTIVE})
    assert rendered == {"imageStatus": "ACTIVE"}
    assert type(rendered["imageStatus"]) is str


def test_operation_without_output_shape_renders_empty() -> None:
    assert serialize_output(None, {"anything": 1}) == {}


def test_empty_result_renders_empty() -> None:
    assert serialize_output(output_shape("DescribeImages"), {}) == {}


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("imagePushedAt", "2023-11-14T22:13:20Z"),
        ("imageSizeInBytes", "1024"),
        ("imageSizeInBytes", True),
        ("imageTags", "latest"),
        ("repositoryName", 12),
        ("imageScanFindingsSummary", [1]),
    ],
)
def test_value_of_the_wrong_type_raises_value_error(member: str, value: object) -> None:
    shape = model("ecr").shape_for("ImageDetail")
    with pytest.raises(ValueError, match=member):
        serialize_output(shape, {member: value})


def test_error_members_render_through_the_error_shape() -> None:
    shape = model("ecr").shape_for("LayersNotFoundException")
    assert serialize_output(shape, {"message": "no such layer"}) == {"message": "no such layer"}
