"""Parsing lifecycle policies: every user guide example is accepted as written, and every rule of
the lifecycle policy properties page is enforced with ECR's wording.

Expected messages are written out here rather than taken from the module, so a change of wording
shows. Where they come from: ECR's answers quoted in public issues and repositories
(`Only one rule can select Untagged images per storage class.`, `Must specify tagPrefixList or
tagPatternList when tagStatus=TAGGED.`, `Rule for tagStatus=ANY must have the lowest priority
per storage class`, `instance failed to match exactly one schema (matched 0 out of 2)` for
`"targetStorageClass": null` beside `expire` and for `"countUnit": null`, two lines of
`instance type (null) ... (allowed: ["array"])` for null tag lists), moto's copies of ECR's
answers (`Could not map policyString into LifecyclePolicy.`, `object has missing required
properties (["rules"])`), and for the other schema violations the sentences of fge's
json-schema-validator, which ECR's schema answers are. Messages marked "ecrd" are ecrd's own:
ECR's wording was not found.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from ecrd.errors import ParameterInvalid
from ecrd.lifecycle.policy import LifecyclePolicy, LifecyclePolicyInvalid, Rule, parse_policy
from tests.lifecycle import (
    ARCHIVE_THEN_EXPIRE,
    ARCHIVE_TRANSITION_TIME,
    LAST_PULLED,
    MULTIPLE_RULES_A,
    USER_GUIDE_EXAMPLES,
)

UNTAGGED_COUNT = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}
EXPIRE = {"type": "expire"}
ARCHIVE = {"type": "transition", "targetStorageClass": "archive"}


def rule(
    priority: int = 1,
    selection: Any = None,
    action: Any = None,
    **members: Any,
) -> dict[str, Any]:
    return {
        "rulePriority": priority,
        "selection": UNTAGGED_COUNT if selection is None else selection,
        "action": EXPIRE if action is None else action,
        **members,
    }


OMIT = object()
null = None  # JSON null


def selection(**members: Any) -> dict[str, Any]:
    """An imageCountMoreThan selection of any images, with `members` changed; a member given as
    OMIT is left out."""
    base: dict[str, Any] = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}
    base.update(members)
    return {name: value for name, value in base.items() if value is not OMIT}


def text(*rules: Any) -> str:
    return json.dumps({"rules": list(rules)})


def refusal(policy_text: str) -> str:
    with pytest.raises(LifecyclePolicyInvalid) as refused:
        parse_policy(policy_text)
    return refused.value.message


def refusal_of(*rules: Any) -> str:
    return refusal(text(*rules))


def wrong_type(found: str, allowed: str = "integer") -> str:
    """fge's sentence for a value of the wrong JSON type."""
    return (
        f"instance type ({found}) does not match any allowed primitive type "
        f'(allowed: ["{allowed}"])'
    )


# The user guide's examples


@pytest.mark.parametrize("name", sorted(USER_GUIDE_EXAMPLES))
def test_every_user_guide_example_is_accepted(name: str) -> None:
    policy = parse_policy(USER_GUIDE_EXAMPLES[name])
    assert isinstance(policy, LifecyclePolicy)
    assert policy.rules


def test_a_rule_carries_what_the_policy_says() -> None:
    (archive,) = parse_policy(LAST_PULLED).rules
    assert archive == Rule(
        priority=1,
        description="Archive images not pulled in 90 days",
        tag_status="any",
        tag_prefixes=(),
        tag_patterns=(),
        storage_class="standard",
        count_type="sinceImagePulled",
        count_number=90,
        count_unit="days",
        action="transition",
        target_storage_class="archive",
    )
    (expire,) = parse_policy(ARCHIVE_TRANSITION_TIME).rules
    assert expire.storage_class == "archive"
    assert expire.count_type == "sinceImageTransitioned"
    assert (expire.action, expire.target_storage_class) == ("expire", None)
    first, second = parse_policy(MULTIPLE_RULES_A).rules
    assert first.tag_patterns == ("prod*",)
    assert second.tag_patterns == ("beta*",)


