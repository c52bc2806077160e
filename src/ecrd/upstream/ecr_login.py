"""Credentials for an upstream of type ECR (Amazon ECR, or another ecrd): the registry password
its GetAuthorizationToken gives, asked for with ecrd's own AWS credentials.

ECR reaches an ECR upstream with its service role; ecrd signs with the credentials it is
given, else botocore's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE
and the shared files, ...) the way any AWS client on the machine would. The token decodes to
`AWS:<password>`, which is Basic auth on the registry; it is kept until RENEW_MARGIN_SECONDS
before its expiresAt (ECR's last 12 hours), so a login costs one API call per half day.

Where the API is: Amazon ECR's registry host (`<account>.dkr.ecr.<region>.amazonaws.com`)
serves only the registry protocol, so for it the call goes to the region's API endpoint
(botocore's own, `api.ecr.<region>.amazonaws.com`). Any other upstream (ecrd, or a test's) is
called at the URL ecrd talks to, which serves both. The region is the registry host's
(`<account>.dkr.ecr.<region>.<domain>`, as ecrd's own `domain` hosts too), else the one given.

botocore's client is synchronous: each call runs in a worker thread (anyio), as the S3 blob
store's do. Nothing is retried (a failure is the cache's to weigh), and neither the AWS
credentials nor the token are ever logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import botocore.session
import httpx
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from ecrd.upstream.auth import BasicCredentials
from ecrd.upstream.errors import (
    UpstreamError,
    UpstreamInvalid,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)

# `<account>.dkr.ecr[-fips].<region>.` and the rest of the domain.
_REGISTRY_HOST = re.compile(r"\d{12}\.dkr\.ecr(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\..+")
_AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn")
DEFAULT_REGION = "us-east-1"
# A token is renewed this long before it expires.
RENEW_MARGIN_SECONDS = 300
# What an expiresAt-less answer is taken to last (ECR always sends one).
ASSUMED_TOKEN_SECONDS = 3600
# AWS's error codes for credentials it does not take, and for "not now".
_REFUSED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "ExpiredTokenException", "IncompleteSignature",
    "IncompleteSignatureException", "InvalidClientTokenId", "InvalidSignatureException",
    "MissingAuthenticationTokenException", "SignatureDoesNotMatch",
    "UnrecognizedClientException",
})  # fmt: skip
_BUSY_CODES = frozenset({
    "InternalFailure", "ServerException", "ServiceUnavailable", "ServiceUnavailableException",
    "Throttling", "ThrottlingException", "TooManyRequestsException",
})  # fmt: skip


@dataclass(frozen=True)
class AwsCredentials:
    """An AWS access key (and session token, for temporary credentials)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def region_of(host: str, fallback: str = DEFAULT_REGION) -> str:
    """The region an ECR registry host names (`<account>.dkr.ecr.<region>.<domain>`, a port
    allowed), else `fallback`."""
    match = _REGISTRY_HOST.fullmatch(host.lower().rsplit(":", 1)[0])
    return match.group(1) if match else fallback


def is_aws_registry_host(host: str) -> bool:
    """Whether `host` is Amazon ECR's own registry host (whose API is elsewhere)."""
    name = host.lower().rsplit(":", 1)[0]
    return _REGISTRY_HOST.fullmatch(name) is not None and name.endswith(_AWS_DOMAINS)


