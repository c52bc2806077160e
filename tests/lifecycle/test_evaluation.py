"""Evaluating lifecycle policies: every example of the ECR user guide's "Examples of lifecycle
policies" page, with the repository contents it describes (or, where it describes none, images
on both sides of each criterion), and the evaluation rules of "How lifecycle policies work"."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ecrd.lifecycle.evaluation import (
    LifecycleDecision,
    LifecycleImage,
    evaluate,
    tag_pattern_matches,
)
from ecrd.lifecycle.policy import parse_policy
from tests.lifecycle import (
    ALL_IMAGES_A,
    ALL_IMAGES_B,
    ARCHIVE_OLDER_THAN,
    ARCHIVE_THEN_EXPIRE,
    ARCHIVE_TRANSITION_TIME,
    IMAGE_AGE,
    IMAGE_COUNT,
    LAST_PULLED,
    MULTIPLE_RULES_A,
    MULTIPLE_RULES_B,
    MULTIPLE_TAGS_A,
    MULTIPLE_TAGS_B,
)

NOW = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)


def ago(days: float = 0, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


_NAME_OF: dict[str, str] = {}


def digest(name: str) -> str:
    value = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    _NAME_OF[value] = name
    return value


def image(
    name: str,
    tags: Sequence[str] = (),
    pushed: datetime | None = None,
    *,
    pulled: datetime | None = None,
    storage: str = "STANDARD",
    archived: datetime | None = None,
    activated: datetime | None = None,
    referenced: bool = False,
) -> LifecycleImage:
    return LifecycleImage(
        digest=digest(name),
        tags=tuple(tags),
        pushed_at=ago(30) if pushed is None else pushed,
        last_pulled_at=pulled,
        storage_class=storage,
        last_archived_at=archived,
        last_activated_at=activated,
        referenced_by_index=referenced,
    )


def decide(
    policy_text: str, images: Sequence[LifecycleImage], now: datetime = NOW
) -> list[LifecycleDecision]:
    return evaluate(parse_policy(policy_text), images, now)


def outcome(policy_text: str, images: Sequence[LifecycleImage]) -> dict[str, tuple[str, int]]:
    """Image name -> (action, rule priority) for the images the policy acts on."""
    return {_NAME_OF[d.digest]: (d.action, d.rule_priority) for d in decide(policy_text, images)}


def expired(*names: str, rule: int = 1) -> dict[str, tuple[str, int]]:
    return {name: ("EXPIRE", rule) for name in names}


def archived(*names: str, rule: int = 1) -> dict[str, tuple[str, int]]:
    return {name: ("TRANSITION", rule) for name in names}


# "Filtering on image age" (no repository is described: images on both sides of 14 days)


def test_filtering_on_image_age() -> None:
    images = [
        image("prod-old", ["prod-1"], ago(20)),
        image("production", ["production-team1"], ago(15)),
        image("prod-boundary", ["prod-2"], ago(14)),
        image("prod-new", ["prod-3"], ago(3)),
        image("dev", ["dev-1"], ago(30)),
        image("untagged", [], ago(30)),
    ]
    # Exactly 14 days old is not "older than 14 days".
    assert outcome(IMAGE_AGE, images) == expired("prod-old", "production")


# "Filtering on last pulled time" (and "Archiving images not pulled in a specified number of
# days", the same policy)


def test_filtering_on_last_pulled_time() -> None:
    images = [
        image("A", ["v1"], ago(200), pulled=ago(100)),
        image("B", ["v2"], ago(200), pulled=ago(10)),
        # Never pulled: "the image's pushed_at_time is used instead".
        image("C", [], ago(120)),
        image("D", [], ago(30)),
        # Restored 30 days ago and not pulled since: "last_activated_at is used instead".
        image("E", ["v3"], ago(400), pulled=ago(300), archived=ago(200), activated=ago(30)),
        # Restored long ago, pulled since: the pull counts.
        image("F", ["v4"], ago(400), pulled=ago(95), archived=ago(300), activated=ago(250)),
        # Already archived: a transition rule selects standard images.
        image("G", ["v5"], ago(300), storage="ARCHIVE", archived=ago(150)),
    ]
    assert outcome(LAST_PULLED, images) == archived("A", "C", "F")
    decisions = decide(LAST_PULLED, images)
    assert {(d.action, d.target_storage_class, d.storage_class) for d in decisions} == {
        ("TRANSITION", "ARCHIVE", "STANDARD")
    }
    # Oldest first, by the time the rule measures from.
    assert [d.digest for d in decisions] == [digest("C"), digest("A"), digest("F")]


# "Filtering on archive transition time"


def test_filtering_on_archive_transition_time() -> None:
    images = [
        image("A", ["v1"], ago(500), storage="ARCHIVE", archived=ago(400)),
        image("B", ["v2"], ago(500), storage="ARCHIVE", archived=ago(100)),
        # Archived long ago, then restored: a standard image now.
        image("C", ["v3"], ago(1000), archived=ago(900), activated=ago(800)),
        image("D", [], ago(1000)),
        # Archived 366 days ago: more than 365.
        image("E", [], ago(370), storage="ARCHIVE", archived=ago(366)),
    ]
    assert outcome(ARCHIVE_TRANSITION_TIME, images) == expired("A", "E")
    decisions = decide(ARCHIVE_TRANSITION_TIME, images)
    assert {(d.action, d.target_storage_class, d.storage_class) for d in decisions} == {
        ("EXPIRE", None, "ARCHIVE")
    }


# "Filtering on image count"


def test_filtering_on_image_count() -> None:
    images = [
        image("A", [], ago(3)),
        image("B", [], ago(2)),
        image("C", [], ago(1)),
        image("D", ["latest"], ago(10)),
    ]
    assert outcome(IMAGE_COUNT, images) == expired("A", "B")


# "Filtering on multiple rules"

MULTIPLE_RULES_REPOSITORY = [
    image("A", ["beta-1", "prod-1"], ago(10)),
    image("B", ["beta-2", "prod-2"], ago(9)),
    image("C", ["beta-3"], ago(8)),
]


def test_filtering_on_multiple_rules_example_a() -> None:
    """Rule 1 (prod*) marks A. Rule 2 (beta*) would mark A and B, but Rule 1 saw both.
    Result: Image A is expired."""
    assert outcome(MULTIPLE_RULES_A, MULTIPLE_RULES_REPOSITORY) == expired("A")


def test_filtering_on_multiple_rules_example_b() -> None:
    """Rule 1 (beta*) marks A and B; Rule 2 (prod*) sees only images Rule 1 saw.
    Result: Images A and B are expired."""
    assert outcome(MULTIPLE_RULES_B, MULTIPLE_RULES_REPOSITORY) == expired("A", "B")


# "Filtering on multiple tags in a single rule"


def test_filtering_on_multiple_tags_example_a() -> None:
    """Images must match all listed patterns: Rule 1 sees C and F and marks C (older than five
    days). Result: Image C is expired."""
    images = [
        image("A", ["alpha-1"], ago(12)),
        image("B", ["beta-1"], ago(11)),
        image("C", ["alpha-2", "beta-2"], ago(10)),
        image("D", ["alpha-3"], ago(4)),
        image("E", ["beta-3"], ago(3)),
        image("F", ["alpha-4", "beta-4"], ago(2)),
    ]
    assert outcome(MULTIPLE_TAGS_A, images) == expired("C")


def test_filtering_on_multiple_tags_example_b() -> None:
    """Tags are not exclusive: Rule 1 sees all three images and keeps the newest.
    Result: Images A and B are expired."""
    images = [
        image("A", ["alpha-1", "beta-1", "gamma-1"], ago(10)),
        image("B", ["alpha-2", "beta-2"], ago(9)),
        image("C", ["alpha-3", "beta-3", "gamma-2"], ago(8)),
    ]
    assert outcome(MULTIPLE_TAGS_B, images) == expired("A", "B")


# "Filtering on all images"


def test_filtering_on_all_images_example_a() -> None:
    """Rule 1 sees A, B, C and D and keeps the newest. Result: Images A, B, and C are
    expired."""
    images = [
        image("A", ["alpha-1"], ago(4)),
        image("B", ["beta-1"], ago(3)),
        image("C", [], ago(2)),
        image("D", ["alpha-2"], ago(1)),
    ]
    assert outcome(ALL_IMAGES_A, images) == expired("A", "B", "C")


def test_filtering_on_all_images_example_b() -> None:
    """Rule 1 (alpha*) marks A; Rule 2 (untagged, older than one day) marks B; Rule 3 (any,
    keep one) identifies all five but cannot mark A, B, C or E, identified by higher rules, and
    marks D. Result: Images A, B, and D are expired.

    D and E are both "pushed 1 day ago"; for Rule 3 to keep one image and mark D, E must be the
    newer, and for Rule 2 not to mark E it must be no more than a day old: E is pushed exactly a
    day ago and D an hour before."""
    images = [
        image("A", ["alpha-1", "beta-1"], ago(4)),
        image("B", [], ago(3)),
        image("C", ["alpha-2"], ago(2)),
        image("D", ["git hash"], ago(1, hours=1)),
        image("E", [], ago(1)),
    ]
    assert outcome(ALL_IMAGES_B, images) == {
        **expired("A", rule=1),
        **expired("B", rule=2),
        **expired("D", rule=3),
    }
    # Applied in priority order.
    assert [d.rule_priority for d in decide(ALL_IMAGES_B, images)] == [1, 2, 3]


# "Archive examples"


def test_archiving_images_older_than_a_number_of_days() -> None:
    images = [
        image("A", ["prod-1"], ago(40)),
        image("B", ["prod-2"], ago(10)),
        image("C", ["beta-1"], ago(40)),
        image("D", ["prod-0"], ago(100), storage="ARCHIVE", archived=ago(60)),
    ]
    assert outcome(ARCHIVE_OLDER_THAN, images) == archived("A")


def test_archiving_images_not_pulled_in_a_number_of_days() -> None:
    images = [
        image("A", ["web"], ago(365), pulled=ago(91)),
        image("B", ["api"], ago(365), pulled=ago(89)),
        image("C", [], ago(91)),
        image("D", [], ago(90)),
    ]
    assert outcome(LAST_PULLED, images) == archived("A", "C")


def test_combining_archive_and_expire_rules() -> None:
    """Rule 1 archives standard images older than 30 days; Rule 2 expires images archived for
    more than 365 days. Rule 1 selects `any` tags, but of the standard class only, so it never
    shields an archived image from Rule 2."""
    images = [
        image("A", ["v1"], ago(40)),
        image("B", [], ago(10)),
        image("C", ["v0"], ago(800), storage="ARCHIVE", archived=ago(400)),
        image("D", [], ago(800), storage="ARCHIVE", archived=ago(200)),
        # Restored five days ago: its 30 days count from the restore.
        image("E", ["v-1"], ago(900), archived=ago(500), activated=ago(5)),
    ]
    assert outcome(ARCHIVE_THEN_EXPIRE, images) == {
        **archived("A", rule=1),
        **expired("C", rule=2),
    }


# The previous edition's prefix versions of the same examples


def prefix_policy(*rules: tuple[int, list[str], str, int]) -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": priority,
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPrefixList": prefixes,
                        "countType": count_type,
                        "countNumber": number,
                        **({"countUnit": "days"} if count_type != "imageCountMoreThan" else {}),
                    },
                    "action": {"type": "expire"},
                }
                for priority, prefixes, count_type, number in rules
            ]
        }
    )


def test_tag_prefix_lists_select_as_the_guide_says() -> None:
    """ "An image is successfully matched if all of the tags in the tagPrefixList value are
    matched against any of the image's tags"; the examples with tagPrefixList of the guide's
    previous edition give the same results."""
    count = "imageCountMoreThan"
    assert outcome(
        prefix_policy((1, ["prod"], count, 1), (2, ["beta"], count, 1)), MULTIPLE_RULES_REPOSITORY
    ) == expired("A")
    assert outcome(
        prefix_policy((1, ["beta"], count, 1), (2, ["prod"], count, 1)), MULTIPLE_RULES_REPOSITORY
    ) == expired("A", "B")
    images = [
        image("A", ["alpha-1"], ago(12)),
        image("C", ["alpha-2", "beta-2"], ago(10)),
        image("F", ["alpha-4", "beta-4"], ago(2)),
        image("G", ["xalpha", "xbeta"], ago(10)),
    ]
    assert outcome(prefix_policy((1, ["alpha", "beta"], "sinceImagePushed", 5)), images) == (
        expired("C")
    )


# Tag patterns


@pytest.mark.parametrize(
    ("pattern", "tag", "matches"),
    [
        # From the guide: prod* and *prod*.
        ("prod*", "prod", True),
        ("prod*", "prod1", True),
        ("prod*", "production-team1", True),
        ("prod*", "myprod", False),
        ("*prod*", "repo-production", True),
        ("*prod*", "prod-team", True),
        ("*prod*", "pro-d", False),
        ("latest", "latest", True),
        ("latest", "latest2", False),
        ("*", "anything", True),
        ("*-sha-*", "v1-sha-abc", True),
        ("*-sha-*", "v1-sha", False),
        ("a*a", "a", False),
        ("a*a", "aa", True),
        ("*test*1*2*3", "xtestx1x2x3", True),
        ("*test*1*2*3", "xtestx1x2x3x", False),
        ("test*1*2*3*", "test123", True),
        ("v*.*", "v1.2", True),
        ("v*.*", "v12", False),
        ("Prod*", "prod", False),
    ],
)
def test_tag_patterns_match_whole_tags_with_star_wildcards(
    pattern: str, tag: str, matches: bool
) -> None:
    assert tag_pattern_matches(pattern, tag) is matches


def test_tag_pattern_matching_does_not_backtrack() -> None:
    tag = "a" * 100_000
    started = time.perf_counter()
    for _ in range(100):
        assert not tag_pattern_matches("*a*a*a*a*b", tag)
        assert tag_pattern_matches("a*a*a*a*a", tag)
    assert time.perf_counter() - started < 2


# The evaluation rules


def test_an_image_an_index_lists_is_counted_but_not_expired_or_archived() -> None:
    """ "If an image is referenced by a manifest list, it cannot be expired or archived without
    the manifest list being deleted or archived first." ecrd: it still counts and holds its
    slot, so keeping one untagged image of three expires only the middle one, not the oldest
    instead of it."""
    images = [
        image("A", [], ago(3), referenced=True),
        image("B", [], ago(2)),
        image("C", [], ago(1)),
    ]
    assert outcome(IMAGE_COUNT, images) == expired("B")
    aged = [image("A", ["prod-1"], ago(40), referenced=True), image("B", ["prod-2"], ago(40))]
    assert outcome(ARCHIVE_OLDER_THAN, aged) == archived("B")
    # And it still shields itself from lower rules (it matched Rule 1's selection).
    shielded = [
        image("A", ["beta-1", "prod-1"], ago(10), referenced=True),
        image("B", ["beta-2", "prod-2"], ago(9)),
        image("C", ["beta-3"], ago(8)),
    ]
    assert outcome(MULTIPLE_RULES_A, shielded) == {}
    # Once the only index listing it is archived, it may be archived too, but not expired.
    under_archived = [
        replace(image("A", ["prod-1"], ago(40), referenced=True), listed_by_active_index=False),
        image("B", ["prod-2"], ago(40)),
    ]
    assert outcome(ARCHIVE_OLDER_THAN, under_archived) == archived("A", "B")
    untagged_under_archived = [
        replace(image("A", [], ago(3), referenced=True), listed_by_active_index=False),
        image("B", [], ago(2)),
        image("C", [], ago(1)),
    ]
    assert outcome(IMAGE_COUNT, untagged_under_archived) == expired("B")


def test_a_restored_image_ranks_and_ages_from_its_restore() -> None:
    """ "If an image was archived and then restored at any point in the past, the image's
    last_activated_at is used instead of pushed_at_time.\""""
    images = [
        image("A", [], ago(300), archived=ago(200), activated=ago(1)),
        image("B", [], ago(5)),
        image("C", [], ago(3)),
    ]
    # Keeping one untagged image keeps A, restored most recently.
    assert outcome(IMAGE_COUNT, images) == expired("B", "C")
    older = [
        image("prod-old", ["prod-1"], ago(100), archived=ago(60), activated=ago(13)),
        image("prod-new", ["prod-2"], ago(100), archived=ago(60), activated=ago(15)),
    ]
    assert outcome(IMAGE_AGE, older) == expired("prod-new")


def test_images_pushed_at_the_same_time_rank_by_digest_whatever_their_order() -> None:
    same = [image(name, [], ago(2)) for name in "ABCDE"]
    first = decide(IMAGE_COUNT, same)
    assert len(first) == 4
    assert decide(IMAGE_COUNT, list(reversed(same))) == first
    kept = {i.digest for i in same} - {d.digest for d in first}
    assert kept == {max(i.digest for i in same)}


def test_an_image_listed_twice_is_decided_once() -> None:
    images = [image("A", [], ago(3)), image("A", [], ago(3)), image("B", [], ago(1))]
    assert [d.digest for d in decide(IMAGE_COUNT, images)] == [digest("A")]


def test_each_image_gets_one_decision_at_most() -> None:
    images = [
        image(name, ["alpha-x", "beta-y"] if n % 2 else [], ago(n + 2))
        for n, name in enumerate("ABCDEFGHIJ")
    ]
    decisions = decide(ALL_IMAGES_B, images)
    assert len({d.digest for d in decisions}) == len(decisions) == 9


def test_counts_past_any_date_decide_nothing() -> None:
    """countNumber may be 2**31 - 1: that many days before now is before the year 1, so no image
    is older, and keeping that many images keeps them all."""
    import json

    def policy(count_type: str) -> str:
        selection = {"tagStatus": "any", "countType": count_type, "countNumber": 2**31 - 1}
        if count_type != "imageCountMoreThan":
            selection["countUnit"] = "days"
        return json.dumps(
            {
                "rules": [
                    {
                        "rulePriority": 1,
                        "selection": selection,
                        "action": {"type": "transition", "targetStorageClass": "archive"},
                    }
                ]
            }
        )

    images = [image("A", [], datetime(1, 1, 2, tzinfo=UTC))]
    for count_type in ("imageCountMoreThan", "sinceImagePushed", "sinceImagePulled"):
        assert decide(policy(count_type), images) == []


def test_naive_times_are_utc() -> None:
    naive_now = NOW.replace(tzinfo=None)
    images = [image("A", ["prod-1"], (NOW - timedelta(days=15)).replace(tzinfo=None))]
    assert [d.digest for d in decide(IMAGE_AGE, images, naive_now)] == [digest("A")]
    assert [d.digest for d in decide(IMAGE_AGE, images, NOW)] == [digest("A")]


def test_an_archived_image_without_an_archive_time_counts_from_its_push() -> None:
    images = [
        image("A", [], ago(400), storage="ARCHIVE"),
        image("B", [], ago(10), storage="ARCHIVE"),
    ]
    assert outcome(ARCHIVE_TRANSITION_TIME, images) == expired("A")


def test_an_empty_repository_decides_nothing() -> None:
    assert decide(ALL_IMAGES_B, []) == []


def test_storage_classes_are_read_in_any_case_and_activating_is_archived() -> None:
    images = [
        image("A", [], ago(500), storage="archive", archived=ago(400)),
        image("B", [], ago(500), storage="ACTIVATING", archived=ago(400)),
        image("C", [], ago(500), storage="standard"),
    ]
    decisions = decide(ARCHIVE_TRANSITION_TIME, images)
    assert [(d.digest, d.storage_class) for d in decisions] == [
        (digest("A"), "ARCHIVE"),
        (digest("B"), "ARCHIVE"),
    ]
    assert [d.digest for d in decide(ALL_IMAGES_A, [*images, image("D", [], ago(1))])] == [
        digest("C")
    ]