def test_rules_come_sorted_by_priority_and_need_not_be_sequential() -> None:
    policy = parse_policy(
        text(
            rule(30, selection(tagStatus="any")),
            rule(5, UNTAGGED_COUNT),
            rule(
                12,
                {
                    "tagStatus": "tagged",
                    "tagPrefixList": ["prod"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 3,
                },
                description="keep three prod images",
            ),
        )
    )
    assert [r.priority for r in policy.rules] == [5, 12, 30]
    assert policy.rules[1].tag_prefixes == ("prod",)
    assert policy.rules[1].description == "keep three prod images"
    assert policy.rules[0].description is None
    assert policy.rules[0].count_unit is None


def test_the_archive_storage_class_gets_its_own_any_rule() -> None:
    """The guide's "Combining archive and expire rules": two `any` rules, one per class."""
    archive, expire = parse_policy(ARCHIVE_THEN_EXPIRE).rules
    assert (archive.storage_class, archive.action) == ("standard", "transition")
    assert (expire.storage_class, expire.action) == ("archive", "expire")


def test_the_error_is_a_parameter_error() -> None:
    assert issubclass(LifecyclePolicyInvalid, ParameterInvalid)


# The document


@pytest.mark.parametrize(
    "policy_text",
    [
        "",
        "not json",
        '{"rules": [',
        "[]",
        '"rules"',
        "42",
        "null",
        '{"rules": [{"rulePriority": NaN}]}',
        '{"rules": [{"rulePriority": Infinity}]}',
        '{"description": ' + "[" * 200 + "]" * 200 + "}",
    ],
    ids=[
        "empty",
        "not-json",
        "truncated",
        "array",
        "string",
        "number",
        "null",
        "nan",
        "infinity",
        "deeply-nested",
    ],
)
def test_text_that_is_not_a_json_object_could_not_be_mapped(policy_text: str) -> None:
    assert refusal(policy_text) == "Could not map policyString into LifecyclePolicy."


def test_rules_are_required() -> None:
    assert refusal("{}") == 'object has missing required properties (["rules"])'
    assert refusal('{"Rules": []}') == (
        'object has missing required properties (["rules"])\n'
        'object instance has properties which are not allowed by the schema: ["Rules"]'
    )


def test_rules_must_be_a_non_empty_array_of_at_most_50_objects() -> None:
    assert refusal('{"rules": {}}') == (
        'instance type (object) does not match any allowed primitive type (allowed: ["array"])'
    )
    assert refusal('{"rules": []}') == (
        "array is too short: must have at least 1 elements but instance has 0 elements"
    )
    assert refusal('{"rules": ["rule"]}') == (
        'instance type (string) does not match any allowed primitive type (allowed: ["object"])'
    )
    fifty = [rule(p, {**UNTAGGED_COUNT, "storageClass": "standard"}) for p in range(1, 51)]
    # 50 rules pass the schema (the untagged rule is then refused for being there 50 times).
    assert refusal_of(*fifty) == "Only one rule can select Untagged images per storage class."
    assert refusal_of(*fifty, rule(51)) == (
        "array is too long: must have at most 50 elements but instance has 51 elements"
    )


def test_unknown_members_are_refused_at_every_level() -> None:
    # A member's own violations come first, then its members' (as fge reports them).
    assert refusal('{"rules": [], "version": 1}') == (
        'object instance has properties which are not allowed by the schema: ["version"]\n'
        "array is too short: must have at least 1 elements but instance has 0 elements"
    )
    assert refusal_of(rule(unknown=123)) == (
        'object instance has properties which are not allowed by the schema: ["unknown"]'
    )
    assert refusal_of(rule(selection={**UNTAGGED_COUNT, "imageTag": "x", "extra": 1})) == (
        'object instance has properties which are not allowed by the schema: ["extra","imageTag"]'
    )
    # An action with a member neither shape has fits neither.
    assert refusal_of(rule(action={"type": "expire", "after": 3})) == (
        "instance failed to match exactly one schema (matched 0 out of 2)"
    )


# The rule


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("rulePriority", '["rulePriority"]'),
        ("selection", '["selection"]'),
        ("action", '["action"]'),
    ],
)
def test_a_rule_needs_priority_selection_and_action(missing: str, expected: str) -> None:
    incomplete = rule()
    del incomplete[missing]
    assert refusal_of(incomplete) == f"object has missing required properties ({expected})"
    assert refusal_of({"description": "nothing"}) == (
        'object has missing required properties (["action","rulePriority","selection"])'
    )


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (0, "numeric instance is lower than the required minimum (minimum: 1, found: 0)"),
        (-3, "numeric instance is lower than the required minimum (minimum: 1, found: -3)"),
        (
            "1",
            wrong_type("string"),
        ),
        (
            1.5,
            wrong_type("number"),
        ),
        (
            True,
            wrong_type("boolean"),
        ),
        (
            null,
            wrong_type("null"),
        ),
    ],
)
def test_rule_priority_is_a_positive_integer(priority: Any, expected: str) -> None:
    assert refusal_of(rule(priority)) == expected


