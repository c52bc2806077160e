"""Pull-through cache rules: which repository namespaces are caches of which upstream registry.

A rule's prefix is a namespace (`docker-hub` covers `docker-hub/library/alpine`) or ROOT, which
covers every name no other rule covers. The cache repository `<prefix>/<rest>` is the upstream
repository `<upstream prefix>/<rest>` (just `<rest>` when the upstream prefix is ROOT).
ECR's checks apply: each upstream registry has its URL, some need a credential (a Secrets
Manager secret of the same account and region), only an ECR upstream takes a role.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

from ecrd.errors import (
    ParameterInvalid,
    PullThroughPushRefused,
    PullThroughRuleAlreadyExists,
    PullThroughRuleNotFound,
    SecretInaccessible,
    TooManyPullThroughRules,
    UpstreamRegistryUnsupported,
)
from ecrd.metadata.pull_through_rules import PullThroughRule, PullThroughRuleStore
from ecrd.metadata.records import Registry, utcnow
from ecrd.metadata.registries import RegistryStore

ROOT = "ROOT"
# ECR's quota of pull-through cache rules per registry.
MAX_RULES = 50
# How long a process trusts the rules it read of a registry (every pull asks which rule covers
# its name): a rule made or deleted by another process applies within this time; this process
# sees its own changes at once.
RULES_CACHE_SECONDS = 5.0

# The upstream registries whose URL is one fixed host, and the pattern of the others'.
FIXED_HOSTS = {
    "ecr-public": "public.ecr.aws",
    "docker-hub": "registry-1.docker.io",
    "quay": "quay.io",
    "k8s": "registry.k8s.io",
    "github-container-registry": "ghcr.io",
    "gitlab-container-registry": "registry.gitlab.com",
    "chainguard": "cgr.dev",
}
HOST_PATTERNS = {
    "azure-container-registry": re.compile(r"[a-z0-9]{5,50}\.azurecr\.io"),
    "ecr": re.compile(r"(\d{12})\.dkr\.ecr\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com"),
}
# Those ECR only reaches with a Secrets Manager secret, and the one it reaches with a role.
NEEDS_CREDENTIAL = frozenset(
    {
        "docker-hub",
        "github-container-registry",
        "azure-container-registry",
        "gitlab-container-registry",
        "chainguard",
    }
)
TAKES_ROLE = "ecr"
_SECRET_ARN = re.compile(r"^arn:aws[\w-]*:secretsmanager:([a-z0-9-]+):(\d{12}):secret:(.+)$")


class SecretReader(Protocol):
    """What rules need of the secrets service: a secret's current value, read by the registry
    itself (SecretNotFound, or SecretUndecryptable when the keyring cannot open it)."""

    async def current_value(self, account_id: str, region: str, secret_id: str) -> str: ...


@dataclass(frozen=True)
class CachedName:
    """A repository name a rule covers, and the upstream repository it caches."""

    rule: PullThroughRule
    upstream_name: str


def upstream_host(url: str) -> str:
    """The host a rule's URL names (ECR takes it with or without `https://`)."""
    host = url.strip().removeprefix("https://").rstrip("/")
    return host.lower()


def registry_of_url(url: str) -> str:
    """The upstream registry a URL is the URL of; UpstreamRegistryUnsupported for none."""
    host = upstream_host(url)
    for name, fixed in FIXED_HOSTS.items():
        if host == fixed:
            return name
    for name, pattern in HOST_PATTERNS.items():
        if pattern.fullmatch(host):
            return name
    raise UpstreamRegistryUnsupported(
        f"The upstream registry URL '{url[:256]}' is not supported for a pull through cache rule"
    )


def covering(rules: list[PullThroughRule], name: str) -> CachedName | None:
    """The rule whose namespace is the longest covering `name` (ROOT last), if any."""
    best: PullThroughRule | None = None
    for rule in rules:
        if rule.prefix == ROOT:
            if best is None:
                best = rule
        elif name.startswith(rule.prefix + "/") and (
            best is None or best.prefix == ROOT or len(rule.prefix) > len(best.prefix)
        ):
            best = rule
    if best is None:
        return None
    rest = name if best.prefix == ROOT else name[len(best.prefix) + 1 :]
    upstream = rest if best.upstream_prefix == ROOT else f"{best.upstream_prefix}/{rest}"
    return CachedName(best, upstream)


def _prefix(text: str) -> str:
    return text if text == ROOT else text.rstrip("/")


