"""Talking to upstream OCI registries: the pull-through cache's client.

`UpstreamClient` (client.py) speaks the distribution spec's pull side to one upstream, through
its auth flow (auth.py: anonymous, Basic, Bearer tokens); `EcrLogin` (ecr_login.py) gives the
credentials of an ECR upstream; errors.py tells failures apart. No HTTP of ecrd's own is here,
and nothing of ecrd's domain: the cache (registry/pull_through.py) maps these to its errors.
"""

from ecrd.upstream.auth import BasicCredentials, CredentialSource
from ecrd.upstream.client import (
    UpstreamBlob,
    UpstreamClient,
    UpstreamDescriptor,
    UpstreamManifest,
)
from ecrd.upstream.ecr_login import AwsCredentials, EcrLogin
from ecrd.upstream.errors import (
    UpstreamError,
    UpstreamInvalid,
    UpstreamNotFound,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)

__all__ = [
    "AwsCredentials",
    "BasicCredentials",
    "CredentialSource",
    "EcrLogin",
    "UpstreamBlob",
    "UpstreamClient",
    "UpstreamDescriptor",
    "UpstreamError",
    "UpstreamInvalid",
    "UpstreamManifest",
    "UpstreamNotFound",
    "UpstreamUnauthorized",
    "UpstreamUnavailable",
]