@pytest.mark.parametrize("number", [2**31, 2**62, 10**30, 10**400])
def test_numbers_past_a_java_int_could_not_be_mapped(number: int) -> None:
    """ECR maps rulePriority and countNumber onto Java ints; ecrd's parser stops at 64 bits."""
    assert refusal_of(rule(number)) == "Could not map policyString into LifecyclePolicy."
    assert refusal_of(rule(1, selection(countNumber=number))) == (
        "Could not map policyString into LifecyclePolicy."
    )
    largest = parse_policy(text(rule(2**31 - 1, selection(countNumber=2**31 - 1))))
    assert largest.rules[0].priority == largest.rules[0].count_number == 2**31 - 1


def test_rule_priorities_are_unique() -> None:
    tagged = selection(tagStatus="tagged", tagPrefixList=["prod"])
    # ecrd: ECR's wording was not found.
    assert refusal_of(rule(1, tagged), rule(1)) == (
        "rulePriority must be unique across rules, 1 is used more than once."
    )


def test_description_is_a_string() -> None:
    assert refusal_of(rule(description=7)) == (
        'instance type (integer) does not match any allowed primitive type (allowed: ["string"])'
    )
    assert parse_policy(text(rule(description=""))).rules[0].description == ""


# The selection


@pytest.mark.parametrize("missing", ["tagStatus", "countType", "countNumber"])
def test_a_selection_needs_tag_status_count_type_and_count_number(missing: str) -> None:
    assert refusal_of(rule(selection=selection(**{missing: OMIT}))) == (
        f'object has missing required properties (["{missing}"])'
    )


@pytest.mark.parametrize("status", ["TAGGED", "Any", "all", "", 1])
def test_tag_status_is_tagged_untagged_or_any(status: Any) -> None:
    assert refusal_of(rule(selection=selection(tagStatus=status))) == (
        f"instance value ({json.dumps(status)}) not found in enum "
        '(possible values: ["tagged","untagged","any"])'
    )


@pytest.mark.parametrize(
    "count",
    [
        {"countType": "imageCountMoreThen"},
        {"countType": "IMAGECOUNTMORETHAN"},
        {"countType": 5},
        {"countUnit": "days"},
        {"countUnit": null},
        {"countType": "sinceImagePushed"},
        {"countType": "sinceImagePushed", "countUnit": "hours"},
        {"countType": "sinceImagePushed", "countUnit": "DAYS"},
        {"countType": "sinceImagePulled", "countUnit": null},
        {"countType": "sinceImageTransitioned", "countUnit": "days"},
        {"countType": "sinceImagePushed", "countUnit": "days", "storageClass": "archive"},
        {"countType": "sinceImagePulled", "countUnit": "days", "storageClass": "archive"},
        {"storageClass": "archive"},
        {"storageClass": "ARCHIVE"},
        {"storageClass": "glacier"},
        {"storageClass": null},
        {
            "countType": "sinceImageTransitioned",
            "countUnit": "days",
            "storageClass": "standard",
            "countNumber": 90,
        },
    ],
    ids=lambda count: json.dumps(count),
)
def test_count_type_unit_and_storage_class_go_together_in_four_shapes(
    count: dict[str, Any],
) -> None:
    """imageCountMoreThan takes no countUnit; the since* types need countUnit "days";
    sinceImageTransitioned needs storageClass "archive" and the others allow only
    "standard"."""
    assert refusal_of(rule(selection=selection(**count))) == (
        "instance failed to match exactly one schema (matched 0 out of 4)"
    )


@pytest.mark.parametrize(
    "count",
    [
        {},
        {"storageClass": "standard"},
        {"countType": "sinceImagePushed", "countUnit": "days"},
        {"countType": "sinceImagePushed", "countUnit": "days", "storageClass": "standard"},
        {"countType": "sinceImagePulled", "countUnit": "days"},
    ],
)
def test_the_four_shapes_accept_what_the_guide_documents(count: dict[str, Any]) -> None:
    action = ARCHIVE if count.get("countType") == "sinceImagePulled" else EXPIRE
    (parsed,) = parse_policy(text(rule(selection=selection(**count), action=action))).rules
    assert parsed.storage_class == "standard"
    assert parsed.count_unit == count.get("countUnit")


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (0, "numeric instance is lower than the required minimum (minimum: 1, found: 0)"),
        (-1, "numeric instance is lower than the required minimum (minimum: 1, found: -1)"),
        (
            "5",
            wrong_type("string"),
        ),
        (
            5.0,
            wrong_type("number"),
        ),
        (
            [5],
            wrong_type("array"),
        ),
    ],
)
def test_count_number_is_a_positive_integer(number: Any, expected: str) -> None:
    assert refusal_of(rule(selection=selection(countNumber=number))) == expected


