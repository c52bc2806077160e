"""Authorizing one action on one resource: gathers the policies and the request's condition
keys, and asks the IAM evaluation for a decision. Both front doors call this."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from ecrd.auth.evaluation import AccessRequest, evaluate
from ecrd.auth.policy_document import PolicyDocument, PolicyDocumentInvalid, parse_policy
from ecrd.auth.principals import Principal
from ecrd.metadata.records import Registry, Repository
from ecrd.metadata.registries import PolicyAndScope, RegistryStore
from ecrd.metadata.repositories import RepositoryStore

logger = logging.getLogger("ecrd.auth")
# What the registry policy governs when the registry's REGISTRY_POLICY_SCOPE is V1 (ECR's
# first scope: replication and pull-through caches); under V2 it governs every action.
V1_POLICY_ACTIONS = frozenset(
    {"ecr:ReplicateImage", "ecr:BatchImportUpstreamImage", "ecr:CreateRepository"}
)


class AccessDenied(Exception):
    """The caller may not do this; `message` is AWS's AccessDenied wording."""

    def __init__(self, message: str, principal: Principal) -> None:
        super().__init__(message)
        self.message = message
        self.principal = principal


@dataclass(frozen=True)
class Target:
    """What an action is done to: a resource ARN (or "*") in one registry, and the repository
    when it exists (its policy and tags take part)."""

    registry: Registry
    resource: str
    repository: Repository | None = None
    # The registry policy and its scope when the caller read them already (with the
    # repository, in one statement); else the authorizer reads them.
    policy_and_scope: PolicyAndScope | None = None


@dataclass(frozen=True)
class Origin:
    """Where the request came from, for aws:SourceIp and aws:SecureTransport."""

    source_ip: str | None
    secure: bool
    # Request-specific keys, e.g. aws:RequestTag/<key> and aws:TagKeys on CreateRepository.
    extra: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


@lru_cache(maxsize=1024)
def _parsed(text: str, kind: str) -> PolicyDocument:
    # Policies are re-read on every request; parsing each distinct text once is enough.
    return parse_policy(text, kind)  # type: ignore[arg-type]


class Authorizer:
    def __init__(self, registries: RegistryStore, repositories: RepositoryStore) -> None:
        self._registries = registries
        self._repositories = repositories

    async def check(
        self, principal: Principal, actions: Sequence[str], target: Target, origin: Origin
    ) -> None:
        """Return if `principal` may do each of `actions` to `target`; AccessDenied for the
        first it may not. Policies and condition keys are gathered once for all of them."""
        resource_texts = []
        if target.repository is not None and target.repository.policy_text:
            resource_texts.append(target.repository.policy_text)
        registry_policy, scope = (
            target.policy_and_scope
            if target.policy_and_scope is not None
            else await self._registries.policy_and_scope(target.registry.id)
        )
        with _unreadable_denies(principal, actions[0], target.resource):
            identity = [_parsed(text, "identity") for text in principal.identity_policies]
            resource = [_parsed(text, "resource") for text in resource_texts]
            registry = [_parsed(registry_policy, "resource")] if registry_policy else []
        context = await self._context(principal, target, origin, identity + resource + registry)
        for action in actions:
            governed = scope != "V1" or action in V1_POLICY_ACTIONS
            request = AccessRequest(
                principal=principal,
                action=action,
                resource=target.resource,
                resource_account=target.registry.account_id,
                context=context,
                identity_policies=identity,
                resource_policies=resource + registry if governed else resource,
            )
            decision = evaluate(request)
            if not decision.allowed:
                raise AccessDenied(decision.denial_message(request), principal)

    def check_identity(
        self, principal: Principal, action: str, resource: str, resource_account: str
    ) -> None:
        """Return if `principal` may do `action` to a resource of another service that has no
        resource policy in ecrd (a signing profile): its identity policies decide, within its
        own account (another account's resource needs a grant ecrd does not keep)."""
        with _unreadable_denies(principal, action, resource):
            identity = [_parsed(text, "identity") for text in principal.identity_policies]
        request = AccessRequest(
            principal=principal,
            action=action,
            resource=resource,
            resource_account=resource_account,
            context=_time_context(),
            identity_policies=identity,
        )
        decision = evaluate(request)
        if not decision.allowed:
            raise AccessDenied(decision.denial_message(request), principal)

    async def _context(
        self,
        principal: Principal,
        target: Target,
        origin: Origin,
        policies: list[PolicyDocument],
    ) -> dict[str, str | Sequence[str]]:
        context: dict[str, str | Sequence[str]] = {
            **_time_context(),
            "aws:SecureTransport": "true" if origin.secure else "false",
            "aws:RequestedRegion": target.registry.region,
            "aws:ResourceAccount": target.registry.account_id,
        }
        if origin.source_ip:
            context["aws:SourceIp"] = origin.source_ip
        if principal.account_id is not None and principal.arn is not None:
            context["aws:PrincipalAccount"] = principal.account_id
            context["aws:PrincipalArn"] = principal.arn
            context["aws:PrincipalType"] = "Account" if principal.is_root else "User"
        if principal.user_name is not None:
            context["aws:username"] = principal.user_name
        if target.repository is not None and any(p.mentions_resource_tags() for p in policies):
            tags = await self._repositories.resource_tags(target.repository.id)
            for key, value in tags.items():
                context[f"ecr:ResourceTag/{key}"] = value
                context[f"aws:ResourceTag/{key}"] = value
        context.update(origin.extra)
        return context


@contextmanager
def _unreadable_denies(principal: Principal, action: str, resource: str) -> Iterator[None]:
    """A stored policy that no longer parses must not silently drop a Deny: deny instead."""
    try:
        yield
    except PolicyDocumentInvalid as error:
        logger.error("a stored policy cannot be read: %s", error.message)
        raise AccessDenied(
            f"User: {principal.display_arn} is not authorized to perform: {action} on "
            f"resource: {resource} because a policy that applies cannot be read",
            principal,
        ) from None


def _time_context() -> dict[str, str | Sequence[str]]:
    """aws:CurrentTime and aws:EpochTime, to the second as AWS gives them."""
    return dict(_time_keys(int(time.time())))


@lru_cache(maxsize=2)
def _time_keys(epoch: int) -> dict[str, str]:
    # Formatted once a second rather than once a request.
    return {
        "aws:CurrentTime": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(epoch),
    }
