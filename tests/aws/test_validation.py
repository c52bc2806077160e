"""Request validation against the real ecr and ecr-public models from the installed botocore."""

from __future__ import annotations

import base64
import functools
import itertools
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape

from ecrd.aws.validation import ParameterInvalid, _compiled_pattern, validate_input

REPOSITORY_PATTERN = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
DIGEST = "sha256:" + "a" * 64
UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@functools.cache
def model(service: str) -> ServiceModel:
    return ServiceModel(Loader().load_service_model(service, "service-2"), service)


def input_shape(operation: str, service: str = "ecr") -> Any:
    return model(service).operation_model(operation).input_shape


def invalid(operation: str, params: object, service: str = "ecr") -> ParameterInvalid:
    """The ParameterInvalid that validating `params` for `operation` raises."""
    with pytest.raises(ParameterInvalid) as raised:
        validate_input(input_shape(operation, service), params)
    return raised.value


# --- valid requests come back cleaned ---


def test_valid_request_comes_back_with_the_same_members() -> None:
    # given a CreateRepository request using every kind of member it has
    params = {
        "registryId": "123456789012",
        "repositoryName": "team/app-1",
        "tags": [{"Key": "owner", "Value": "ops"}],
        "imageTagMutability": "IMMUTABLE",
        "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfiguration": {"encryptionType": "AES256"},
    }
    # when it is validated
    clean = validate_input(input_shape("CreateRepository"), params)
    # then it comes back equal, as a copy
    assert clean == params
    assert clean is not params


def test_unknown_members_are_dropped_at_every_level() -> None:
    params = {
        "repositoryName": "app",
        "notInTheModel": 1,
        "imageIds": [{"imageTag": "v1", "extra": "x"}],
    }
    clean = validate_input(input_shape("BatchGetImage"), params)
    assert clean == {"repositoryName": "app", "imageIds": [{"imageTag": "v1"}]}


def test_json_nulls_of_optional_members_are_dropped() -> None:
    params = {"repositoryName": "app", "registryId": None, "filter": {"tagStatus": None}}
    clean = validate_input(input_shape("DescribeImages"), params)
    assert clean == {"repositoryName": "app", "filter": {}}


def test_blob_is_decoded_to_bytes() -> None:
    # given an UploadLayerPart request whose part is base64 text, as botocore sends it
    part = bytes(range(256))
    params = {
        "repositoryName": "app",
        "uploadId": UPLOAD_ID,
        "partFirstByte": 0,
        "partLastByte": 255,
        "layerPartBlob": base64.b64encode(part).decode(),
    }
    # when it is validated, then the operation receives the bytes
    clean = validate_input(input_shape("UploadLayerPart"), params)
    assert clean["layerPartBlob"] == part


def test_empty_blob_is_valid() -> None:
    params = {
        "repositoryName": "app",
        "uploadId": UPLOAD_ID,
        "partFirstByte": 0,
        "partLastByte": 0,
        "layerPartBlob": "",
    }
    assert validate_input(input_shape("UploadLayerPart"), params)["layerPartBlob"] == b""


def test_ecr_public_nested_blob_is_decoded() -> None:
    params = {
        "repositoryName": "app",
        "catalogData": {"logoImageBlob": base64.b64encode(b"\x89PNG").decode()},
    }
    clean = validate_input(input_shape("PutRepositoryCatalogData", "ecr-public"), params)
    assert clean["catalogData"]["logoImageBlob"] == b"\x89PNG"