def test_tag_lists_are_arrays_of_strings() -> None:
    assert refusal_of(
        rule(selection=selection(tagStatus="tagged", tagPatternList=null, tagPrefixList=null))
    ) == (
        'instance type (null) does not match any allowed primitive type (allowed: ["array"])\n'
        'instance type (null) does not match any allowed primitive type (allowed: ["array"])'
    )
    assert refusal_of(rule(selection=selection(tagStatus="tagged", tagPrefixList="prod"))) == (
        'instance type (string) does not match any allowed primitive type (allowed: ["array"])'
    )
    assert refusal_of(
        rule(selection=selection(tagStatus="tagged", tagPatternList=["prod*", 7, null]))
    ) == (
        'instance type (integer) does not match any allowed primitive type (allowed: ["string"])\n'
        'instance type (null) does not match any allowed primitive type (allowed: ["string"])'
    )


# The action


def test_an_action_needs_a_type() -> None:
    assert refusal_of(rule(action={})) == 'object has missing required properties (["type"])'
    assert refusal_of(rule(action="expire")) == (
        'instance type (string) does not match any allowed primitive type (allowed: ["object"])'
    )


def test_an_action_is_expire_or_transition() -> None:
    assert refusal_of(rule(action={"type": "delete"})) == (
        "instance failed to match exactly one schema (matched 0 out of 2)\n"
        'instance value ("delete") not found in enum (possible values: ["expire","transition"])'
    )
    assert refusal_of(rule(action={"type": "EXPIRE"})).endswith(
        'instance value ("EXPIRE") not found in enum (possible values: ["expire","transition"])'
    )


@pytest.mark.parametrize(
    "action",
    [
        {"type": "expire", "targetStorageClass": null},
        {"type": "expire", "targetStorageClass": "archive"},
        {"type": "transition"},
        {"type": "transition", "targetStorageClass": null},
        {"type": "transition", "targetStorageClass": "standard"},
        {"type": "transition", "targetStorageClass": "ARCHIVE"},
        {"type": "transition", "targetStorageClass": "archive", "days": 1},
    ],
    ids=lambda action: json.dumps(action),
)
def test_transition_needs_target_archive_and_expire_refuses_one(action: dict[str, Any]) -> None:
    """Seen from ECR: `"targetStorageClass": null` beside `"type": "expire"` answers exactly
    "instance failed to match exactly one schema (matched 0 out of 2)"."""
    policy = text(rule(selection=selection(tagStatus="any"), action=action))
    assert refusal(policy) == "instance failed to match exactly one schema (matched 0 out of 2)"


def test_a_transition_rule_is_taken_as_written() -> None:
    (parsed,) = parse_policy(text(rule(selection=selection(), action=ARCHIVE))).rules
    assert (parsed.action, parsed.target_storage_class) == ("transition", "archive")


# Tag lists against the tag status


def tagged(**lists: Any) -> dict[str, Any]:
    return selection(tagStatus="tagged", **lists)


@pytest.mark.parametrize(
    "lists",
    [{}, {"tagPrefixList": []}, {"tagPatternList": []}],
    ids=["none", "empty-prefixes", "empty-patterns"],
)
def test_tagged_needs_a_tag_prefix_or_pattern_list(lists: dict[str, Any]) -> None:
    assert refusal_of(rule(selection=tagged(**lists))) == (
        "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED."
    )


def test_a_rule_takes_a_prefix_list_or_a_pattern_list_not_both() -> None:
    # ecrd: ECR's wording was not found.
    assert refusal_of(rule(selection=tagged(tagPrefixList=["prod"], tagPatternList=["v*"]))) == (
        "Cannot specify both tagPrefixList and tagPatternList in one rule."
    )
    assert refusal_of(rule(selection=tagged(tagPrefixList=[], tagPatternList=["v*"]))) == (
        "Cannot specify both tagPrefixList and tagPatternList in one rule."
    )


