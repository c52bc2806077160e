"""Which of a repository's images a lifecycle policy expires or archives, as the ECR user guide's
"Lifecycle policy evaluation rules" say:

- All rules are evaluated together, then applied in priority order (lowest number first).
- A rule *selects* the images of its storage class (`storageClass`, default standard) whose tags
  match its tag status and lists: `tagged` with `tagPrefixList` needs every prefix to begin some
  tag, with `tagPatternList` every pattern to match some tag (`*` matches any run of
  characters, the whole tag must match); `untagged` selects images without tags; `any` all.
- An image is acted on by exactly one or zero rules: only the first rule (by priority) that
  selects it may expire or archive it ("An image that matches the tagging requirements of a
  rule cannot be expired or archived by a rule with a lower priority"). Later rules still count
  it ("can still identify them as if they haven't been expired or archived"). Selection is by
  storage class too, so a standard rule never shields an archived image from an archive rule
  (the guide's "Combining archive and expire rules" example needs that).
- `imageCountMoreThan` N ranks the selected images newest first and marks all past the first N.
- `sinceImagePushed` N marks the selected images pushed more than N days before `now`.
- `sinceImagePulled` N marks those last pulled more than N days before `now`; an image never
  pulled counts from its push, and one restored from the archive and not pulled since counts from
  its restore (`last_activated_at`).
- `sinceImageTransitioned` N marks archived images that went to the archive more than N days
  before `now` (`last_archived_at`; an archived image without one counts from its push).
- "Expiration is always ordered by pushed_at_time ... If an image was archived and then restored
  at any point in the past, the image's last_activated_at is used instead of pushed_at_time":
  a restored image's push time, for ranking and for `sinceImagePushed`, is its restore time, so a
  restore is not undone by the next run.
- "More than N days": an image exactly N days old is kept. Images pushed at the same instant rank
  by digest, so the outcome never depends on the order the images were listed in.

**Images an index lists.** "If an image is referenced by a manifest list, it cannot be expired or
archived without the manifest list being deleted or archived first." Such an image
(`referenced_by_index`) is selected and counted like any other, and still shields itself from
lower rules, but gets no decision; the slot it holds is not passed to another image (the policy
marked it, ECR's action on it fails). Once its index is gone, a later run decides it; once its
indexes are all archived (`listed_by_active_index` false), it may be archived, not expired.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from ecrd.lifecycle.policy import (
    ANY,
    ARCHIVE,
    IMAGE_COUNT_MORE_THAN,
    SINCE_IMAGE_PULLED,
    SINCE_IMAGE_PUSHED,
    SINCE_IMAGE_TRANSITIONED,
    TAGGED,
    TRANSITION,
    UNTAGGED,
    LifecyclePolicy,
    Rule,
)

STANDARD_CLASS: Final = "STANDARD"
ARCHIVE_CLASS: Final = "ARCHIVE"
ACTIVATING_STATUS: Final = "ACTIVATING"
EXPIRE_ACTION: Final = "EXPIRE"
TRANSITION_ACTION: Final = "TRANSITION"


@dataclass(frozen=True)
class LifecycleImage:
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime  # aware UTC
    last_pulled_at: datetime | None
    storage_class: str  # "STANDARD" or "ARCHIVE" (an ACTIVATING image counts as ARCHIVE)
    last_archived_at: datetime | None  # when it last moved to ARCHIVE
    last_activated_at: datetime | None  # when it was last restored to STANDARD
    referenced_by_index: bool  # a manifest list/index in the same repository lists it
    # An index that is not archived lists it. An image only archived indexes list may be
    # archived too (the index went first), not expired. None: as referenced_by_index.
    listed_by_active_index: bool | None = None


@dataclass(frozen=True)
class LifecycleDecision:
    digest: str
    action: str  # "EXPIRE" | "TRANSITION"  (upper case, as the API answers)
    target_storage_class: str | None  # "ARCHIVE" for TRANSITION
    rule_priority: int
    storage_class: str  # the image's storage class when evaluated ("STANDARD"/"ARCHIVE")


def evaluate(
    policy: LifecyclePolicy, images: Sequence[LifecycleImage], now: datetime
) -> list[LifecycleDecision]:
    """What the policy does to the repository's images now; one decision at most per image.

    Decisions come in the order they are applied: by rule priority, and within a rule oldest
    first. An image listed twice (the same digest) is evaluated once, as first listed. Naive
    datetimes are taken as UTC. The cost is one pass over the images per rule, plus a sort."""
    now = _utc(now)
    unique: dict[str, LifecycleImage] = {}
    for image in images:
        unique.setdefault(image.digest, image)
    candidates = list(unique.values())
    selections = [[image for image in candidates if selects(rule, image)] for rule in policy.rules]
    # The first rule selecting an image is the only one that may act on it.
    owner: dict[str, int] = {}
    for index, selected in enumerate(selections):
        for image in selected:
            owner.setdefault(image.digest, index)
    decisions: list[LifecycleDecision] = []
    for index, (rule, selected) in enumerate(zip(policy.rules, selections, strict=True)):
        for image in _marked(rule, selected, now):
            transition = rule.action == TRANSITION
            if owner[image.digest] != index or _held_by_an_index(image, transition):
                continue
            decisions.append(
                LifecycleDecision(
                    digest=image.digest,
                    action=TRANSITION_ACTION if transition else EXPIRE_ACTION,
                    target_storage_class=ARCHIVE_CLASS if transition else None,
                    rule_priority=rule.priority,
                    storage_class=storage_class_of(image),
                )
            )
    return decisions


def _held_by_an_index(image: LifecycleImage, transition: bool) -> bool:
    """Whether an index keeps the action from the image: any index from expiry, only one
    still in the standard class from archiving ("... without the manifest list being deleted
    or archived first")."""
    if transition and image.listed_by_active_index is not None:
        return image.listed_by_active_index
    return image.referenced_by_index


def selects(rule: Rule, image: LifecycleImage) -> bool:
    """Whether `rule`'s selection (storage class and tags) takes in `image`."""
    wanted = ARCHIVE_CLASS if rule.storage_class == ARCHIVE else STANDARD_CLASS
    if storage_class_of(image) != wanted:
        return False
    if rule.tag_status == ANY:
        return True
    if rule.tag_status == UNTAGGED:
        return not image.tags
    if rule.tag_status != TAGGED or not image.tags:
        return False
    if rule.tag_patterns:
        return all(
            any(tag_pattern_matches(pattern, tag) for tag in image.tags)
            for pattern in rule.tag_patterns
        )
    return all(any(tag.startswith(prefix) for tag in image.tags) for prefix in rule.tag_prefixes)


def storage_class_of(image: LifecycleImage) -> str:
    """ "STANDARD" or "ARCHIVE": an image being restored (ACTIVATING) is still archived."""
    if image.storage_class.upper() in (ARCHIVE_CLASS, ACTIVATING_STATUS):
        return ARCHIVE_CLASS
    return STANDARD_CLASS


def tag_pattern_matches(pattern: str, tag: str) -> bool:
    """Whether the whole of `tag` matches `pattern`, where `*` stands for any run of characters
    (none included) and every other character for itself. Linear in the tag per wildcard: the
    pieces between wildcards are found leftmost in order, which is exact when `*` is the only
    wildcard (no backtracking, unlike a regular expression of `.*`)."""
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return pattern == tag
    first, *middle, last = pieces
    end = len(tag) - len(last)
    if end < len(first) or not tag.startswith(first) or not tag.endswith(last):
        return False
    position = len(first)
    for piece in middle:
        found = tag.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def _marked(rule: Rule, selected: Sequence[LifecycleImage], now: datetime) -> list[LifecycleImage]:
    """The selected images the rule's count criterion marks, oldest first."""
    if rule.count_type == IMAGE_COUNT_MORE_THAN:
        newest_first = sorted(selected, key=lambda image: _rank(image, _pushed), reverse=True)
        return newest_first[rule.count_number :][::-1]
    since = _SINCE[rule.count_type]
    try:
        cutoff = now - timedelta(days=rule.count_number)
    except OverflowError:  # before the year 1: nothing is that old
        return []
    old = [image for image in selected if since(image) < cutoff]
    return sorted(old, key=lambda image: _rank(image, since))


# The time a count type measures an image from.
_Time = Callable[["LifecycleImage"], datetime]


def _rank(image: LifecycleImage, time: _Time) -> tuple[datetime, str]:
    return (time(image), image.digest)


def _pushed(image: LifecycleImage) -> datetime:
    if image.last_activated_at is not None:
        return _utc(image.last_activated_at)
    return _utc(image.pushed_at)


def _pulled(image: LifecycleImage) -> datetime:
    pulled, activated = image.last_pulled_at, image.last_activated_at
    if pulled is not None and (activated is None or _utc(pulled) >= _utc(activated)):
        return _utc(pulled)
    if activated is not None:
        return _utc(activated)
    return _utc(image.pushed_at)


def _archived(image: LifecycleImage) -> datetime:
    if image.last_archived_at is not None:
        return _utc(image.last_archived_at)
    return _utc(image.pushed_at)


_SINCE: Final[dict[str, _Time]] = {
    SINCE_IMAGE_PUSHED: _pushed,
    SINCE_IMAGE_PULLED: _pulled,
    SINCE_IMAGE_TRANSITIONED: _archived,
}


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
