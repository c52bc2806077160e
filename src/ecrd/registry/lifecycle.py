"""Lifecycle policies: kept on the repository, previewed off the request, and applied.

One evaluator (`ecrd.lifecycle.evaluation.evaluate`) decides for previews and runs alike, over
the same images loaded the same way (`LifecycleService.plan`), so a preview shows what a run
at that moment does.

    preview   StartLifecyclePolicyPreview records one IN_PROGRESS and computes it as a
              background task (bounded by PREVIEW_TIMEOUT), which writes the results and
              COMPLETE in one transaction, or FAILED. A process that dies mid-preview leaves
              IN_PROGRESS behind: such a row reads FAILED once it is PREVIEW_STALE_AFTER old
              (longer than any live preview can take), and a new start may replace it.
              A finished preview reads EXPIRED PREVIEW_KEPT_FOR after it finished.
    run       `apply_policy`: expiry deletes through ImageService.delete_by_digest, the path
              BatchDeleteImage takes (an image an index still lists is refused there), indexes
              first so that an expiring index goes before the images it lists; a transition
              archives through the storage classes service; then lastEvaluatedAt is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from anyio import to_thread

from ecrd.errors import (
    LifecyclePolicyNotFound,
    LifecyclePreviewInProgress,
    LifecyclePreviewNotFound,
    ManifestReferenced,
    RegistryError,
)
from ecrd.jobs.background import BackgroundTasks
from ecrd.lifecycle.evaluation import LifecycleDecision, LifecycleImage, evaluate
from ecrd.lifecycle.policy import LifecyclePolicy, LifecyclePolicyInvalid, parse_policy
from ecrd.metadata.lifecycle import (
    COMPLETE,
    FAILED,
    IN_PROGRESS,
    LifecycleCandidate,
    LifecyclePolicyRecord,
    LifecycleStore,
    PolicyHolder,
    PreviewRecord,
    PreviewResultRecord,
    PreviewSummaryRecord,
)
from ecrd.metadata.records import Registry, Repository, utcnow

if TYPE_CHECKING:
    from ecrd.registry.services import RegistryServices

EXPIRED = "EXPIRED"
EXPIRE = "EXPIRE"
TRANSITION = "TRANSITION"
# A preview's computation is cut off (and FAILED) after this long.
PREVIEW_TIMEOUT = timedelta(minutes=5)
# An IN_PROGRESS preview this old was left by a process that died: it reads FAILED, and a new
# preview may replace it. Twice the timeout, so a live computation has always ended by then.
PREVIEW_STALE_AFTER = 2 * PREVIEW_TIMEOUT
# ECR does not say how long a preview's results stay; ecrd keeps them for a day, then the
# preview reads EXPIRED (and the lifecycle job drops its results).
PREVIEW_KEPT_FOR = timedelta(hours=24)
# Images are read for evaluation this many at a time (keyset pages by manifest id).
IMAGE_PAGE_SIZE = 500
# The most images one evaluation holds in memory; a larger repository is not evaluated.
# (ECR's own quota is 20,000 images per repository, adjustable.)
MAX_EVALUATED_IMAGES = 200_000
# Repositories with a policy are read this many at a time by a run over all of them.
HOLDER_PAGE_SIZE = 100
logger = logging.getLogger("ecrd.lifecycle")


class TooManyImages(Exception):
    """The repository holds more images than one evaluation may (MAX_EVALUATED_IMAGES)."""


@dataclass(frozen=True)
class PlannedAction:
    """What the evaluator decided for one image, with the image as it was read."""

    decision: LifecycleDecision
    image: LifecycleCandidate


@dataclass(frozen=True)
class PreviewPage:
    policy_text: str
    status: str  # IN_PROGRESS, COMPLETE, EXPIRED or FAILED
    results: list[PreviewResultRecord]
    has_more: bool
    # Over the whole preview (not the page); None unless COMPLETE.
    summary: PreviewSummaryRecord | None


@dataclass(frozen=True)
class PreviewQuery:
    tag_status: str = "ANY"
    after_position: int | None = None
    limit: int = 100
    # (digest, tag) pairs, either may be None: only results matching one are wanted.
    image_ids: tuple[tuple[str | None, str | None], ...] = ()


@dataclass(frozen=True)
class LifecycleRun:
    """What applying one repository's policy did (or, for a dry run, would do)."""

    holder: PolicyHolder
    dry_run: bool
    planned: tuple[PlannedAction, ...] = ()
    expired: tuple[PlannedAction, ...] = ()
    transitioned: tuple[PlannedAction, ...] = ()
    # Planned but not done, and why (an index still lists the image, say).
    not_done: tuple[tuple[PlannedAction, str], ...] = ()
    # Set when the repository was not evaluated at all.
    error: str | None = None

    @property
    def planned_expiries(self) -> tuple[PlannedAction, ...]:
        return tuple(action for action in self.planned if action.decision.action == EXPIRE)

    @property
    def planned_transitions(self) -> tuple[PlannedAction, ...]:
        return tuple(action for action in self.planned if action.decision.action == TRANSITION)