@pytest.mark.parametrize("status", ["untagged", "any"])
@pytest.mark.parametrize(
    "lists",
    [{"tagPrefixList": ["prod"]}, {"tagPatternList": ["prod*"]}, {"tagPrefixList": []}],
    ids=["prefixes", "patterns", "empty"],
)
def test_untagged_and_any_take_no_tag_list(status: str, lists: dict[str, Any]) -> None:
    # ecrd: ECR's wording was not found.
    assert refusal_of(rule(selection=selection(tagStatus=status, **lists))) == (
        "tagPrefixList and tagPatternList can only be specified when tagStatus=TAGGED."
    )


def test_a_tag_pattern_has_at_most_four_wildcards() -> None:
    """The properties page: `["*test*1*2*3", "test*1*2*3*"]` is valid but
    `["test*1*2*3*4*5*6"]` is invalid."""
    (parsed,) = parse_policy(
        text(rule(selection=tagged(tagPatternList=["*test*1*2*3", "test*1*2*3*"])))
    ).rules
    assert parsed.tag_patterns == ("*test*1*2*3", "test*1*2*3*")
    # ecrd: ECR's wording was not found.
    assert refusal_of(rule(selection=tagged(tagPatternList=["test*1*2*3*4*5*6"]))) == (
        'A tag pattern can contain at most 4 wildcards (*), "test*1*2*3*4*5*6" has 6.'
    )
    assert refusal_of(rule(selection=tagged(tagPatternList=["ok*", "*****"]))) == (
        'A tag pattern can contain at most 4 wildcards (*), "*****" has 5.'
    )
    # In a prefix `*` is no wildcard, so the limit is the pattern list's.
    assert parse_policy(text(rule(selection=tagged(tagPrefixList=["a*b*c*d*e*f"]))))


# Count types against actions


def test_since_image_pulled_only_transitions() -> None:
    """ "The sinceImagePulled count type must be used with the transition action. It cannot be
    used with the expire action." (examples page)"""
    pulled = selection(countType="sinceImagePulled", countUnit="days", countNumber=30)
    # ecrd: ECR's wording was not found.
    assert refusal_of(rule(selection=pulled)) == (
        "countType=sinceImagePulled can only be used with action type=transition."
    )


def archived(days: int) -> dict[str, Any]:
    return selection(
        countType="sinceImageTransitioned",
        countUnit="days",
        countNumber=days,
        storageClass="archive",
    )


def test_since_image_transitioned_only_expires_archived_images_after_90_days() -> None:
    """ "The sinceImageTransitioned count type must be used with the expire action and the
    archive storage class. Images must be in archive storage for a minimum of 90 days before
    deletion." (examples page)"""
    # ecrd: ECR's wording of both was not found.
    assert refusal_of(rule(selection=archived(365), action=ARCHIVE)) == (
        "countType=sinceImageTransitioned can only be used with action type=expire."
    )
    assert refusal_of(rule(selection=archived(89))) == (
        "countNumber must be at least 90 when countType=sinceImageTransitioned: "
        "archived images have a minimum storage duration of 90 days."
    )
    (parsed,) = parse_policy(text(rule(selection=archived(90)))).rules
    assert (parsed.storage_class, parsed.count_number) == ("archive", 90)


def test_transition_rules_select_standard_images() -> None:
    """An archive selection is only sinceImageTransitioned, which only expires."""
    archive_count = selection(storageClass="archive")
    assert refusal_of(rule(selection=archive_count, action=ARCHIVE)) == (
        "instance failed to match exactly one schema (matched 0 out of 4)"
    )
    assert refusal_of(rule(selection=archived(100), action=ARCHIVE)) == (
        "countType=sinceImageTransitioned can only be used with action type=expire."
    )


# Rules across a storage class


def test_one_untagged_rule_per_storage_class() -> None:
    pushed = {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 7,
    }
    assert refusal_of(rule(1, UNTAGGED_COUNT), rule(2, pushed)) == (
        "Only one rule can select Untagged images per storage class."
    )
    untagged_archive = {**archived(120), "tagStatus": "untagged"}
    policy = parse_policy(text(rule(1, UNTAGGED_COUNT), rule(2, untagged_archive)))
    assert [r.storage_class for r in policy.rules] == ["standard", "archive"]
    assert refusal_of(rule(1, untagged_archive), rule(2, {**untagged_archive})) == (
        "Only one rule can select Untagged images per storage class."
    )


