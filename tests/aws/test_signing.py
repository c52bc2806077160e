"""Managed signing through boto3 and /v2/: the signing configuration operations, a push that a
rule covers getting a Notary Project signature as a referrer, verified here per the Notary
Project JWS envelope specification with `cryptography`, and DescribeImageSigningStatus."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.api_errors import expect_error
from tests.aws.images_helpers import new_image
from tests.conftest import ACCOUNT_ID, EcrdServer
from tests.waiting import eventually

NOTARY = "application/vnd.cncf.notary.signature"


def profile_arn(name: str) -> str:
    return f"arn:aws:signer:us-east-1:{ACCOUNT_ID}:/signing-profiles/{name}"


@pytest.fixture(scope="module")
def signing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    instance = EcrdServer(
        tmp_path_factory.mktemp("signing") / "data",
        environment={"ECRD_REPLICATION_INTERVAL_SECONDS": "0.5"},
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def certificates(signing_server: EcrdServer) -> dict[str, str]:
    """Two profiles made with the CLI (an EC and an RSA key): ARN -> the certificate it printed."""
    made = {}
    for name, key_type in (("ecrd_ec", "ecdsa-p256"), ("ecrd_rsa", "rsa-3072")):
        result = signing_server.ecrd_command(
            "signing", "create-profile", profile_arn(name), "--key-type", key_type
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("-----BEGIN CERTIFICATE-----")
        made[profile_arn(name)] = result.stdout
    return made


def wildcard(*filters: str) -> list[dict[str, str]]:
    return [{"filter": text, "filterType": "WILDCARD_MATCH"} for text in filters]


def signing_statuses(ecr: Any, repository: str, digest: str) -> list[dict[str, Any]]:
    answer = ecr.describe_image_signing_status(
        repositoryName=repository, imageId={"imageDigest": digest}
    )
    return list(answer["signingStatuses"])


def settled(found: list[dict[str, Any]]) -> bool:
    return bool(found) and all(item["status"] != "IN_PROGRESS" for item in found)


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_envelope(envelope: dict[str, Any], certificate_pem: str) -> dict[str, Any]:
    """Check a Notary Project JWS envelope as a verifier would; return its payload."""
    assert set(envelope) == {"payload", "protected", "header", "signature"}
    protected = json.loads(_unb64url(envelope["protected"]))
    assert protected["cty"] == "application/vnd.cncf.notary.payload.v1+json"
    assert protected["io.cncf.notary.signingScheme"] == "notary.x509"
    assert "io.cncf.notary.signingScheme" in protected["crit"]
    assert protected["io.cncf.notary.signingTime"].endswith("Z")
    # the signing certificate is the first of x5c, and it is the profile's
    [leaf] = envelope["header"]["x5c"]
    certificate = x509.load_der_x509_certificate(base64.b64decode(leaf))
    expected = x509.load_pem_x509_certificate(certificate_pem.encode())
    assert certificate == expected
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in usage
    signing_input = f"{envelope['protected']}.{envelope['payload']}".encode()
    signature = _unb64url(envelope["signature"])
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        assert protected["alg"] == "ES256"
        half = len(signature) // 2
        der = encode_dss_signature(
            int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
        )
        key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        assert protected["alg"] == "PS384"
        key.verify(
            signature,
            signing_input,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
            hashes.SHA384(),
        )
    payload: dict[str, Any] = json.loads(_unb64url(envelope["payload"]))
    return payload


def test_a_covered_push_gets_a_notary_signature_that_verifies(
    signing_server: EcrdServer, certificates: dict[str, str]
) -> None:
    # the default registry, which /v2/ serves
    ecr = signing_server.ecr()
    ec_arn, rsa_arn = profile_arn("ecrd_ec"), profile_arn("ecrd_rsa")
    ecr.put_signing_configuration(
        signingConfiguration={
            "rules": [
                {"signingProfileArn": ec_arn, "repositoryFilters": wildcard("signed/*")},
                {"signingProfileArn": rsa_arn, "repositoryFilters": wildcard("*/both")},
            ]
        }
    )
    ecr.create_repository(repositoryName="signed/both")
    digest = new_image(ecr, "signed/both", "to be signed", "v1")
    found = eventually(lambda: signing_statuses(ecr, "signed/both", digest), settled)
    assert sorted(found, key=lambda status: status["signingProfileArn"]) == [
        {"signingProfileArn": ec_arn, "status": "COMPLETE"},
        {"signingProfileArn": rsa_arn, "status": "COMPLETE"},
    ]
    manifest = ecr.batch_get_image(
        repositoryName="signed/both", imageIds=[{"imageDigest": digest}]
    )["images"][0]["imageManifest"]
    with signing_server.http() as client:
        # the referrers API lists one Notary signature per profile
        referrers = client.get(f"/v2/signed/both/referrers/{digest}")
        assert referrers.status_code == 200
        signatures = [m for m in referrers.json()["manifests"] if m["artifactType"] == NOTARY]
        assert len(signatures) == 2
        filtered = client.get(
            f"/v2/signed/both/referrers/{digest}", params={"artifactType": NOTARY}
        )
        assert len(filtered.json()["manifests"]) == 2
        seen_profiles = set()
        for descriptor in signatures:
            signature_manifest = client.get(
                f"/v2/signed/both/manifests/{descriptor['digest']}",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            ).json()
            # the signature manifest as the Notary Project specification stores it
            assert signature_manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
            assert signature_manifest["artifactType"] == NOTARY
            assert signature_manifest["config"]["mediaType"] == NOTARY
            assert signature_manifest["subject"] == {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(manifest.encode()),
            }
            [layer] = signature_manifest["layers"]
            assert layer["mediaType"] == "application/jose+json"
            blob = client.get(f"/v2/signed/both/blobs/{layer['digest']}")
            assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == layer["digest"]
            envelope = blob.json()
            thumbprints = json.loads(
                signature_manifest["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"]
            )
            # which profile: the one whose certificate the thumbprint names
            arn = next(
                arn
                for arn, pem in certificates.items()
                if hashlib.sha256(
                    x509.load_pem_x509_certificate(pem.encode()).public_bytes(
                        serialization.Encoding.DER
                    )
                ).hexdigest()
                == thumbprints[0].lower()
            )
            seen_profiles.add(arn)
            payload = verify_envelope(envelope, certificates[arn])
            assert payload == {
                "targetArtifact": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": len(manifest.encode()),
                }
            }
        assert seen_profiles == {ec_arn, rsa_arn}
    # a signature is not signed in turn
    assert signing_statuses(ecr, "signed/both", signatures[0]["digest"]) == []
    # and a tag pushed later does not sign the image again
    ecr.put_image(repositoryName="signed/both", imageManifest=manifest, imageTag="v2")
    assert len(signing_statuses(ecr, "signed/both", digest)) == 2
    with signing_server.http() as client:
        again = client.get(f"/v2/signed/both/referrers/{digest}").json()["manifests"]
        assert len(again) == 2


def test_only_covered_repositories_are_signed_and_a_missing_profile_fails(
    signing_server: EcrdServer, certificates: dict[str, str], region: str
) -> None:
    ecr = signing_server.ecr(region_name=region)
    missing = profile_arn("not_held")
    ecr.put_signing_configuration(
        signingConfiguration={
            "rules": [
                {
                    "signingProfileArn": profile_arn("ecrd_ec"),
                    "repositoryFilters": wildcard("app*"),
                },
                {"signingProfileArn": missing, "repositoryFilters": wildcard("*prod*")},
            ]
        }
    )
    for name in ("apps/web", "dev/tool", "team/prod-api"):
        ecr.create_repository(repositoryName=name)
    covered = new_image(ecr, "apps/web", "covered", "v1")
    plain = new_image(ecr, "dev/tool", "not covered", "v1")
    failing = new_image(ecr, "team/prod-api", "no key", "v1")
    found = eventually(lambda: signing_statuses(ecr, "apps/web", covered), settled)
    assert found == [{"signingProfileArn": profile_arn("ecrd_ec"), "status": "COMPLETE"}]
    assert signing_statuses(ecr, "dev/tool", plain) == []
    failed = eventually(lambda: signing_statuses(ecr, "team/prod-api", failing), settled)
    assert len(failed) == 1
    assert (failed[0]["status"], failed[0]["failureCode"]) == (
        "FAILED",
        "SIGNING_PROFILE_NOT_FOUND",
    )
    assert missing in failed[0]["failureReason"]
    referrers = ecr.list_image_referrers(
        repositoryName="dev/tool", subjectId={"imageDigest": plain}
    )
    assert referrers["referrers"] == []


def test_signing_configuration_operations_and_their_errors(
    signing_server: EcrdServer, region: str
) -> None:
    ecr = signing_server.ecr(region_name=region)
    expect_error("SigningConfigurationNotFoundException", ecr.get_signing_configuration)
    expect_error("SigningConfigurationNotFoundException", ecr.delete_signing_configuration)
    rules = [{"signingProfileArn": profile_arn("one"), "repositoryFilters": wildcard("a/*")}]
    put = ecr.put_signing_configuration(signingConfiguration={"rules": rules})
    assert put["signingConfiguration"] == {"rules": rules}
    got = ecr.get_signing_configuration()
    assert (got["registryId"], got["signingConfiguration"]) == (ACCOUNT_ID, {"rules": rules})
    # a profile named twice is refused, and nothing changes
    twice = rules + [{"signingProfileArn": profile_arn("one")}]
    expect_error(
        "InvalidParameterException",
        ecr.put_signing_configuration,
        signingConfiguration={"rules": twice},
    )
    unchecked = signing_server.ecr(region_name=region, parameter_validation=False)
    for bad in (
        [{"signingProfileArn": "arn:aws:iam::1:role/x"}],
        [
            {
                "signingProfileArn": profile_arn("one"),
                "repositoryFilters": [{"filter": "a", "filterType": "PREFIX"}],
            }
        ],  # fmt: skip
        [{"signingProfileArn": profile_arn(f"p{n}")} for n in range(11)],
    ):
        expect_error(
            "InvalidParameterException",
            unchecked.put_signing_configuration,
            signingConfiguration={"rules": bad},
        )
    assert ecr.get_signing_configuration()["signingConfiguration"] == {"rules": rules}
    deleted = ecr.delete_signing_configuration()
    assert deleted["signingConfiguration"] == {"rules": rules}
    expect_error("SigningConfigurationNotFoundException", ecr.get_signing_configuration)
    # DescribeImageSigningStatus's errors
    expect_error(
        "RepositoryNotFoundException",
        ecr.describe_image_signing_status,
        repositoryName="no/such",
        imageId={"imageTag": "v1"},
    )
    ecr.create_repository(repositoryName="status/errors")
    expect_error(
        "ImageNotFoundException",
        ecr.describe_image_signing_status,
        repositoryName="status/errors",
        imageId={"imageTag": "v1"},
    )


def test_the_cli_lists_prints_and_deletes_profiles(
    signing_server: EcrdServer, certificates: dict[str, str]
) -> None:
    listed = signing_server.ecrd_command("signing", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == sorted(certificates)
    assert [line.split("  ")[1] for line in lines] == ["ecdsa-p256", "rsa-3072"]
    printed = signing_server.ecrd_command("signing", "certificate", profile_arn("ecrd_ec"))
    assert printed.stdout == certificates[profile_arn("ecrd_ec")]
    again = signing_server.ecrd_command("signing", "create-profile", profile_arn("ecrd_ec"))
    assert again.returncode != 0 and "exists already" in again.stderr
    bad = signing_server.ecrd_command("signing", "create-profile", "arn:aws:iam::1:role/x")
    assert bad.returncode != 0
    made = signing_server.ecrd_command("signing", "create-profile", profile_arn("short_lived"))
    assert made.returncode == 0
    gone = signing_server.ecrd_command("signing", "delete-profile", profile_arn("short_lived"))
    assert gone.returncode == 0
    after = signing_server.ecrd_command("signing", "list").stdout
    assert profile_arn("short_lived") not in after
    # the private keys are sealed at rest: no PEM or DER key in the store
    rows = signing_server.metadata_query("SELECT private_key_sealed FROM signing_profiles")
    assert rows and all(str(row[0]).startswith("s1:") for row in rows)
    # and `ecrd sealing` counts and re-seals them with the other sealed values
    status = signing_server.ecrd_command("sealing", "status")
    assert status.returncode == 0, status.stderr
    assert f"signing profiles: {len(rows)}" in status.stdout
    resealed = signing_server.ecrd_command("sealing", "reseal")
    assert resealed.returncode == 0, resealed.stderr
    assert "0 signing profiles re-sealed" in resealed.stdout


def test_the_pusher_needs_sign_payload_on_the_profile(
    signing_server: EcrdServer, certificates: dict[str, str], region: str
) -> None:
    """ECR signs with the identity that pushed: a user whose policies do not allow
    signer:SignPayload on the profile gets a FAILED status (nothing signed); one allowed on
    that profile's ARN gets its push signed; the account's root needs no policy."""
    arn = profile_arn("ecrd_ec")
    push_images = {
        "Effect": "Allow",
        "Action": ["ecr:*"],
        "Resource": "*",
    }
    without = signing_server.create_key(
        user=f"pusher-{region}",
        policies=[{"Version": "2012-10-17", "Statement": [push_images]}],
    )
    allowed = signing_server.create_key(
        user=f"signer-{region}",
        policies=[
            {
                "Version": "2012-10-17",
                "Statement": [
                    push_images,
                    {"Effect": "Allow", "Action": "signer:SignPayload", "Resource": arn},
                ],
            }
        ],
    )
    elsewhere = signing_server.create_key(
        user=f"other-profile-{region}",
        policies=[
            {
                "Version": "2012-10-17",
                "Statement": [
                    push_images,
                    {
                        "Effect": "Allow",
                        "Action": "signer:SignPayload",
                        "Resource": profile_arn("some_other"),
                    },
                ],
            }
        ],
    )
    root = signing_server.ecr(region_name=region)
    root.put_signing_configuration(signingConfiguration={"rules": [{"signingProfileArn": arn}]})
    root.create_repository(repositoryName="pushers")
    outcomes, users = {}, {}
    for who, key in (("without", without), ("allowed", allowed), ("elsewhere", elsewhere)):
        as_user = signing_server.ecr_as(key, region_name=region)
        outcomes[who] = new_image(as_user, "pushers", f"pushed by {who}", who)
        users[who] = key.arn
    by_root = new_image(root, "pushers", "pushed by root", "root")
    for who in ("without", "elsewhere"):
        [status] = eventually(partial(signing_statuses, root, "pushers", outcomes[who]), settled)
        assert (status["status"], status["failureCode"]) == ("FAILED", "ACCESS_DENIED")
        assert "signer:SignPayload" in status["failureReason"]
        assert users[who] in status["failureReason"]
        referrers = root.list_image_referrers(
            repositoryName="pushers", subjectId={"imageDigest": outcomes[who]}
        )
        assert referrers["referrers"] == []
    for digest in (outcomes["allowed"], by_root):
        [status] = eventually(partial(signing_statuses, root, "pushers", digest), settled)
        assert status == {"signingProfileArn": arn, "status": "COMPLETE"}
        referrers = root.list_image_referrers(
            repositoryName="pushers", subjectId={"imageDigest": digest}
        )
        assert [item["artifactType"] for item in referrers["referrers"]] == [NOTARY]
    root.delete_signing_configuration()
