"""Tests of the lifecycle-policy language. The policies below are every one of the ECR user
guide's "Examples of lifecycle policies in Amazon ECR" page (the archive-era page, with
tagPatternList and the archive storage class), as the page writes them; both test modules use
them. The page's "Lifecycle policy template" is syntax, not a policy, so it is not here.
"""

from __future__ import annotations

import json
from typing import Any


def _policy(*rules: dict[str, Any]) -> str:
    return json.dumps({"rules": list(rules)}, indent=4)


def _rule(
    priority: int, description: str, selection: dict[str, Any], action: dict[str, Any]
) -> dict[str, Any]:
    return {
        "rulePriority": priority,
        "description": description,
        "selection": selection,
        "action": action,
    }


EXPIRE = {"type": "expire"}
ARCHIVE = {"type": "transition", "targetStorageClass": "archive"}

# "Filtering on image age"
IMAGE_AGE = _policy(
    _rule(
        1,
        "Expire images older than 14 days",
        {
            "tagStatus": "tagged",
            "tagPatternList": ["prod*"],
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": 14,
        },
        EXPIRE,
    )
)
# "Filtering on last pulled time", and again under "Archive examples" as "Archiving images not
# pulled in a specified number of days"
LAST_PULLED = _policy(
    _rule(
        1,
        "Archive images not pulled in 90 days",
        {
            "tagStatus": "any",
            "countType": "sinceImagePulled",
            "countUnit": "days",
            "countNumber": 90,
        },
        ARCHIVE,
    )
)
# "Filtering on archive transition time"
ARCHIVE_TRANSITION_TIME = _policy(
    _rule(
        1,
        "Expire images archived for more than 365 days",
        {
            "tagStatus": "any",
            "storageClass": "archive",
            "countType": "sinceImageTransitioned",
            "countUnit": "days",
            "countNumber": 365,
        },
        EXPIRE,
    )
)
# "Filtering on image count"
IMAGE_COUNT = _policy(
    _rule(
        1,
        "Keep only one untagged image, expire all others",
        {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
        EXPIRE,
    )
)


def _count_rule(priority: int, patterns: list[str]) -> dict[str, Any]:
    return _rule(
        priority,
        f"Rule {priority}",
        {
            "tagStatus": "tagged",
            "tagPatternList": patterns,
            "countType": "imageCountMoreThan",
            "countNumber": 1,
        },
        EXPIRE,
    )


# "Filtering on multiple rules", examples A and B
MULTIPLE_RULES_A = _policy(_count_rule(1, ["prod*"]), _count_rule(2, ["beta*"]))
MULTIPLE_RULES_B = _policy(_count_rule(1, ["beta*"]), _count_rule(2, ["prod*"]))
# "Filtering on multiple tags in a single rule", examples A and B
MULTIPLE_TAGS_A = _policy(
    _rule(
        1,
        "Rule 1",
        {
            "tagStatus": "tagged",
            "tagPatternList": ["alpha*", "beta*"],
            "countType": "sinceImagePushed",
            "countNumber": 5,
            "countUnit": "days",
        },
        EXPIRE,
    )
)
MULTIPLE_TAGS_B = _policy(_count_rule(1, ["alpha*", "beta*"]))
# "Filtering on all images", examples A and B
_ANY_KEEP_ONE = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}
ALL_IMAGES_A = _policy(_rule(1, "Rule 1", _ANY_KEEP_ONE, EXPIRE))
ALL_IMAGES_B = _policy(
    _count_rule(1, ["alpha*"]),
    _rule(
        2,
        "Rule 2",
        {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": 1,
        },
        EXPIRE,
    ),
    _rule(3, "Rule 3", _ANY_KEEP_ONE, EXPIRE),
)
# "Archive examples": "Archiving images older than a specified number of days"
ARCHIVE_OLDER_THAN = _policy(
    _rule(
        1,
        "Archive production images older than 30 days",
        {
            "tagStatus": "tagged",
            "tagPatternList": ["prod*"],
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": 30,
        },
        ARCHIVE,
    )
)
# "Archive examples": "Combining archive and expire rules"
ARCHIVE_THEN_EXPIRE = _policy(
    _rule(
        1,
        "Archive images older than 30 days",
        {
            "tagStatus": "any",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": 30,
        },
        ARCHIVE,
    ),
    _rule(
        2,
        "Expire images archived for more than 365 days",
        {
            "tagStatus": "any",
            "storageClass": "archive",
            "countType": "sinceImageTransitioned",
            "countUnit": "days",
            "countNumber": 365,
        },
        EXPIRE,
    ),
)

USER_GUIDE_EXAMPLES = {
    "image age": IMAGE_AGE,
    "last pulled time": LAST_PULLED,
    "archive transition time": ARCHIVE_TRANSITION_TIME,
    "image count": IMAGE_COUNT,
    "multiple rules A": MULTIPLE_RULES_A,
    "multiple rules B": MULTIPLE_RULES_B,
    "multiple tags A": MULTIPLE_TAGS_A,
    "multiple tags B": MULTIPLE_TAGS_B,
    "all images A": ALL_IMAGES_A,
    "all images B": ALL_IMAGES_B,
    "archive older than 30 days": ARCHIVE_OLDER_THAN,
    "archive then expire": ARCHIVE_THEN_EXPIRE,
}