class PullThroughRuleService:
    def __init__(
        self, registries: RegistryStore, store: PullThroughRuleStore, secrets: SecretReader
    ) -> None:
        self._registries = registries
        self._store = store
        self._secrets = secrets
        # registry id -> (when read, its rules)
        self._cached: dict[int, tuple[float, list[PullThroughRule]]] = {}

    async def create(
        self,
        registry: Registry,
        prefix: str,
        upstream_url: str,
        upstream_registry: str | None,
        credential_arn: str | None,
        custom_role_arn: str | None,
        upstream_prefix: str | None,
    ) -> PullThroughRule:
        prefix = _prefix(prefix)
        kind = registry_of_url(upstream_url)
        if upstream_registry is not None and upstream_registry != kind:
            raise UpstreamRegistryUnsupported(
                f"The upstream registry URL '{upstream_url[:256]}' is not the URL of upstream "
                f"registry '{upstream_registry}'"
            )
        if upstream_prefix is not None and _prefix(upstream_prefix) != ROOT and prefix == ROOT:
            raise ParameterInvalid(
                "upstreamRepositoryPrefix can only be set when ecrRepositoryPrefix is not ROOT"
            )
        if kind in NEEDS_CREDENTIAL and credential_arn is None:
            raise ParameterInvalid(
                f"A credentialArn is required for a pull through cache rule for upstream "
                f"registry '{kind}'"
            )
        if kind not in NEEDS_CREDENTIAL and credential_arn is not None:
            raise ParameterInvalid(
                f"A credentialArn is not supported for upstream registry '{kind}'"
            )
        self._check_role(kind, custom_role_arn)
        if credential_arn is not None:
            await self._check_secret(registry, credential_arn)
        registry = await self._registries.store(registry)
        now = utcnow()
        rule = PullThroughRule(
            registry_id=registry.id,
            prefix=prefix,
            upstream_registry=kind,
            upstream_url=upstream_host(upstream_url),
            upstream_prefix=_prefix(upstream_prefix or ROOT),
            credential_arn=credential_arn,
            custom_role_arn=custom_role_arn,
            created_at=now,
            updated_at=now,
        )
        try:
            created = await self._store.create(rule, MAX_RULES)
        except LookupError:
            raise TooManyPullThroughRules(
                f"The registry with id '{registry.account_id}' has {MAX_RULES} pull through "
                "cache rules, the most it may have"
            ) from None
        if not created:
            raise PullThroughRuleAlreadyExists(
                f"A pull through cache rule with prefix '{prefix}' already exists in the "
                f"registry with id '{registry.account_id}'"
            )
        self._cached.pop(registry.id, None)
        return rule

    async def update(
        self,
        registry: Registry,
        prefix: str,
        credential_arn: str | None,
        custom_role_arn: str | None,
    ) -> PullThroughRule:
        """Give a rule another credential (or, for an ECR upstream, role); what is not given
        stays."""
        rule = await self.get(registry, prefix)
        if credential_arn is not None:
            if rule.upstream_registry not in NEEDS_CREDENTIAL:
                raise ParameterInvalid(
                    f"A credentialArn is not supported for upstream registry "
                    f"'{rule.upstream_registry}'"
                )
            await self._check_secret(registry, credential_arn)
        else:
            credential_arn = rule.credential_arn
        self._check_role(rule.upstream_registry, custom_role_arn)
        if custom_role_arn is None:
            custom_role_arn = rule.custom_role_arn
        updated = await self._store.update(
            registry.id, rule.prefix, credential_arn, custom_role_arn
        )
        if updated is None:
            raise self._not_found(registry, prefix)
        self._cached.pop(registry.id, None)
        return updated

    async def delete(self, registry: Registry, prefix: str) -> PullThroughRule:
        deleted = None
        if registry.is_stored:
            deleted = await self._store.delete(registry.id, _prefix(prefix))
        if deleted is None:
            raise self._not_found(registry, prefix)
        self._cached.pop(registry.id, None)
        return deleted

    async def get(self, registry: Registry, prefix: str) -> PullThroughRule:
        found = await self.page(registry, [_prefix(prefix)], None, 1)
        if not found:
            raise self._not_found(registry, prefix)
        return found[0]

    async def page(
        self, registry: Registry, prefixes: list[str] | None, after: str | None, limit: int
    ) -> list[PullThroughRule]:
        """Rules in prefix order; PullThroughRuleNotFound when a prefix asked for has none."""
        if prefixes is not None:
            prefixes = sorted({_prefix(prefix) for prefix in prefixes})
        found = (
            await self._store.page(registry.id, prefixes, after, limit)
            if registry.is_stored
            else []
        )
        if prefixes is not None and after is None and len(found) < min(len(prefixes), limit):
            missing = sorted(set(prefixes) - {rule.prefix for rule in found})
            raise self._not_found(registry, missing[0])
        return found

    async def covering(self, registry: Registry, name: str) -> CachedName | None:
        """The rule that makes repository `name` a cache, and the upstream name it caches."""
        if not registry.is_stored:
            return None
        cached = self._cached.get(registry.id)
        now = time.monotonic()
        if cached is None or now - cached[0] > RULES_CACHE_SECONDS:
            rules = await self._store.page(registry.id, None, None, MAX_RULES)
            cached = (now, rules)
            self._cached[registry.id] = cached
        return covering(cached[1], name) if cached[1] else None

    async def refuse_push(self, registry: Registry, name: str) -> None:
        """PullThroughPushRefused when a rule makes `name` a cache: only the upstream fills
        it, as on ECR."""
        cached = await self.covering(registry, name)
        if cached is not None:
            raise PullThroughPushRefused(
                f"repository {name} is a pull through cache of "
                f"{cached.rule.upstream_url}/{cached.upstream_name}: its images can only be "
                "pulled from the upstream, not pushed"
            )

    async def _check_secret(self, registry: Registry, arn: str) -> None:
        """ECR's checks of a credential: in the registry's account and region, there, and
        readable."""
        match = _SECRET_ARN.match(arn)
        if match is None or (match.group(1), match.group(2)) != (
            registry.region,
            registry.account_id,
        ):
            raise SecretInaccessible(
                f"The secret '{arn}' is not in the account and region of the registry; a pull "
                "through cache rule can only use a secret of its own account and region"
            )
        await self._secrets.current_value(registry.account_id, registry.region, arn)

    @staticmethod
    def _check_role(kind: str, custom_role_arn: str | None) -> None:
        if custom_role_arn is not None and kind != TAKES_ROLE:
            raise ParameterInvalid(
                f"A customRoleArn is only supported for upstream registry '{TAKES_ROLE}', not "
                f"'{kind}'"
            )

    @staticmethod
    def _not_found(registry: Registry, prefix: str) -> PullThroughRuleNotFound:
        return PullThroughRuleNotFound(
            f"The pull through cache rule with prefix '{prefix}' does not exist in the "
            f"registry with id '{registry.account_id}'"
        )