def test_the_any_rule_has_the_highest_priority_number_of_its_storage_class() -> None:
    prod = tagged(tagPrefixList=["prod"])
    assert refusal_of(rule(1, selection(tagStatus="any")), rule(2, prod)) == (
        "Rule for tagStatus=ANY must have the lowest priority per storage class."
    )
    assert refusal_of(rule(5, prod), rule(2, selection()), rule(3, UNTAGGED_COUNT)) == (
        "Rule for tagStatus=ANY must have the lowest priority per storage class."
    )
    assert refusal_of(rule(1, selection()), rule(2, selection(countNumber=4))) == (
        "Rule for tagStatus=ANY must have the lowest priority per storage class."
    )
    # Per storage class: an archive rule may follow the standard `any` rule, and the archive
    # class's own `any` rule may come before a standard rule.
    archive_any = archived(365)
    assert parse_policy(text(rule(1, selection()), rule(2, archive_any)))
    assert parse_policy(text(rule(1, archive_any), rule(2, prod), rule(3, selection())))
    assert refusal_of(rule(1, archive_any), rule(2, {**archive_any, "tagStatus": "untagged"})) == (
        "Rule for tagStatus=ANY must have the lowest priority per storage class."
    )


def test_rules_of_a_storage_class_select_unique_sets_of_tags() -> None:
    """ "The set of all rules selecting a specific storage class must contain a unique set of
    prefixes." A prefix `p` selects what the pattern `p*` does."""
    keep = tagged(tagPrefixList=["prod", "v1"])
    old = tagged(tagPrefixList=["v1", "prod"], countNumber=3)
    # ecrd: ECR's wording was not found.
    assert refusal_of(rule(1, keep), rule(2, old)) == (
        "Rules 1 and 2 select the same tags in the standard storage class; the rules selecting "
        "a storage class must each have a unique set of tag prefixes."
    )
    assert refusal_of(rule(1, keep), rule(4, tagged(tagPatternList=["prod*", "v1*"]))) == (
        "Rules 1 and 4 select the same tags in the standard storage class; the rules selecting "
        "a storage class must each have a unique set of tag prefixes."
    )
    assert parse_policy(text(rule(1, keep), rule(2, tagged(tagPrefixList=["prod"]))))
    archived_prod = {**archived(200), "tagStatus": "tagged", "tagPrefixList": ["prod", "v1"]}
    assert parse_policy(text(rule(1, keep), rule(2, archived_prod)))


# Hostile input


def test_violations_are_listed_up_to_ten() -> None:
    many = rule(selection=tagged(tagPatternList=list(range(1000))))
    message = refusal_of(many)
    lines = message.split("\n")
    assert len(lines) == 10
    assert set(lines) == {
        'instance type (integer) does not match any allowed primitive type (allowed: ["string"])'
    }


def test_a_long_policy_parses_quickly() -> None:
    patterns = [f"team-{n}-*-build-*" for n in range(1500)]
    policy = parse_policy(text(rule(selection=tagged(tagPatternList=patterns))))
    assert len(policy.rules[0].tag_patterns) == 1500


VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**70,
    1.5,
    "",
    "x",
    "any",
    "archive",
    "days",
    [],
    ["x"],
    [[]],
    {},
    {"a": 1},
]


def _mutations(document: Any, rng: random.Random) -> Any:
    """`document` with one member (at any depth) replaced, removed or added."""
    mutated = copy.deepcopy(document)
    containers: list[Any] = []
    stack = [mutated]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            containers.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    target = rng.choice(containers)
    if isinstance(target, dict):
        keys = list(target)
        choice = rng.random()
        if keys and choice < 0.5:
            target[rng.choice(keys)] = rng.choice(VALUES)
        elif keys and choice < 0.75:
            del target[rng.choice(keys)]
        else:
            target[rng.choice(["tagStatus", "countUnit", "storageClass", "x"])] = rng.choice(VALUES)
    elif target:
        target[rng.randrange(len(target))] = rng.choice(VALUES)
    else:
        target.append(rng.choice(VALUES))
    return mutated


def test_mutated_policies_are_accepted_or_refused_never_crash() -> None:
    """Every variation of the guide's examples either parses or is LifecyclePolicyInvalid; no
    other exception escapes. Seeded and bounded: 3,000 variants."""
    rng = random.Random(20240901)
    documents = [json.loads(example) for example in USER_GUIDE_EXAMPLES.values()]
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(3000):
        variant = _mutations(rng.choice(documents), rng)
        try:
            parse_policy(json.dumps(variant))
        except LifecyclePolicyInvalid as invalid:
            assert invalid.message
            outcomes["refused"] += 1
        else:
            outcomes["accepted"] += 1
    assert outcomes["refused"] > 1000
    assert outcomes["accepted"] > 100
