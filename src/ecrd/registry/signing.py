"""Managed signing: images pushed where a signing rule covers them get a Notary Project
signature (JWS envelope, `notary.x509` scheme), stored as an OCI referrer of the image, made
with the key ecrd holds for the rule's signing profile ARN (ECR uses AWS Signer; ecrd holds
the keys itself: `ecrd signing create-profile`).

    configuration  Put/Get/DeleteSigningConfiguration (rules: a profile ARN and optional
                   WILDCARD_MATCH repository filters)
    a push         queues the image per covering profile in the push's transaction
                   (metadata.signing.queue_signing); an image is signed once per profile
    run_due        the `signing` job: the JWS over the image's descriptor, signed with the
                   profile's key (ES256 / ES384 / PS384 as the key is), its certificate in
                   `x5c`; the envelope and an empty config as blobs of the repository, then
                   the signature manifest (artifactType application/vnd.cncf.notary.signature,
                   subject: the image) pushed like any manifest, so the referrers API, pulls
                   and replication see it. A profile ecrd does not hold fails the image's
                   status (SIGNING_PROFILE_NOT_FOUND), as a Signer profile missing does on ECR;
                   so does a pusher without signer:SignPayload on the profile (ACCESS_DENIED:
                   ECR signs with the identity that pushed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ecrd import __version__
from ecrd.auth.authorizer import AccessDenied, Authorizer
from ecrd.errors import ParameterInvalid, SigningConfigurationNotFound
from ecrd.metadata.identities import IdentityStore
from ecrd.metadata.records import Manifest, Registry, Repository, utcnow
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.signing import (
    COMPLETE,
    FAILED,
    ImageSignature,
    SigningProfile,
    SigningProfileStore,
    SigningStore,
)
from ecrd.registry.manifests import ManifestService
from ecrd.registry.repositories import RepositoryService
from ecrd.registry.uploads import UploadService
from ecrd.sealing import Unsealable

logger = logging.getLogger("ecrd.signing")

SIGNATURE_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
JWS_MEDIA_TYPE = "application/jose+json"
PAYLOAD_MEDIA_TYPE = "application/vnd.cncf.notary.payload.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"
# The key types a profile may have, and the JWS alg each signs with.
KEY_TYPES = {"ecdsa-p256": "ES256", "ecdsa-p384": "ES384", "rsa-3072": "PS384"}
DEFAULT_KEY_TYPE = "ecdsa-p256"
CERTIFICATE_DAYS = 3650
MAX_ATTEMPTS = 5
BATCH = 50
# Failure codes in DescribeImageSigningStatus (ecrd's; ECR documents none).
PROFILE_NOT_FOUND = "SIGNING_PROFILE_NOT_FOUND"
PROFILE_UNREADABLE = "SIGNING_PROFILE_UNREADABLE"
SIGNING_ERROR = "SIGNING_ERROR"
ACCESS_DENIED = "ACCESS_DENIED"
SIGN_PAYLOAD = "signer:SignPayload"


def new_profile_key(arn: str, key_type: str = DEFAULT_KEY_TYPE) -> tuple[bytes, str]:
    """A private key (PKCS#8 DER) and its self-signed code-signing certificate (PEM) for the
    profile: what `ecrd signing create-profile` stores."""
    if key_type not in KEY_TYPES:
        raise ValueError(f"key type {key_type!r}: one of {', '.join(KEY_TYPES)}")
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "ecdsa-p384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecrd managed signing"),
            x509.NameAttribute(NameOID.COMMON_NAME, arn.rsplit("/", 1)[-1][:64]),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256() if key_type != "ecdsa-p384" else hashes.SHA384())
    )
    private = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private, certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def jws_envelope(profile: SigningProfile, target: Mapping[str, Any], signed_at: datetime) -> bytes:
    """The Notary Project JWS envelope (flattened JSON serialization) signing `target`, the
    descriptor of the image manifest."""
    alg = KEY_TYPES[profile.key_type]
    protected = {
        "alg": alg,
        "cty": PAYLOAD_MEDIA_TYPE,
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": signed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    protected_b64 = _b64url(_canonical(protected))
    payload_b64 = _b64url(_canonical({"targetArtifact": dict(target)}))
    signing_input = f"{protected_b64}.{payload_b64}".encode("ascii")
    key = serialization.load_der_private_key(profile.private_key, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(algorithm)))
        size = (key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(
            signing_input,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=384 // 8),
            hashes.SHA384(),
        )
    else:
        raise ValueError(f"profile {profile.arn} holds a key of an unsupported type")
    certificate = x509.load_pem_x509_certificate(profile.certificate_pem.encode())
    envelope = {
        "payload": payload_b64,
        "protected": protected_b64,
        "header": {
            "x5c": [
                base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
            ],
            "io.cncf.notary.signingAgent": f"ecrd/{__version__}",
        },
        "signature": _b64url(signature),
    }
    return _canonical(envelope)


def certificate_thumbprint(certificate_pem: str) -> str:
    """SHA-256 of the certificate's DER, hex: how Notary names a certificate in annotations."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_configuration(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """ECR's rules on a signing configuration beyond the model's: no profile twice."""
    rules = []
    seen: set[str] = set()
    for rule in configuration.get("rules") or ():
        arn = rule["signingProfileArn"]
        if arn in seen:
            raise ParameterInvalid(
                "Invalid parameter at 'signingConfiguration' failed to satisfy constraint: "
                f"'signing profile {arn} is named by more than one rule'"
            )
        seen.add(arn)
        entry: dict[str, Any] = {"signingProfileArn": arn}
        if rule.get("repositoryFilters"):
            entry["repositoryFilters"] = [
                {"filter": item["filter"], "filterType": item["filterType"]}
                for item in rule["repositoryFilters"]
            ]
        rules.append(entry)
    return {"rules": rules}


class SigningFailed(Exception):
    def __init__(self, code: str, reason: str, retry: bool = False) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True)