class EcrLogin:
    """A CredentialSource: `await login()` gives Basic credentials for the ECR upstream.

    `base_url` is where ecrd reaches the upstream; `host` its registry host as the rule names
    it (by default `base_url`'s), whose region is used (else `region`). `credentials`: AWS
    credentials to sign with instead of botocore's default chain."""

    def __init__(
        self,
        base_url: str,
        host: str | None = None,
        *,
        region: str = DEFAULT_REGION,
        credentials: AwsCredentials | None = None,
        ca_file: str | Path | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 60,
    ) -> None:
        url = httpx.URL(base_url)
        registry_host = host if host is not None else url.netloc.decode("ascii")
        self.region = region_of(registry_host, region)
        # None: botocore's endpoint for the region (see the module's docstring).
        self.endpoint_url: str | None = str(url).rstrip("/")
        if is_aws_registry_host(url.netloc.decode("ascii")):
            self.endpoint_url = None
        self._given = credentials
        self._verify: str | bool = str(ca_file) if ca_file is not None else True
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1},  # one attempt: nothing retried silently
        )
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._cached: tuple[float, BasicCredentials] | None = None
        self._refresh = asyncio.Lock()

    async def __call__(self) -> BasicCredentials:
        cached = self._cached
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        async with self._refresh:  # one GetAuthorizationToken at a time, shared by waiters
            cached = self._cached
            if cached is not None and time.monotonic() < cached[0]:
                return cached[1]
            login, lifetime = await anyio.to_thread.run_sync(self._login)
            usable = lifetime - RENEW_MARGIN_SECONDS
            # A token about to expire is used once, not kept.
            self._cached = (time.monotonic() + usable, login) if usable > 0 else None
            return login

    def close(self) -> None:
        """Release botocore's connections (the next call makes a client again)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _ecr(self) -> Any:
        with self._client_lock:
            if self._client is None:
                options: dict[str, Any] = {}
                if self._given is not None:
                    options = {
                        "aws_access_key_id": self._given.access_key_id,
                        "aws_secret_access_key": self._given.secret_access_key,
                        "aws_session_token": self._given.session_token,
                    }
                self._client = botocore.session.get_session().create_client(
                    "ecr",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    verify=self._verify,
                    config=self._config,
                    **options,
                )
            return self._client

    def _login(self) -> tuple[BasicCredentials, float]:
        """GetAuthorizationToken (in a worker thread): the login and its seconds left."""
        where = self.endpoint_url or f"ECR's API in {self.region}"
        try:
            answer = self._ecr().get_authorization_token()
        except ClientError as error:
            raise _refusal(error, where) from None
        except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError):
            raise UpstreamUnauthorized(
                f"GetAuthorizationToken at {where}: no usable AWS credentials"
            ) from None
        except (BotocoreConnectionError, HTTPClientError) as error:  # refused, timeout, TLS
            raise UpstreamUnavailable(f"GetAuthorizationToken at {where}: {error}") from None
        except BotoCoreError as error:
            raise UpstreamError(f"GetAuthorizationToken at {where}: {error}") from None
        return _login_of(answer, where)


def _refusal(error: ClientError, where: str) -> UpstreamError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    text = f"GetAuthorizationToken at {where}: {code} ({str(details.get('Message', ''))[:300]})"
    if code in _REFUSED_CODES or status in (401, 403):
        return UpstreamUnauthorized(text, status)
    if code in _BUSY_CODES or status == 429 or (isinstance(status, int) and status >= 500):
        return UpstreamUnavailable(text, status)
    return UpstreamError(text, status)


def _login_of(answer: dict[str, Any], where: str) -> tuple[BasicCredentials, float]:
    try:
        data = answer["authorizationData"][0]
        decoded = base64.b64decode(data["authorizationToken"], validate=True).decode()
    except (KeyError, IndexError, TypeError, binascii.Error, UnicodeDecodeError):
        raise UpstreamInvalid(f"GetAuthorizationToken at {where}: no token in the answer") from None
    username, separator, password = decoded.partition(":")
    if not separator or not username or not password:
        raise UpstreamInvalid(f"GetAuthorizationToken at {where}: the token is not user:password")
    expires = data.get("expiresAt")
    if isinstance(expires, datetime):
        lifetime = (expires - datetime.now(UTC)).total_seconds()
    else:
        lifetime = ASSUMED_TOKEN_SECONDS
    return BasicCredentials(username, password), lifetime
