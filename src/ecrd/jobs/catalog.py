"""The jobs ecrd runs in the background, built from the services they call.

A job calls the same service functions a request does: services know nothing of schedules.
The server runs these on their schedule; `ecrd jobs run NAME` runs one now.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from ecrd.jobs.runner import Job
from ecrd.registry.garbage import run_collection
from ecrd.registry.lifecycle import lifecycle_job

if TYPE_CHECKING:
    from ecrd.registry.services import RegistryServices
    from ecrd.settings import Settings

UPLOAD_SWEEP = "upload_sweep"
SIGNING_KEY_ROTATION = "signing_key_rotation"
GARBAGE_COLLECTION = "garbage_collection"
LIFECYCLE = "lifecycle"
REPLICATION = "replication"
SIGNING = "signing"
SCANNING = "scanning"


def scheduled_jobs(services: RegistryServices, settings: Settings) -> list[Job]:
    """Every job, its work bound to `services` and `settings`."""
    expiry_seconds = settings.upload_expiry_seconds

    rotation_age = timedelta(days=settings.signing_key_rotation_days)

    async def sweep_uploads() -> Mapping[str, int]:
        removed = await services.uploads.expire(expiry_seconds)
        orphans = await services.uploads.collect_orphans(expiry_seconds)
        return {"removed": removed, "orphans_removed": orphans}

    replication_lease = timedelta(minutes=10)

    async def replicate() -> Mapping[str, int]:
        # Ends well within its lease, so that no other process takes the job meanwhile.
        deadline = time.monotonic() + replication_lease.total_seconds() / 2
        counts: Counter[str] = Counter()
        for _round in range(10_000):
            # Backfills queue their images, the queue is copied, then their outcomes recorded.
            advanced = await services.backfills.advance(deadline - time.monotonic())
            outcome = await services.replication.run_due(deadline - time.monotonic())
            counts.update(outcome.counts())
            counts.update(
                backfill_images_queued=advanced.queued, backfill_results=advanced.recorded
            )
            idle = not advanced.busy and not any(outcome.counts().values())
            if idle or time.monotonic() >= deadline:
                break
        return dict(counts)

    async def sign() -> Mapping[str, int]:
        outcome = await services.signing.run_due(replication_lease.total_seconds() / 2)
        return outcome.counts()

    async def scan() -> Mapping[str, int]:
        return await services.scanner.run_due(replication_lease.total_seconds() / 2)

    async def rotate_signing_key() -> Mapping[str, int]:
        return {"rotated": int(await services.tokens.rotate(rotation_age) is not None)}

    return [
        Job(
            name=UPLOAD_SWEEP,
            interval=timedelta(hours=1),
            run=sweep_uploads,
            description=f"remove uploads untouched for {duration_text(expiry_seconds)} "
            "(upload_expiry_seconds), and upload bytes no upload names",
        ),
        Job(
            name=GARBAGE_COLLECTION,
            interval=timedelta(seconds=settings.gc_interval_seconds),
            run=run_collection(
                services.garbage, settings.gc_grace_seconds, settings.gc_delete_untagged
            ),
            # A large store takes a while: pages of candidates, each decided where it goes.
            lease=timedelta(hours=2),
            description="delete blobs no repository has used for "
            f"{duration_text(settings.gc_grace_seconds)} (gc_grace_seconds)"
            + (
                ", and untagged images no manifest list names"
                if settings.gc_delete_untagged
                else ""
            ),
        ),
        Job(
            name=SIGNING_KEY_ROTATION,
            interval=timedelta(hours=1),
            run=rotate_signing_key,
            description="put a new token signing key in once the newest is "
            f"{settings.signing_key_rotation_days} days old (signing_key_rotation_days)",
        ),
        Job(
            name=LIFECYCLE,
            interval=timedelta(seconds=settings.lifecycle_interval_seconds),
            run=lifecycle_job(services),
            # Every repository with a policy, each read in pages and acted on image by image.
            lease=timedelta(hours=1),
            description="apply every repository's lifecycle policy: expire and archive images "
            "(lifecycle_interval_seconds)",
        ),
        Job(
            name=REPLICATION,
            interval=timedelta(seconds=settings.replication_interval_seconds),
            run=replicate,
            lease=replication_lease,
            description="copy queued images to their replication destinations, and deletes "
            "where deleteReplication is on (replication_interval_seconds)",
        ),
        Job(
            name=SIGNING,
            interval=timedelta(seconds=settings.replication_interval_seconds),
            run=sign,
            lease=replication_lease,
            description="sign queued images with their signing profiles' keys (also "
            "replication_interval_seconds)",
        ),
        Job(
            name=SCANNING,
            interval=timedelta(seconds=settings.replication_interval_seconds),
            run=scan,
            lease=replication_lease,
            description="scan images whose scans were started, against the advisories "
            "`ecrd vulndb import` loaded (also replication_interval_seconds)",
        ),
    ]


def duration_text(seconds: float) -> str:
    """3600 -> "1h", 604800 -> "7d", 90 -> "1m30s", 0.5 -> "0.5s"."""
    if seconds != int(seconds) or seconds < 1:
        return f"{seconds:g}s"
    remaining = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