@dataclass
class RunTotals:
    repositories: int = 0
    expired: int = 0
    transitioned: int = 0
    failed_repositories: list[str] = field(default_factory=list)


def storage_class_of(image_status: str) -> str:
    """The lifecycle storage class of an image status: ACTIVATING is still ARCHIVE."""
    return "STANDARD" if image_status == "ACTIVE" else "ARCHIVE"


def lifecycle_image(candidate: LifecycleCandidate) -> LifecycleImage:
    return LifecycleImage(
        digest=candidate.digest,
        tags=candidate.tags,
        pushed_at=candidate.pushed_at,
        last_pulled_at=candidate.last_pulled_at,
        storage_class=storage_class_of(candidate.image_status),
        last_archived_at=candidate.last_archived_at,
        last_activated_at=candidate.last_activated_at,
        referenced_by_index=candidate.referenced_by_index,
        listed_by_active_index=candidate.listed_by_active_index,
    )


def policy_not_found(registry: Registry, repository: Repository) -> LifecyclePolicyNotFound:
    return LifecyclePolicyNotFound(
        f"Lifecycle policy does not exist for the repository with name '{repository.name}' "
        f"in the registry with id '{registry.account_id}'"
    )


def preview_status(record: PreviewRecord, now: datetime) -> str:
    """How a stored preview reads at `now`: an IN_PROGRESS nobody can still be computing is
    FAILED, a finished one past PREVIEW_KEPT_FOR is EXPIRED."""
    if record.status == IN_PROGRESS and now - record.started_at >= PREVIEW_STALE_AFTER:
        return FAILED
    if (
        record.status == COMPLETE
        and record.finished_at is not None
        and now - record.finished_at >= PREVIEW_KEPT_FOR
    ):
        return EXPIRED
    return record.status