def test_timestamps_become_aware_utc_datetimes() -> None:
    # given a shape with timestamps (ecr inputs have none, so an output structure stands in)
    shape = model("ecr").shape_for("ImageScanFindingsSummary")
    moment = datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    for text in (1700000000.5, "2023-11-14T22:13:20.5Z", "2023-11-15T00:13:20.5+02:00"):
        # when each accepted form is validated, then it is the same UTC moment
        clean = validate_input(shape, {"imageScanCompletedAt": text})
        assert clean["imageScanCompletedAt"] == moment
        assert clean["imageScanCompletedAt"].utcoffset() is not None
    naive = validate_input(shape, {"imageScanCompletedAt": "2023-11-14T22:13:20"})
    assert naive["imageScanCompletedAt"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_map_values_are_validated_and_kept() -> None:
    shape = model("ecr").shape_for("ImageScanFindingsSummary")
    clean = validate_input(shape, {"findingSeverityCounts": {"HIGH": 2, "LOW": 0}})
    assert clean == {"findingSeverityCounts": {"HIGH": 2, "LOW": 0}}


def test_double_accepts_integers_and_floats() -> None:
    shape = model("ecr").shape_for("CvssScore")
    assert validate_input(shape, {"baseScore": 7}) == {"baseScore": 7.0}
    assert validate_input(shape, {"baseScore": 7.5}) == {"baseScore": 7.5}


def test_operation_without_input_shape_gets_an_empty_request() -> None:
    assert validate_input(None, {"anything": 1}) == {}


# --- each rule is enforced ---


def test_body_must_be_a_json_object() -> None:
    error = invalid("DescribeRepositories", ["not", "an", "object"])
    assert error.member == ""
    assert error.constraint == "must be a JSON object"


def test_missing_required_member() -> None:
    error = invalid("CreateRepository", {})
    assert (error.member, error.constraint, error.value) == (
        "repositoryName",
        "must not be null",
        None,
    )


def test_null_required_member_is_missing() -> None:
    error = invalid("CreateRepository", {"repositoryName": None})
    assert (error.member, error.constraint) == ("repositoryName", "must not be null")


def test_missing_required_member_of_a_nested_structure() -> None:
    error = invalid("CreateRepository", {"repositoryName": "app", "encryptionConfiguration": {}})
    assert error.member == "encryptionConfiguration.encryptionType"
    assert error.constraint == "must not be null"


def test_string_too_short() -> None:
    error = invalid("CreateRepository", {"repositoryName": "a"})
    assert error.constraint == "must have length greater than or equal to 2"
    assert error.value == "a"


def test_string_too_long() -> None:
    error = invalid("CreateRepository", {"repositoryName": "a" * 257})
    assert error.member == "repositoryName"
    assert error.constraint == "must have length less than or equal to 256"


def test_string_breaking_the_pattern() -> None:
    error = invalid("CreateRepository", {"repositoryName": "Upper/Case"})
    assert error.constraint == f"must satisfy regular expression pattern: {REPOSITORY_PATTERN}"


def test_pattern_must_match_the_whole_string() -> None:
    # a registry ID is exactly twelve digits: a longer run contains a match but is not one
    error = invalid("DescribeRepositories", {"registryId": "1234567890123"})
    assert (error.member, error.value) == ("registryId", "1234567890123")
    assert error.constraint == "must satisfy regular expression pattern: [0-9]{12}"


def test_string_outside_the_enum() -> None:
    error = invalid("CreateRepository", {"repositoryName": "app", "imageTagMutability": "ALWAYS"})
    assert error.member == "imageTagMutability"
    values = "[MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]"
    assert error.constraint == f"must satisfy enum value set: {values}"
    # both of AWS's messages word an enum with its subject, "Member must satisfy ..."
    assert error.invalid_parameter_message() == (
        "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: "
        f"'Member must satisfy enum value set: {values}'"
    )
    assert error.validation_message() == (
        "1 validation error detected: Value 'ALWAYS' at 'imageTagMutability' failed to "
        f"satisfy constraint: Member must satisfy enum value set: {values}"
    )


def test_integer_below_minimum() -> None:
    error = invalid("DescribeImages", {"repositoryName": "app", "maxResults": 0})
    assert (error.member, error.value) == ("maxResults", 0)
    assert error.constraint == "must have value greater than or equal to 1"


def test_integer_above_maximum() -> None:
    error = invalid("DescribeImages", {"repositoryName": "app", "maxResults": 1001})
    assert error.constraint == "must have value less than or equal to 1000"


def test_integer_bounds_are_inclusive() -> None:
    for count in (1, 1000):
        params = {"repositoryName": "app", "maxResults": count}
        assert validate_input(input_shape("DescribeImages"), params)["maxResults"] == count


def test_integer_outside_its_wire_type() -> None:
    error = invalid("DescribeImages", {"repositoryName": "app", "maxResults": 2**31})
    assert error.constraint == "must be a 32-bit integer"


def test_long_below_minimum() -> None:
    params = {
        "repositoryName": "app",
        "uploadId": UPLOAD_ID,
        "partFirstByte": -1,
        "partLastByte": 0,
        "layerPartBlob": "",
    }
    error = invalid("UploadLayerPart", params)
    assert (error.member, error.constraint) == (
        "partFirstByte",
        "must have value greater than or equal to 0",
    )


def test_list_too_short() -> None:
    error = invalid("BatchGetImage", {"repositoryName": "app", "imageIds": []})
    assert (error.member, error.value) == ("imageIds", [])
    assert error.constraint == "must have length greater than or equal to 1"


def test_list_too_long() -> None:
    image_ids = [{"imageTag": f"v{number}"} for number in range(101)]
    error = invalid("BatchGetImage", {"repositoryName": "app", "imageIds": image_ids})
    assert error.member == "imageIds"
    assert error.constraint == "must have length less than or equal to 100"


def test_nested_member_path_counts_list_elements_from_one() -> None:
    # given an image tag that is too short in the second image ID
    image_ids = [{"imageTag": "v1"}, {"imageTag": ""}]
    # when validated, then the path names the element as AWS does
    error = invalid("BatchGetImage", {"repositoryName": "app", "imageIds": image_ids})
    assert error.member == "imageIds.2.member.imageTag"
    assert error.constraint == "must have length greater than or equal to 1"


def test_missing_required_member_inside_a_list() -> None:
    tags = [{"Key": "owner", "Value": "ops"}, {"Key": "team"}]
    error = invalid("CreateRepository", {"repositoryName": "app", "tags": tags})
    assert (error.member, error.constraint) == ("tags.2.member.Value", "must not be null")


def test_null_list_element() -> None:
    error = invalid("BatchGetImage", {"repositoryName": "app", "imageIds": [None]})
    assert (error.member, error.constraint) == ("imageIds.1.member", "must not be null")


def test_map_value_path_names_the_key() -> None:
    shape = model("ecr").shape_for("ImageScanFindingsSummary")
    with pytest.raises(ParameterInvalid) as raised:
        validate_input(shape, {"findingSeverityCounts": {"HIGH": -1}})
    assert raised.value.member == "findingSeverityCounts.HIGH"
    assert raised.value.constraint == "must have value greater than or equal to 0"


def test_map_key_outside_its_enum() -> None:
    shape = model("ecr").shape_for("ImageScanFindingsSummary")
    with pytest.raises(ParameterInvalid) as raised:
        validate_input(shape, {"findingSeverityCounts": {"SEVERE": 1}})
    error = raised.value
    assert (error.member, error.value) == ("findingSeverityCounts", "SEVERE")
    assert error.constraint.startswith("Map keys must satisfy constraint: [Member must satisfy")
    assert error.validation_message() == (
        "1 validation error detected: Value 'SEVERE' at 'findingSeverityCounts' failed to "
        "satisfy constraint: Map keys must satisfy constraint: [Member must satisfy enum value "
        "set: [INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL, UNDEFINED]]"
    )


def test_blob_that_is_not_base64() -> None:
    params = {
        "repositoryName": "app",
        "uploadId": UPLOAD_ID,
        "partFirstByte": 0,
        "partLastByte": 0,
        "layerPartBlob": "not base64!",
    }
    error = invalid("UploadLayerPart", params)
    assert (error.member, error.constraint) == ("layerPartBlob", "must be base64-encoded")


def test_blob_length_counts_decoded_bytes() -> None:
    # given a logo of 512,001 bytes, one over the model's maximum (its base64 is longer still)
    logo = base64.b64encode(b"\0" * 512_001).decode()
    params = {"repositoryName": "app", "catalogData": {"logoImageBlob": logo}}
    error = invalid("PutRepositoryCatalogData", params, "ecr-public")
    assert error.member == "catalogData.logoImageBlob"
    assert error.constraint == "must have length less than or equal to 512000"
    # and a logo of exactly the maximum passes though its base64 text is longer than that
    exact = base64.b64encode(b"\0" * 512_000).decode()
    params = {"repositoryName": "app", "catalogData": {"logoImageBlob": exact}}
    validate_input(input_shape("PutRepositoryCatalogData", "ecr-public"), params)


@pytest.mark.parametrize(
    ("member", "value", "constraint"),
    [
        ("repositoryName", 12, "must be a string"),
        ("repositoryName", True, "must be a string"),
        ("repositoryName", ["app"], "must be a string"),
        ("maxResults", "10", "must be an integer"),
        ("maxResults", 10.5, "must be an integer"),
        ("maxResults", True, "must be an integer"),
        ("filter", "TAGGED", "must be a structure (JSON object)"),
        ("filter", ["TAGGED"], "must be a structure (JSON object)"),
        ("imageIds", {"imageTag": "v1"}, "must be a list (JSON array)"),
        ("imageIds", "v1", "must be a list (JSON array)"),
    ],
)
def test_wrong_json_type(member: str, value: object, constraint: str) -> None:
    params = {"repositoryName": "app", member: value}
    error = invalid("DescribeImages", params)
    assert (error.member, error.constraint, error.value) == (member, constraint, value)


@pytest.mark.parametrize("value", ["true", 1, 0, "yes"])
def test_boolean_must_be_a_json_boolean(value: object) -> None:
    error = invalid("DeleteRepository", {"repositoryName": "app", "force": value})
    assert (error.member, error.constraint) == ("force", "must be a boolean")


@pytest.mark.parametrize("value", [7.5, b"\x00"])
def test_blob_must_be_base64_text(value: object) -> None:
    params = {
        "repositoryName": "app",
        "uploadId": UPLOAD_ID,
        "partFirstByte": 0,
        "partLastByte": 0,
        "layerPartBlob": value,
    }
    assert invalid("UploadLayerPart", params).constraint == "must be base64-encoded"


@pytest.mark.parametrize("value", ["yesterday", True, [1700000000], 1e300])
def test_timestamp_of_the_wrong_form(value: object) -> None:
    shape = model("ecr").shape_for("ImageScanFindingsSummary")
    with pytest.raises(ParameterInvalid) as raised:
        validate_input(shape, {"imageScanCompletedAt": value})
    assert raised.value.constraint == "must be a timestamp (epoch seconds or ISO-8601)"


@pytest.mark.parametrize("value", ["7.5", True, float("nan"), float("inf")])
def test_double_must_be_a_finite_number(value: object) -> None:
    shape = model("ecr").shape_for("CvssScore")
    with pytest.raises(ParameterInvalid) as raised:
        validate_input(shape, {"baseScore": value})
    assert raised.value.member == "baseScore"


def test_map_must_be_an_object() -> None:
    shape = model("ecr").shape_for("ImageScanFindingsSummary")
    with pytest.raises(ParameterInvalid) as raised:
        validate_input(shape, {"findingSeverityCounts": [["HIGH", 1]]})
    assert raised.value.constraint == "must be a map (JSON object)"


# --- messages ---


def test_invalid_parameter_message_in_ecr_form() -> None:
    error = invalid("CreateRepository", {"repositoryName": "a" * 257})
    assert error.invalid_parameter_message() == (
        "Invalid parameter at 'repositoryName' failed to satisfy constraint: "
        "'must have length less than or equal to 256'"
    )


def test_validation_message_in_aws_form() -> None:
    error = invalid("DescribeImages", {"repositoryName": "app", "maxResults": 0})
    assert error.validation_message() == (
        "1 validation error detected: Value '0' at 'maxResults' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


def test_validation_message_of_a_missing_member_says_null() -> None:
    error = invalid("CreateRepository", {})
    assert error.validation_message() == (
        "1 validation error detected: Value null at 'repositoryName' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_validation_message_cuts_long_values() -> None:
    error = invalid("CreateRepository", {"repositoryName": "a" * 10_000})
    message = error.validation_message()
    assert "Value '" + "a" * 100 + "...' at 'repositoryName'" in message
    assert len(message) < 300


def test_validation_message_renders_lists_as_aws_does() -> None:
    error = invalid("BatchGetImage", {"repositoryName": "app", "imageIds": []})
    assert "Value '[]' at 'imageIds'" in error.validation_message()
    many = [{"imageTag": "v"}] * 101
    message = invalid("BatchGetImage", {"repositoryName": "app", "imageIds": many})
    assert "Value '[{imageTag=v}, {imageTag=v}, " in message.validation_message()


# --- the whole of both models ---


def _operations() -> list[tuple[str, str]]:
    return [
        (service, operation)
        for service in ("ecr", "ecr-public", "secretsmanager")
        for operation in model(service).operation_names
    ]


_EXAMPLE_STRINGS = (
    "team/app",
    "123456789012",
    DIGEST,
    UPLOAD_ID,
    "us-east-1",
    "arn:aws:iam::123456789012:role/ecr",
    "arn:aws:signer:us-east-1:123456789012:/signing-profiles/ecr_profile",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/upstream",
    "12h",  # secretsmanager's rotation Duration
    "",
)


def _example(shape: Shape, depth: int = 0) -> Any:
    """A valid value for `shape`, with every optional member filled in."""
    if depth > 20:
        raise RuntimeError(f"{shape.name} nests too deeply for an example")
    kind = shape.type_name
    if kind == "structure":
        return {name: _example(member, depth + 1) for name, member in shape.members.items()}
    if kind == "list":
        return [_example(shape.member, depth + 1)] * max(1, shape.metadata.get("min", 1))
    if kind == "map":
        return {_example(shape.key, depth + 1): _example(shape.value, depth + 1)}
    if kind == "string":
        return str(shape.enum[0]) if shape.enum else _example_string(shape)
    if kind in ("integer", "long"):
        return shape.metadata.get("min", 1)
    if kind in ("float", "double"):
        return 1.5
    if kind == "boolean":
        return True
    if kind == "blob":
        return base64.b64encode(b"x").decode()
    if kind == "timestamp":
        return 1700000000
    raise RuntimeError(f"no example for {shape.name} of type {kind}")


def _example_string(shape: Shape) -> str:
    low: int = shape.metadata.get("min", 0)
    high = shape.metadata.get("max", 10**9)
    pattern = shape.metadata.get("pattern")
    for text in _EXAMPLE_STRINGS:
        if low <= len(text) <= high and (pattern is None or re.fullmatch(pattern, text)):
            return text
    if pattern is None:
        return "a" * low
    raise RuntimeError(f"no example string for {shape.name}; add one to _EXAMPLE_STRINGS")


@pytest.mark.parametrize(("service", "operation"), _operations())
def test_every_operation_accepts_a_full_request(service: str, operation: str) -> None:
    # given a request filling every member of the operation's input, nested ones included
    shape = input_shape(operation, service)
    params = _example(shape)
    # when it is validated, then it passes, its structure unchanged
    clean = validate_input(shape, params)
    assert clean.keys() == params.keys()


@pytest.mark.parametrize(("service", "operation"), _operations())
def test_every_operation_names_its_first_missing_member(service: str, operation: str) -> None:
    shape = input_shape(operation, service)
    if not shape.required_members:
        assert validate_input(shape, {}) == {}
        return
    with pytest.raises(ParameterInvalid) as raised:
        validate_input(shape, {})
    assert raised.value.member in shape.required_members


def _model_patterns() -> dict[str, int]:
    """Each distinct string pattern of both models, with the longest string it may see."""
    patterns: dict[str, int] = {}
    for service in ("ecr", "ecr-public", "secretsmanager"):
        raw = Loader().load_service_model(service, "service-2")
        for shape in raw["shapes"].values():
            if "pattern" in shape:
                patterns[shape["pattern"]] = max(
                    patterns.get(shape["pattern"], 0), shape.get("max", 4096)
                )
    return patterns


def test_every_model_pattern_compiles_in_python() -> None:
    # a pattern Python cannot read is skipped, not enforced: keep the list of those empty
    skipped = [text for text in _model_patterns() if _compiled_pattern(text) is None]
    assert skipped == []


def test_no_model_pattern_backtracks_for_long() -> None:
    # given, for every model pattern, strings of its maximum length that almost match
    # (exponential backtracking would hang here, so a child process runs it under a timeout)
    script = (
        "import sys\n"
        "from ecrd.aws.validation import _compiled_pattern\n"
        "units = ['a', '0', 'a.', 'a-', 'a/', 'a_', 'a__', 'a--', 'a*', '-', '/', ' ']\n"
        "for text, length in eval(sys.stdin.read()).items():\n"
        "    pattern = _compiled_pattern(text)\n"
        "    for unit in units:\n"
        "        for tail in '!A ~/-.':\n"
        "            pattern.fullmatch((unit * length)[: length - 1] + tail)\n"
    )
    # when they are matched, then all of them finish at once
    subprocess.run(
        [sys.executable, "-c", script],
        input=repr(_model_patterns()),
        text=True,
        check=True,
        timeout=30,
    )


def test_linear_rewrite_of_the_scanning_filter_pattern_is_equivalent() -> None:
    # given the model's scanning filter pattern, which Python would backtrack on exponentially
    model_text = r"^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$"
    original = re.compile(model_text)
    rewritten = _compiled_pattern(model_text)
    assert rewritten is not None and rewritten.pattern != model_text
    # when both judge every short string over the letters that matter, then they agree
    for length in range(7):
        for letters in itertools.product("a*._-/!", repeat=length):
            text = "".join(letters)
            assert (original.fullmatch(text) is None) == (rewritten.fullmatch(text) is None), text


def test_deeply_nested_member_path() -> None:
    params = {
        "rules": [
            {
                "scanFrequency": "SCAN_ON_PUSH",
                "repositoryFilters": [{"filter": "a*-", "filterType": "WILDCARD"}],
            }
        ]
    }
    error = invalid("PutRegistryScanningConfiguration", params)
    assert error.member == "rules.1.member.repositoryFilters.1.member.filter"
    assert error.constraint.startswith("must satisfy regular expression pattern: ")
