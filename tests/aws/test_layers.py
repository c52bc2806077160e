"""ECR layer operations and GetAuthorizationToken through boto3 against the real server."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import unvalidated_client
from tests.aws.images_helpers import digest_of, error_code, upload_layer
from tests.conftest import EcrdServer

LAYER_PART_MAXIMUM = 20971520  # LayerPartBlob's max in the ecr model


def _available(ecr: Any, repository: str, digest: str) -> bool:
    checked = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[digest])
    return bool(checked["layers"])


# BatchCheckLayerAvailability


@pytest.mark.parametrize("malformed", ["not-a-digest", "sha256:not-hex"])
def test_batch_check_layer_availability(ecr: Any, new_repository: str, malformed: str) -> None:
    # Given one uploaded layer
    data = b"an available layer"
    digest = upload_layer(ecr, new_repository, data)
    missing = digest_of(b"never uploaded")
    # When it is checked with a missing and a malformed digest
    checked = ecr.batch_check_layer_availability(
        repositoryName=new_repository, layerDigests=[digest, missing, malformed]
    )
    # Then the layer is AVAILABLE with its size, and the others are failures
    assert checked["layers"] == [
        {"layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": len(data)}
    ]
    codes = {failure["layerDigest"]: failure["failureCode"] for failure in checked["failures"]}
    assert codes == {missing: "MissingLayerDigest", malformed: "InvalidLayerDigest"}
    assert all(failure["failureReason"] for failure in checked["failures"])


# Uploads


def test_initiate_layer_upload_gives_an_id_and_part_size(ecr: Any, new_repository: str) -> None:
    started = ecr.initiate_layer_upload(repositoryName=new_repository)
    assert isinstance(started["uploadId"], str) and started["uploadId"]
    assert started["partSize"] > 0


def test_upload_in_several_parts(ecr: Any, new_repository: str) -> None:
    # Given an upload
    data = b"0123456789abcdefghij-layer-in-parts"
    upload_id = ecr.initiate_layer_upload(repositoryName=new_repository)["uploadId"]
    # When the layer is sent in parts, then each reports the last byte received so far
    for first in range(0, len(data), 10):
        part = data[first : first + 10]
        uploaded = ecr.upload_layer_part(
            repositoryName=new_repository,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(part) - 1,
            layerPartBlob=part,
        )
        assert uploaded["uploadId"] == upload_id
        assert uploaded["repositoryName"] == new_repository
        assert uploaded["lastByteReceived"] == first + len(part) - 1
    # When it is completed, then the layer is the concatenation of the parts
    completed = ecr.complete_layer_upload(
        repositoryName=new_repository, uploadId=upload_id, layerDigests=[digest_of(data)]
    )
    assert completed["layerDigest"] == digest_of(data)
    assert completed["uploadId"] == upload_id
    checked = ecr.batch_check_layer_availability(
        repositoryName=new_repository, layerDigests=[digest_of(data)]
    )
    assert checked["layers"][0]["layerSize"] == len(data)


def test_part_at_the_wrong_first_byte_is_refused(ecr: Any, new_repository: str) -> None:
    # Given an upload that has received bytes 0-4
    upload_id = ecr.initiate_layer_upload(repositoryName=new_repository)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=new_repository,
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=4,
        layerPartBlob=b"01234",
    )
    # When the next part claims to start at byte 10
    with pytest.raises(ClientError) as refused:
        ecr.upload_layer_part(
            repositoryName=new_repository,
            uploadId=upload_id,
            partFirstByte=10,
            partLastByte=14,
            layerPartBlob=b"abcde",
        )
    # Then it is InvalidLayerPartException naming the last valid byte
    assert error_code(refused) == "InvalidLayerPartException"
    assert refused.value.response["lastValidByteReceived"] == 4
    assert refused.value.response["uploadId"] == upload_id
    # And the upload still continues from where it stood
    resumed = ecr.upload_layer_part(
        repositoryName=new_repository,
        uploadId=upload_id,
        partFirstByte=5,
        partLastByte=9,
        layerPartBlob=b"56789",
    )
    assert resumed["lastByteReceived"] == 9


def test_unknown_upload_id(ecr: Any, new_repository: str) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(ClientError) as on_part:
        ecr.upload_layer_part(
            repositoryName=new_repository,
            uploadId=unknown,
            partFirstByte=0,
            partLastByte=0,
            layerPartBlob=b"x",
        )
    assert error_code(on_part) == "UploadNotFoundException"
    with pytest.raises(ClientError) as on_complete:
        ecr.complete_layer_upload(
            repositoryName=new_repository, uploadId=unknown, layerDigests=[digest_of(b"x")]
        )
    assert error_code(on_complete) == "UploadNotFoundException"


def test_complete_with_the_wrong_digest_leaves_nothing(ecr: Any, new_repository: str) -> None:
    data = b"the real bytes"
    wrong = digest_of(b"other bytes")
    upload_id = ecr.initiate_layer_upload(repositoryName=new_repository)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=new_repository,
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=len(data) - 1,
        layerPartBlob=data,
    )
    with pytest.raises(ClientError) as refused:
        ecr.complete_layer_upload(
            repositoryName=new_repository, uploadId=upload_id, layerDigests=[wrong]
        )
    assert error_code(refused) == "InvalidLayerException"
    assert not _available(ecr, new_repository, wrong)
    assert not _available(ecr, new_repository, digest_of(data))


def test_complete_an_empty_upload(ecr: Any, new_repository: str) -> None:
    upload_id = ecr.initiate_layer_upload(repositoryName=new_repository)["uploadId"]
    with pytest.raises(ClientError) as refused:
        ecr.complete_layer_upload(
            repositoryName=new_repository, uploadId=upload_id, layerDigests=[digest_of(b"")]
        )
    assert error_code(refused) == "EmptyUploadException"


def test_complete_a_layer_the_repository_has(ecr: Any, new_repository: str) -> None:
    data = b"uploaded twice"
    upload_layer(ecr, new_repository, data)
    with pytest.raises(ClientError) as refused:
        upload_layer(ecr, new_repository, data)
    assert error_code(refused) == "LayerAlreadyExistsException"
    assert _available(ecr, new_repository, digest_of(data))


def test_part_over_the_model_maximum_is_refused(server: EcrdServer, new_repository: str) -> None:
    unchecked = unvalidated_client(server)
    upload_id = unchecked.initiate_layer_upload(repositoryName=new_repository)["uploadId"]
    too_big = b"\0" * (LAYER_PART_MAXIMUM + 1)
    with pytest.raises(ClientError) as refused:
        unchecked.upload_layer_part(
            repositoryName=new_repository,
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=len(too_big) - 1,
            layerPartBlob=too_big,
        )
    assert error_code(refused) == "InvalidParameterException"


# GetDownloadUrlForLayer


def test_download_url_serves_exactly_the_layer(ecr: Any, new_repository: str) -> None:
    data = bytes(range(256)) * 50
    digest = upload_layer(ecr, new_repository, data, part_size=4096)
    answer = ecr.get_download_url_for_layer(repositoryName=new_repository, layerDigest=digest)
    assert answer["layerDigest"] == digest
    downloaded = httpx.get(answer["downloadUrl"], follow_redirects=True, timeout=30)
    assert downloaded.status_code == 200
    assert downloaded.content == data


def test_download_url_for_a_missing_layer(ecr: Any, new_repository: str) -> None:
    with pytest.raises(ClientError) as refused:
        ecr.get_download_url_for_layer(
            repositoryName=new_repository, layerDigest=digest_of(b"missing")
        )
    assert error_code(refused) == "LayersNotFoundException"


# GetAuthorizationToken


def test_authorization_token_logs_in_to_the_data_plane(server: EcrdServer, ecr: Any) -> None:
    # When a token is asked for
    requested_at = datetime.now(UTC)
    (data,) = ecr.get_authorization_token()["authorizationData"]
    # Then it is AWS:<password>, valid for 12 hours, for this server's endpoint
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS"
    assert password
    expected_expiry = requested_at + timedelta(hours=12)
    assert abs(data["expiresAt"] - expected_expiry) < timedelta(minutes=5)
    assert data["proxyEndpoint"] == f"http://{server.host}"
    # And the pair authenticates to /v2/ as docker login does
    answered = httpx.get(f"{data['proxyEndpoint']}/v2/", auth=("AWS", password), timeout=10)
    assert answered.status_code == 200