class LifecycleService:
    def __init__(self, store: LifecycleStore, background: BackgroundTasks) -> None:
        self._store = store
        self._background = background

    # The policy.

    async def policy(self, registry: Registry, repository: Repository) -> LifecyclePolicyRecord:
        """The repository's policy and when a run last evaluated it; LifecyclePolicyNotFound
        when it has none."""
        record = await self._store.policy(repository.id)
        if record is None:
            raise policy_not_found(registry, repository)
        return record

    async def put_policy(self, repository: Repository, policy_text: str) -> str:
        """Check and set the policy (LifecyclePolicyInvalid, its message the reason)."""
        parse_policy(policy_text)
        await self._store.set_policy(repository.id, policy_text)
        return policy_text

    async def delete_policy(
        self, registry: Registry, repository: Repository
    ) -> LifecyclePolicyRecord:
        record = await self.policy(registry, repository)
        await self._store.set_policy(repository.id, None)
        return record

    # What a policy decides.

    async def candidates(self, repository: Repository) -> list[LifecycleCandidate]:
        """Every image of the repository, read in keyset pages; TooManyImages past
        MAX_EVALUATED_IMAGES."""
        found: list[LifecycleCandidate] = []
        after: int | None = None
        for _ in range(MAX_EVALUATED_IMAGES // IMAGE_PAGE_SIZE + 1):
            page = await self._store.candidates_page(repository.id, after, IMAGE_PAGE_SIZE)
            found.extend(page)
            if len(found) > MAX_EVALUATED_IMAGES:
                break
            if len(page) < IMAGE_PAGE_SIZE:
                return found
            after = page[-1].id
        raise TooManyImages(
            f"repository {repository.name} holds more than {MAX_EVALUATED_IMAGES} images, "
            "more than one lifecycle evaluation takes"
        )

    async def plan(
        self, repository: Repository, policy: LifecyclePolicy, now: datetime
    ) -> list[PlannedAction]:
        """What `policy` decides for the repository's images at `now`, in the evaluator's
        order."""
        images = await self.candidates(repository)
        by_digest = {image.digest: image for image in images}
        # In a worker thread: a large repository takes a while, and the server must go on.
        decisions = await to_thread.run_sync(
            evaluate, policy, [lifecycle_image(image) for image in images], now
        )
        return [
            PlannedAction(decision, by_digest[decision.digest])
            for decision in decisions
            if decision.digest in by_digest
        ]

    async def mark_evaluated(self, holder: PolicyHolder, at: datetime) -> None:
        await self._store.mark_evaluated(holder.repository.id, holder.policy_text, at)

    async def holders(
        self,
        after_id: int | None,
        limit: int,
        account_id: str | None = None,
        region: str | None = None,
        name: str | None = None,
    ) -> list[PolicyHolder]:
        return await self._store.holders_page(after_id, limit, account_id, region, name)

    # Previews.

    async def start_preview(
        self, registry: Registry, repository: Repository, policy_text: str | None
    ) -> PreviewRecord:
        """Start a preview of `policy_text`, or of the repository's own policy when None
        (LifecyclePolicyNotFound if it has none); LifecyclePolicyInvalid for a bad policy,
        LifecyclePreviewInProgress while the last preview is still being computed. The
        preview is computed by a background task."""
        if policy_text is None:
            policy_text = (await self.policy(registry, repository)).text
        policy = parse_policy(policy_text)
        now = utcnow()
        record = await self._store.start_preview(
            repository.id, policy_text, now, busy_since=now - PREVIEW_STALE_AFTER
        )
        if record is None:
            raise LifecyclePreviewInProgress(
                "The previous lifecycle policy preview request for the repository with name "
                f"'{repository.name}' in the registry with id '{registry.account_id}' has not "
                "completed. Wait and try again."
            )
        self._background.spawn(self._compute_preview(repository, policy, record.started_at))
        return record

    async def _compute_preview(
        self, repository: Repository, policy: LifecyclePolicy, started_at: datetime
    ) -> None:
        try:
            async with asyncio.timeout(PREVIEW_TIMEOUT.total_seconds()):
                planned = await self.plan(repository, policy, started_at)
                results = [
                    PreviewResultRecord(
                        position=position,
                        image_digest=action.image.digest,
                        image_tags=action.image.tags,
                        image_pushed_at=action.image.pushed_at,
                        action_type=action.decision.action,
                        target_storage_class=action.decision.target_storage_class,
                        applied_rule_priority=action.decision.rule_priority,
                        storage_class=action.decision.storage_class,
                    )
                    for position, action in enumerate(planned, start=1)
                ]
                await self._store.finish_preview(repository.id, started_at, results, utcnow())
        except asyncio.CancelledError:  # the server is stopping: say so rather than linger
            await self._fail_preview(repository, started_at)
            raise
        except Exception:  # recorded as FAILED, which is all the caller can be told
            logger.warning("lifecycle policy preview of %s failed", repository.arn, exc_info=True)
            await self._fail_preview(repository, started_at)

    async def _fail_preview(self, repository: Repository, started_at: datetime) -> None:
        try:
            await asyncio.shield(self._store.fail_preview(repository.id, started_at, utcnow()))
        except Exception:  # it reads FAILED anyway once PREVIEW_STALE_AFTER has passed
            logger.warning(
                "cannot record the failed lifecycle preview of %s", repository.arn, exc_info=True
            )

    async def preview(self, registry: Registry, repository: Repository) -> PreviewRecord:
        """The repository's preview as stored; LifecyclePreviewNotFound when no preview was
        started."""
        record = await self._store.preview(repository.id)
        if record is None:
            raise LifecyclePreviewNotFound(
                "Lifecycle policy preview does not exist for the repository with name "
                f"'{repository.name}' in the registry with id '{registry.account_id}'"
            )
        return record

    async def preview_page(
        self, repository: Repository, record: PreviewRecord, query: PreviewQuery
    ) -> PreviewPage:
        """How the preview reads now and, when COMPLETE, a page of its results and the
        summary of all of them."""
        status = preview_status(record, utcnow())
        if status != COMPLETE:
            return PreviewPage(record.policy_text, status, [], False, None)
        results, has_more = await self._results(repository, query)
        summary = await self._store.preview_summary(repository.id)
        return PreviewPage(record.policy_text, status, results, has_more, summary)

    async def _results(
        self, repository: Repository, query: PreviewQuery
    ) -> tuple[list[PreviewResultRecord], bool]:
        if not query.image_ids:
            found = await self._store.preview_results(
                repository.id, query.tag_status, query.after_position, query.limit + 1
            )
            return found[: query.limit], len(found) > query.limit
        digests = [digest for digest, _tag in query.image_ids if digest is not None]
        tag_names = [tag for _digest, tag in query.image_ids if tag is not None]
        # A digest names one image and a tag named one when the preview ran, so an id
        # (digest and tag, which may name two images) matches at most two rows.
        found = await self._store.preview_results(
            repository.id, query.tag_status, None, 2 * len(query.image_ids), digests, tag_names
        )
        wanted = [
            result
            for result in found
            if any(
                (digest is None or digest == result.image_digest)
                and (tag is None or tag in result.image_tags)
                for digest, tag in query.image_ids
            )
        ]
        return wanted, False

    async def drop_expired_previews(self, now: datetime) -> int:
        return await self._store.drop_results_finished_before(now - PREVIEW_KEPT_FOR)


# Runs. These take the services: expiry and transitions go through the image and storage
# class services the API uses, not around them.


async def apply_policy(
    services: RegistryServices,
    holder: PolicyHolder,
    dry_run: bool = False,
    now: datetime | None = None,
) -> LifecycleRun:
    """Apply the repository's policy now (with `dry_run`, only say what it would do)."""
    now = now or utcnow()
    repository = holder.repository
    try:
        policy = parse_policy(holder.policy_text)
        planned = tuple(await services.lifecycle.plan(repository, policy, now))
    except (LifecyclePolicyInvalid, TooManyImages) as error:
        # A policy stored before a stricter parser, or a repository too large to evaluate.
        logger.warning("lifecycle policy of %s not applied: %s", repository.arn, error)
        return LifecycleRun(holder, dry_run, error=str(error))
    if dry_run:
        return LifecycleRun(holder, dry_run, planned)
    expiries = [action for action in planned if action.decision.action == EXPIRE]
    transitions = [action for action in planned if action.decision.action == TRANSITION]
    expired, not_expired = await _expire(services, repository, expiries)
    transitioned, not_transitioned = await _transition(services, repository, transitions)
    await services.lifecycle.mark_evaluated(holder, now)
    if expired or transitioned:
        logger.info(
            "lifecycle policy of %s: expired %d, transitioned %d",
            repository.arn,
            len(expired),
            len(transitioned),
        )
    return LifecycleRun(
        holder,
        dry_run,
        planned,
        tuple(expired),
        tuple(transitioned),
        tuple(not_expired + not_transitioned),
    )


async def _expire(
    services: RegistryServices, repository: Repository, actions: Sequence[PlannedAction]
) -> tuple[list[PlannedAction], list[tuple[PlannedAction, str]]]:
    """Delete the images, indexes first. An image an index still lists is refused; it is
    tried again after the others (the index may have gone meanwhile) while any pass deletes
    something, so at most one pass per image."""
    remaining = sorted(actions, key=lambda action: not action.image.is_index)
    expired: list[PlannedAction] = []
    not_done: list[tuple[PlannedAction, str]] = []
    for _ in range(len(remaining)):
        refused: list[tuple[PlannedAction, str]] = []
        for action in remaining:
            try:
                # Only as the evaluator saw it: a tag moved onto it since may make it one to keep.
                deletion = await services.images.delete_by_digest(
                    repository, action.image.digest, if_tagged_as=action.image.tags
                )
            except ManifestReferenced as error:
                refused.append((action, f"an index still lists it: {error.index_digest}"))
                continue
            except RegistryError as error:
                not_done.append((action, error.message))
                continue
            if deletion is None:
                not_done.append((action, "it was deleted meanwhile"))
            else:
                expired.append(action)
        if not refused or len(refused) == len(remaining):
            not_done.extend(refused)
            break
        remaining = [action for action, _reason in refused]
    return expired, not_done


async def _transition(
    services: RegistryServices, repository: Repository, actions: Sequence[PlannedAction]
) -> tuple[list[PlannedAction], list[tuple[PlannedAction, str]]]:
    transitioned: list[PlannedAction] = []
    not_done: list[tuple[PlannedAction, str]] = []
    for action in actions:
        try:
            archived = await services.storage_classes.archive(repository, action.image.digest)
        except RegistryError as error:
            not_done.append((action, error.message))
            continue
        if archived:
            transitioned.append(action)
        else:
            not_done.append((action, "it was not archived (gone, or archived already)"))
    return transitioned, not_done


async def each_run(
    services: RegistryServices,
    account_id: str | None = None,
    region: str | None = None,
    name: str | None = None,
    dry_run: bool = False,
) -> AsyncIterator[LifecycleRun]:
    """Apply the policy of every ECR repository that has one (narrowed to an account,
    region and name when given), in repository id order, yielding each run as it ends."""
    after: int | None = None
    while True:  # ends: each page starts past the last id of the one before
        page = await services.lifecycle.holders(after, HOLDER_PAGE_SIZE, account_id, region, name)
        for holder in page:
            try:
                yield await apply_policy(services, holder, dry_run)
            except RegistryError as error:  # the repository went away mid-run, say
                logger.warning(
                    "lifecycle policy of %s not applied: %s", holder.repository.arn, error.message
                )
                yield LifecycleRun(holder, dry_run, error=error.message)
        if len(page) < HOLDER_PAGE_SIZE:
            return
        after = page[-1].repository.id


async def run_all(services: RegistryServices) -> RunTotals:
    """The lifecycle job: apply every policy, then drop the results of expired previews."""
    totals = RunTotals()
    async for run in each_run(services):
        totals.repositories += 1
        totals.expired += len(run.expired)
        totals.transitioned += len(run.transitioned)
        if run.error is not None:
            totals.failed_repositories.append(run.holder.repository.arn)
    await services.lifecycle.drop_expired_previews(utcnow())
    return totals


def lifecycle_job(services: RegistryServices) -> Callable[[], Awaitable[Mapping[str, int]]]:
    """The `lifecycle` job's work: every policy applied, counted."""

    async def run() -> Mapping[str, int]:
        totals = await run_all(services)
        return {
            "repositories": totals.repositories,
            "expired": totals.expired,
            "transitioned": totals.transitioned,
        }

    return run