class SigningOutcome:
    signed: int = 0
    failed: int = 0
    retried: int = 0

    def counts(self) -> dict[str, int]:
        return {"signed": self.signed, "failed": self.failed, "retried": self.retried}


class SigningService:
    def __init__(
        self,
        registries: RegistryStore,
        store: SigningStore,
        profiles: SigningProfileStore,
        repositories: RepositoryService,
        manifests: ManifestService,
        uploads: UploadService,
        identities: IdentityStore,
        authorizer: Authorizer,
    ) -> None:
        self._identities = identities
        self._authorizer = authorizer
        self._registries = registries
        self._store = store
        self.profiles = profiles
        self._repositories = repositories
        self._manifests = manifests
        self._uploads = uploads

    async def configuration(self, registry: Registry) -> dict[str, Any]:
        found = await self._store.configuration(registry.id) if registry.is_stored else None
        if found is None:
            raise SigningConfigurationNotFound(
                f"Signing configuration does not exist in the registry with id "
                f"'{registry.account_id}'"
            )
        return found

    async def put_configuration(
        self, registry: Registry, configuration: Mapping[str, Any]
    ) -> dict[str, Any]:
        checked = check_configuration(configuration)
        registry = await self._registries.store(registry)
        await self._store.set_configuration(registry.id, checked)
        return checked

    async def delete_configuration(self, registry: Registry) -> dict[str, Any]:
        removed = (
            await self._store.delete_configuration(registry.id) if registry.is_stored else None
        )
        if removed is None:
            raise SigningConfigurationNotFound(
                f"Signing configuration does not exist in the registry with id "
                f"'{registry.account_id}'"
            )
        return removed

    async def of_image(
        self, registry: Registry, repository: Repository, digest: str
    ) -> list[ImageSignature]:
        return await self._store.of_image(registry.id, repository.name, digest)

    async def run_due(self, deadline_seconds: float) -> SigningOutcome:
        outcome = SigningOutcome()
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            batch = await self._store.due(utcnow(), BATCH)
            if not batch:
                break
            for signature in batch:
                if time.monotonic() >= deadline:
                    break
                outcome = await self._one(signature, outcome)
        return outcome

    async def _one(self, signature: ImageSignature, outcome: SigningOutcome) -> SigningOutcome:
        try:
            try:
                signed = await self._sign(signature)
            except SigningFailed:
                raise
            except Exception as error:  # one image's failure must not stop the queue behind it
                logger.warning("signing %s failed unexpectedly", signature.digest, exc_info=True)
                raise SigningFailed(SIGNING_ERROR, str(error)[:300], retry=True) from None
        except SigningFailed as failure:
            logger.info(
                "signing %s@%s with %s: %s",
                signature.repository_name, signature.digest, signature.profile_arn, failure,
            )  # fmt: skip
            if failure.retry and signature.attempts + 1 < MAX_ATTEMPTS:
                wait = timedelta(seconds=2**signature.attempts)
                await self._store.retry(signature, utcnow() + wait, failure.code)
                return SigningOutcome(outcome.signed, outcome.failed, outcome.retried + 1)
            await self._store.finish(signature, FAILED, failure.code, failure.reason)
            return SigningOutcome(outcome.signed, outcome.failed + 1, outcome.retried)
        if not signed:
            await self._store.drop(signature)  # the image went before it was signed
            return outcome
        await self._store.finish(signature, COMPLETE, None, None)
        return SigningOutcome(outcome.signed + 1, outcome.failed, outcome.retried)

    async def _sign(self, signature: ImageSignature) -> bool:
        registry = await self._registries.get(signature.account_id, signature.region)
        repository = await self._repositories.lookup(registry, signature.repository_name)
        manifest = None
        if repository is not None:
            manifest = await self._manifests.find_in(repository, None, signature.digest)
        if repository is None or manifest is None:
            return False
        try:
            profile = await self.profiles.get(signature.profile_arn)
        except Unsealable as error:
            raise SigningFailed(PROFILE_UNREADABLE, str(error)) from None
        if profile is None:
            raise SigningFailed(
                PROFILE_NOT_FOUND,
                f"ecrd holds no key for signing profile {signature.profile_arn} (create it "
                "with `ecrd signing create-profile`)",
            )
        await self._check_pusher(signature)
        await self._store_signature(repository, manifest, profile)
        return True

    async def _check_pusher(self, signature: ImageSignature) -> None:
        """ECR signs with the pusher's identity: it needs signer:SignPayload on the profile
        (the profile's own account only; ecrd keeps no cross-account profile grants)."""
        if signature.pusher_account_id is None:
            return  # stored by ecrd itself (a pull-through cache's fetch)
        pusher = await self._identities.principal(
            signature.pusher_account_id, signature.pusher_user_name, signature.pusher_user_id
        )
        if pusher is None:
            raise SigningFailed(
                ACCESS_DENIED,
                f"The user {signature.pusher_user_name} who pushed the image no longer exists",
            )
        profile_account = signature.profile_arn.split(":")[4]
        try:
            self._authorizer.check_identity(
                pusher, SIGN_PAYLOAD, signature.profile_arn, profile_account
            )
        except AccessDenied as denied:
            raise SigningFailed(ACCESS_DENIED, denied.message) from None

    async def _store_signature(
        self, repository: Repository, manifest: Manifest, profile: SigningProfile
    ) -> None:
        target: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(manifest.payload),
        }
        envelope = jws_envelope(profile, target, datetime.now(UTC))
        config = b"{}"
        thumbprint = certificate_thumbprint(profile.certificate_pem)
        for blob in (config, envelope):
            await self._put_blob(repository, blob)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE_ARTIFACT_TYPE,
            "config": _descriptor(SIGNATURE_ARTIFACT_TYPE, config),
            "layers": [_descriptor(JWS_MEDIA_TYPE, envelope)],
            "subject": target,
            "annotations": {
                THUMBPRINT_ANNOTATION: json.dumps([thumbprint]),
                "org.opencontainers.image.created": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }
        payload = json.dumps(document, separators=(",", ":")).encode()
        await self._manifests.store(repository, payload, OCI_MANIFEST, None, None)

    async def _put_blob(self, repository: Repository, data: bytes) -> None:
        upload = await self._uploads.start(repository)

        async def body() -> AsyncIterator[bytes]:
            yield data

        try:
            written = await self._uploads.append(repository, upload.id, body(), length=len(data))
            await self._uploads.finish(repository, upload.id, _digest(data), written)
        except BaseException:
            await self._uploads.cancel(repository, upload.id)
            raise


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}
