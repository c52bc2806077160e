"""Verifying AWS Signature Version 4 on API calls.

The canonical request, string to sign and signature come from botocore's own SigV4Auth (the
code that signed the request on the client's side), fed with what arrived: the headers the
client says it signed, the body, and its timestamp. What is checked here is what botocore
does not: the Authorization header's form, the credential scope, the clock skew and the
payload hash. Signatures are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from ecrd.aws.errors import AwsError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_PARAMETER = re.compile(r"\s*([A-Za-z]+)=([^,\s]*)\s*(?:,|$)")
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


@dataclass(frozen=True)
class SignedRequest:
    """What a request says about its signature, read before the secret is looked up."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: str
    # Every header as it arrived, names lower-cased; repeated names stay repeated.
    headers: list[tuple[str, str]]
    body: bytes


def missing_token() -> AwsError:
    return AwsError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)


def unknown_key() -> AwsError:
    return AwsError(
        "UnrecognizedClientException", "The security token included in the request is invalid."
    )


def read_signature(
    request: ReceivedRequest, service: str, now: datetime | None = None
) -> SignedRequest:
    """The parts of the Authorization header, checked for form, scope and clock skew."""
    authorization = _header(request, "authorization")
    if authorization is None:
        raise missing_token()
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AwsError(
            "IncompleteSignatureException",
            f"Authorization header requires the {ALGORITHM} algorithm",
        )
    parameters = {name: value for name, value in _PARAMETER.findall(rest)}
    missing = [
        name for name in ("Credential", "Signature", "SignedHeaders") if not parameters.get(name)
    ]
    timestamp = _header(request, "x-amz-date")
    problems = [f"Authorization header requires '{name}' parameter." for name in missing]
    if timestamp is None:
        problems.append("Authorization header requires existence of a 'X-Amz-Date' header.")
    if problems:
        raise AwsError("IncompleteSignatureException", " ".join(problems))
    assert timestamp is not None
    credential = parameters["Credential"].split("/")
    if len(credential) != 5 or credential[4] != "aws4_request":
        raise AwsError(
            "IncompleteSignatureException",
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            "keyid/date/region/service/term, got "
            f"'{'/'.join(credential[1:])[:200]}'",
        )
    access_key_id, date, region, scope_service, _ = credential
    signed = _signed(request, access_key_id, date, region, scope_service, parameters, timestamp)
    _check_scope(signed, service)
    _check_time(timestamp, now or datetime.now(UTC))
    return signed


def _signed(
    request: ReceivedRequest,
    access_key_id: str,
    date: str,
    region: str,
    service: str,
    parameters: dict[str, str],
    timestamp: str,
) -> SignedRequest:
    signed_headers = tuple(parameters["SignedHeaders"].lower().split(";"))
    if "host" not in signed_headers:
        raise AwsError(
            "InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader'"
        )
    return SignedRequest(
        access_key_id=access_key_id,
        date=date,
        region=region,
        service=service,
        signed_headers=signed_headers,
        signature=parameters["Signature"],
        timestamp=timestamp,
    )


def _check_scope(signed: SignedRequest, service: str) -> None:
    if not _REGION.match(signed.region):
        raise AwsError(
            "InvalidSignatureException", "Credential should be scoped to a valid region."
        )
    if signed.service != service:
        raise AwsError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
        )
    if signed.timestamp[:8] != signed.date:
        raise AwsError(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{signed.date}' != '{signed.timestamp[:8]}', from "
            f"'{signed.timestamp}'.",
        )


def _check_time(timestamp: str, now: datetime) -> None:
    try:
        moment = datetime.strptime(timestamp, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise AwsError(
            "IncompleteSignatureException",
            f"Date must be in ISO-8601 'basic format'. Got '{timestamp[:40]}'.",
        ) from None
    if moment < now - MAX_SKEW:
        raise AwsError(
            "InvalidSignatureException",
            f"Signature expired: {timestamp} is now earlier than "
            f"{_format(now - MAX_SKEW)} ({_format(now)} - 5 min.)",
        )
    if moment > now + MAX_SKEW:
        raise AwsError(
            "InvalidSignatureException",
            f"Signature not yet current: {timestamp} is still later than "
            f"{_format(now + MAX_SKEW)} ({_format(now)} + 5 min.)",
        )


def verify_signature(request: ReceivedRequest, signed: SignedRequest, secret: str) -> None:
    """InvalidSignatureException unless `secret` signed exactly this request."""
    declared_hash = _header(request, "x-amz-content-sha256")
    # Compared as bytes: compare_digest raises TypeError for str with non-ASCII characters.
    if declared_hash is not None and not hmac.compare_digest(
        declared_hash.encode(), hashlib.sha256(request.body).hexdigest().encode()
    ):
        raise AwsError(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    signer = _ClientSignedHeaders(
        Credentials(signed.access_key_id, secret), signed.service, signed.region, signed
    )
    url = "http://signed" + request.path + (f"?{request.query}" if request.query else "")
    aws_request = AWSRequest(method=request.method, url=url, data=request.body)
    for name, value in request.headers:
        if name in signed.signed_headers:
            aws_request.headers[name] = value
    aws_request.context["timestamp"] = signed.timestamp
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
        raise AwsError("InvalidSignatureException", _SIGNATURE_MISMATCH)


class _ClientSignedHeaders(SigV4Auth):  # type: ignore[misc]
    """SigV4Auth over the headers the client named, not the ones botocore would pick."""

    def __init__(
        self, credentials: Credentials, service: str, region: str, signed: SignedRequest
    ) -> None:
        super().__init__(credentials, service, region)
        self._names = signed.signed_headers

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self._names:
                headers[name.lower()] = value
        return headers


def _header(request: ReceivedRequest, name: str) -> str | None:
    for header_name, value in request.headers:
        if header_name == name:
            return value
    return None


def _format(moment: datetime) -> str:
    return moment.strftime(_TIMESTAMP_FORMAT)
