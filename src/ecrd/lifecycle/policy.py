"""Lifecycle policy texts: parsing and validating them as Amazon ECR does.

ECR checks a policy in three steps, and so does `parse_policy`:

1. **JSON schema.** ECR validates the text against a JSON schema with fge's
   json-schema-validator; its answers are that library's sentences (`object has missing required
   properties (["rules"])`, `instance failed to match exactly one schema (matched 0 out of 4)`,
   `numeric instance is lower than the required minimum (minimum: 1, found: 0)`), one line per
   violation. `_POLICY_SCHEMA` below is that schema as the user guide and ECR's answers show it:
   the count fields of a selection are one of four shapes (one per `countType`), the action one
   of two (`expire`, or `transition` with `targetStorageClass`). It is checked by a small
   validator of the keywords it uses, which words each violation as fge does.
2. **Mapping** the document onto ECR's model: text that is not JSON, is not an object, or holds
   a number past a Java `int` is "Could not map policyString into LifecyclePolicy."
3. **Rules across fields and rules**, each with a sentence of its own: tag lists by
   `tagStatus`, wildcards, which count type goes with which action, unique priorities, one
   untagged rule and a last `any` rule per storage class.

Messages whose wording was seen in ECR's answers are marked `AWS` below (where they were seen is
in the comment); ECR's wording of the others could not be found, so they are ecrd's, written in
the same style and marked `ecrd`.

Every rejection is `LifecyclePolicyInvalid`, whatever the text: JSON is parsed with the bounded
parser (depth, 64-bit integers), the validator only descends into members the schema describes,
and it reports at most `MAX_MESSAGES` violations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ecrd.bounded_parsing import InputInvalid, parse_json
from ecrd.errors import ParameterInvalid

TAGGED: Final = "tagged"
UNTAGGED: Final = "untagged"
ANY: Final = "any"
STANDARD: Final = "standard"
ARCHIVE: Final = "archive"
EXPIRE: Final = "expire"
TRANSITION: Final = "transition"
IMAGE_COUNT_MORE_THAN: Final = "imageCountMoreThan"
SINCE_IMAGE_PUSHED: Final = "sinceImagePushed"
SINCE_IMAGE_PULLED: Final = "sinceImagePulled"
SINCE_IMAGE_TRANSITIONED: Final = "sinceImageTransitioned"
DAYS: Final = "days"

# ECR's service quota "Rules per lifecycle policy".
MAX_RULES: Final = 50
# "There is a maximum limit of four wildcards (*) per string" (lifecycle policy properties).
MAX_WILDCARDS: Final = 4
# "Archived images have a minimum storage duration of 90 days. You cannot configure lifecycle
# policies that delete images that have been in archive for less than 90 days."
MIN_ARCHIVE_DAYS: Final = 90
# ECR maps rulePriority and countNumber onto Java ints.
MAX_JAVA_INT: Final = 2**31 - 1
# AWS lists every violation; ecrd lists at most this many, so a hostile policy of thousands of
# bad values cannot make the answer large.
MAX_MESSAGES: Final = 10

# AWS: what moto's ECR answers for text that is not a JSON object (moto copies ECR's wording).
COULD_NOT_MAP: Final = "Could not map policyString into LifecyclePolicy."
# AWS: seen in ECR's answers quoted by users (terraform and CLI output in public repositories).
TAGGED_NEEDS_LIST: Final = "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED."
ONE_UNTAGGED_RULE: Final = "Only one rule can select Untagged images per storage class."
# AWS, quoted without its final period; the period is added as ECR's other sentences have one.
ANY_RULE_LAST: Final = "Rule for tagStatus=ANY must have the lowest priority per storage class."
# ecrd: ECR's wording of these was not found.
BOTH_LISTS: Final = "Cannot specify both tagPrefixList and tagPatternList in one rule."
LISTS_NEED_TAGGED: Final = (
    "tagPrefixList and tagPatternList can only be specified when tagStatus=TAGGED."
)
PULLED_NEEDS_TRANSITION: Final = (
    "countType=sinceImagePulled can only be used with action type=transition."
)
TRANSITIONED_NEEDS_EXPIRE: Final = (
    "countType=sinceImageTransitioned can only be used with action type=expire."
)
TRANSITIONED_MINIMUM: Final = (
    f"countNumber must be at least {MIN_ARCHIVE_DAYS} when countType=sinceImageTransitioned: "
    f"archived images have a minimum storage duration of {MIN_ARCHIVE_DAYS} days."
)


class LifecyclePolicyInvalid(ParameterInvalid):
    """`message` is the detail only, e.g. 'object has missing required properties (["rules"])'.
    The AWS edge wraps it as: Invalid parameter at 'LifecyclePolicyText' failed to satisfy
    constraint: 'Lifecycle policy validation failure: <detail>'."""


@dataclass(frozen=True)
class Rule:
    priority: int  # rulePriority
    description: str | None
    tag_status: str  # "tagged" | "untagged" | "any"  (lower case, as in the policy)
    tag_prefixes: tuple[str, ...]  # tagPrefixList
    tag_patterns: tuple[str, ...]  # tagPatternList
    storage_class: str  # "standard" | "archive" (selection.storageClass; default "standard")
    # "imageCountMoreThan" | "sinceImagePushed" | "sinceImagePulled" | "sinceImageTransitioned"
    count_type: str
    count_number: int
    count_unit: str | None  # "days" or None
    action: str  # "expire" | "transition"
    target_storage_class: str | None  # "archive" for transition, else None


@dataclass(frozen=True)
class LifecyclePolicy:
    rules: tuple[Rule, ...]  # sorted by priority, lowest first


# The schema. Only the keywords `_check` knows are used. The selection's common part checks the
# members every shape shares; which count fields go together is the `oneOf`. Nothing else checks
# countType, countUnit or storageClass, so a wrong one is that one line, as in ECR's answers
# (countUnit null beside imageCountMoreThan: "instance failed to match exactly one schema
# (matched 0 out of 2)" before the archive class came, when there were two shapes). Likewise
# the action's `targetStorageClass` is checked in its shapes only ("targetStorageClass": null
# beside "expire" answers "matched 0 out of 2" and nothing else).
_STRINGS: Final[Mapping[str, Any]] = {"type": "array", "items": {"type": "string"}}
_STANDARD_ONLY: Final[Mapping[str, Any]] = {"enum": [STANDARD]}
_SELECTION: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["tagStatus", "countType", "countNumber"],
    "additionalProperties": False,
    "properties": {
        "tagStatus": {"enum": [TAGGED, UNTAGGED, ANY]},
        "tagPatternList": _STRINGS,
        "tagPrefixList": _STRINGS,
        "storageClass": {},
        "countType": {},
        "countUnit": {},
        "countNumber": {"type": "integer", "minimum": 1},
    },
    "oneOf": [
        {
            "properties": {
                "countType": {"enum": [IMAGE_COUNT_MORE_THAN]},
                "storageClass": _STANDARD_ONLY,
            },
            "not": {"required": ["countUnit"]},
        },
        {
            "properties": {
                "countType": {"enum": [SINCE_IMAGE_PUSHED]},
                "countUnit": {"enum": [DAYS]},
                "storageClass": _STANDARD_ONLY,
            },
            "required": ["countUnit"],
        },
        {
            "properties": {
                "countType": {"enum": [SINCE_IMAGE_PULLED]},
                "countUnit": {"enum": [DAYS]},
                "storageClass": _STANDARD_ONLY,
            },
            "required": ["countUnit"],
        },
        {
            "properties": {
                "countType": {"enum": [SINCE_IMAGE_TRANSITIONED]},
                "countUnit": {"enum": [DAYS]},
                "storageClass": {"enum": [ARCHIVE]},
            },
            "required": ["countUnit", "storageClass"],
        },
    ],
}
_ACTION: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": [EXPIRE, TRANSITION]}},
    "oneOf": [
        {"properties": {"type": {"enum": [EXPIRE]}}, "additionalProperties": False},
        {
            "properties": {
                "type": {"enum": [TRANSITION]},
                "targetStorageClass": {"enum": [ARCHIVE]},
            },
            "required": ["targetStorageClass"],
            "additionalProperties": False,
        },
    ],
}
_RULE: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["rulePriority", "selection", "action"],
    "additionalProperties": False,
    "properties": {
        "rulePriority": {"type": "integer", "minimum": 1},
        "description": {"type": "string"},
        "selection": _SELECTION,
        "action": _ACTION,
    },
}
_POLICY_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["rules"],
    "additionalProperties": False,
    "properties": {
        "rules": {"type": "array", "minItems": 1, "maxItems": MAX_RULES, "items": _RULE},
    },
}


def parse_policy(text: str) -> LifecyclePolicy:
    """Raise LifecyclePolicyInvalid (with AWS's detail) for anything ECR refuses."""
    try:
        document = parse_json(text)
    except InputInvalid:
        raise LifecyclePolicyInvalid(COULD_NOT_MAP) from None
    if not isinstance(document, dict):
        raise LifecyclePolicyInvalid(COULD_NOT_MAP)
    violations = _Violations(MAX_MESSAGES)
    _check(document, _POLICY_SCHEMA, violations)
    if violations.messages:
        raise LifecyclePolicyInvalid("\n".join(violations.messages))
    mapped = [(_rule(raw), raw["selection"]) for raw in document["rules"]]
    _check_priorities_unique([rule for rule, _ in mapped])
    mapped.sort(key=lambda pair: pair[0].priority)
    for rule, selection in mapped:
        _check_rule(rule, selection)
    rules = tuple(rule for rule, _ in mapped)
    _check_storage_classes(rules)
    return LifecyclePolicy(rules=rules)


# The schema validator


class _Violations:
    """The messages found so far; `full` once `limit` are."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.messages: list[str] = []

    @property
    def full(self) -> bool:
        return len(self.messages) >= self.limit

    def add(self, message: str) -> None:
        if not self.full:
            self.messages.append(message)


def _json_type(value: Any) -> str:
    """The JSON-schema type name of a parsed value (fge's names)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _dump(value: Any) -> str:
    """A value as fge prints it: compact JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _conforms(value: Any, schema: Mapping[str, Any]) -> bool:
    found = _Violations(1)
    _check(value, schema, found)
    return not found.messages


def _check(value: Any, schema: Mapping[str, Any], found: _Violations) -> None:
    """Add to `found` a message per way `value` breaks `schema`, in fge's words. Recursion
    follows the schema, so its depth is the schema's (six levels), never the document's."""
    expected = schema.get("type")
    if expected is not None and _json_type(value) != expected:
        found.add(
            f"instance type ({_json_type(value)}) does not match any allowed primitive type "
            f"(allowed: {_dump([expected])})"
        )
        return
    if "enum" in schema and not any(_same(value, allowed) for allowed in schema["enum"]):
        found.add(
            f"instance value ({_dump(value)}) not found in enum "
            f"(possible values: {_dump(schema['enum'])})"
        )
    properties: Mapping[str, Any] = schema.get("properties", {})
    if isinstance(value, dict):
        missing = sorted(name for name in schema.get("required", ()) if name not in value)
        if missing:
            found.add(f"object has missing required properties ({_dump(missing)})")
        if schema.get("additionalProperties") is False:
            extra = sorted(name for name in value if name not in properties)
            if extra:
                found.add(
                    "object instance has properties which are not allowed by the schema: "
                    f"{_dump(extra)}"
                )
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            found.add(
                f"array is too short: must have at least {schema['minItems']} elements "
                f"but instance has {len(value)} elements"
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.add(
                f"array is too long: must have at most {schema['maxItems']} elements "
                f"but instance has {len(value)} elements"
            )
    if _json_type(value) == "integer" and "minimum" in schema and value < schema["minimum"]:
        found.add(
            "numeric instance is lower than the required minimum "
            f"(minimum: {schema['minimum']}, found: {value})"
        )
    if "oneOf" in schema:
        shapes: Sequence[Mapping[str, Any]] = schema["oneOf"]
        matched = sum(1 for shape in shapes if _conforms(value, shape))
        if matched != 1:
            found.add(
                "instance failed to match exactly one schema "
                f"(matched {matched} out of {len(shapes)})"
            )
    if "not" in schema and _conforms(value, schema["not"]):
        found.add("instance matched a schema which it should not have")
    if isinstance(value, dict):
        for name, member in value.items():
            if found.full:
                return
            if name in properties:
                _check(member, properties[name], found)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            if found.full:
                return
            _check(item, schema["items"], found)


def _same(value: Any, allowed: Any) -> bool:
    """JSON equality (in Python `True == 1`; in JSON a boolean is never a number)."""
    return type(value) is type(allowed) and bool(value == allowed)


# Mapping and the rules across fields


def _java_int(value: int) -> int:
    if value > MAX_JAVA_INT:
        raise LifecyclePolicyInvalid(COULD_NOT_MAP)
    return value


def _rule(raw: Mapping[str, Any]) -> Rule:
    """A rule from a member of `rules` that passed the schema."""
    selection: Mapping[str, Any] = raw["selection"]
    action: Mapping[str, Any] = raw["action"]
    return Rule(
        priority=_java_int(raw["rulePriority"]),
        description=raw.get("description"),
        tag_status=selection["tagStatus"],
        tag_prefixes=tuple(selection.get("tagPrefixList", ())),
        tag_patterns=tuple(selection.get("tagPatternList", ())),
        storage_class=selection.get("storageClass", STANDARD),
        count_type=selection["countType"],
        count_number=_java_int(selection["countNumber"]),
        count_unit=selection.get("countUnit"),
        action=action["type"],
        target_storage_class=action.get("targetStorageClass"),
    )


def _check_priorities_unique(rules: Sequence[Rule]) -> None:
    seen: set[int] = set()
    for rule in rules:
        if rule.priority in seen:
            # ecrd: ECR's wording was not found.
            raise LifecyclePolicyInvalid(
                f"rulePriority must be unique across rules, {rule.priority} is used more than once."
            )
        seen.add(rule.priority)


def _check_rule(rule: Rule, selection: Mapping[str, Any]) -> None:
    """The rules of the properties page that tie one rule's fields together. A list counts as
    given when its member is there, even empty: ECR refuses `"tagPrefixList": []` beside
    tagStatus any, and a tagged rule whose lists are empty selects by nothing."""
    given = [name for name in ("tagPrefixList", "tagPatternList") if name in selection]
    if rule.tag_status != TAGGED and given:
        raise LifecyclePolicyInvalid(LISTS_NEED_TAGGED)
    if len(given) == 2:
        raise LifecyclePolicyInvalid(BOTH_LISTS)
    if rule.tag_status == TAGGED and not rule.tag_prefixes and not rule.tag_patterns:
        raise LifecyclePolicyInvalid(TAGGED_NEEDS_LIST)
    for pattern in rule.tag_patterns:
        wildcards = pattern.count("*")
        if wildcards > MAX_WILDCARDS:
            # ecrd: ECR's wording was not found.
            raise LifecyclePolicyInvalid(
                f"A tag pattern can contain at most {MAX_WILDCARDS} wildcards (*), "
                f"{_dump(pattern)} has {wildcards}."
            )
    if rule.count_type == SINCE_IMAGE_PULLED and rule.action != TRANSITION:
        raise LifecyclePolicyInvalid(PULLED_NEEDS_TRANSITION)
    if rule.count_type == SINCE_IMAGE_TRANSITIONED:
        if rule.action != EXPIRE:
            raise LifecyclePolicyInvalid(TRANSITIONED_NEEDS_EXPIRE)
        if rule.count_number < MIN_ARCHIVE_DAYS:
            raise LifecyclePolicyInvalid(TRANSITIONED_MINIMUM)


def _check_storage_classes(rules: Sequence[Rule]) -> None:
    """The evaluation rules that hold per storage class, over `rules` sorted by priority:
    "Only one rule selecting a specific storage class is allowed to select untagged images",
    the `any` rule comes last ("must have the highest value for rulePriority", per storage
    class in ECR's answer), and "the set of all rules selecting a specific storage class must
    contain a unique set of prefixes"."""
    by_class: dict[str, list[Rule]] = {}
    for rule in rules:
        by_class.setdefault(rule.storage_class, []).append(rule)
    for group in by_class.values():
        if sum(1 for rule in group if rule.tag_status == UNTAGGED) > 1:
            raise LifecyclePolicyInvalid(ONE_UNTAGGED_RULE)
        if any(rule.tag_status == ANY for rule in group[:-1]):
            raise LifecyclePolicyInvalid(ANY_RULE_LAST)
        selected: dict[frozenset[str], int] = {}
        for rule in group:
            if rule.tag_status != TAGGED:
                continue
            tags = _tag_selection(rule)
            if tags in selected:
                # ecrd: ECR's wording was not found.
                raise LifecyclePolicyInvalid(
                    f"Rules {selected[tags]} and {rule.priority} select the same tags in the "
                    f"{rule.storage_class} storage class; the rules selecting a storage class "
                    "must each have a unique set of tag prefixes."
                )
            selected[tags] = rule.priority


def _tag_selection(rule: Rule) -> frozenset[str]:
    """The rule's tag filter as a set of wildcard patterns: prefix `p` selects as `p*` does."""
    if rule.tag_patterns:
        return frozenset(rule.tag_patterns)
    return frozenset(prefix + "*" for prefix in rule.tag_prefixes)
