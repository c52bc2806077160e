"""OSV advisories (https://ossf.github.io/osv-schema/): reading records, and whether a package
version is affected, as the schema defines it.

A version is affected by an entry when it is listed in `versions`, or when one of its
`ECOSYSTEM` / `SEMVER` ranges covers it: walking the range's events in version order, an
`introduced` at or below the version turns it on, a `fixed` at or below, or a
`last_affected` below, turns it off.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ecrd.scanning.versions import Compare

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
_SEVERITY_WORDS = {"MODERATE": "MEDIUM", "IMPORTANT": "HIGH", "NEGLIGIBLE": "INFORMATIONAL",
                   "UNIMPORTANT": "INFORMATIONAL"}  # fmt: skip


@dataclass(frozen=True)
class Advisory:
    """One OSV record as ecrd keeps it."""

    id: str
    name: str  # the CVE id among the aliases when there is one (ECR names findings so)
    summary: str
    uri: str
    severity: str
    cvss_vector: str | None
    # (ecosystem, package name, the affected entry as JSON-able data)
    affected: tuple[tuple[str, str, dict[str, Any]], ...]


class RecordInvalid(ValueError):
    """A document that is not an OSV record ecrd can use."""


def _severity_word(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    word = value.strip().upper()
    word = _SEVERITY_WORDS.get(word, word)
    return word if word in SEVERITIES else None


def parse_record(document: Mapping[str, Any]) -> Advisory:
    """An Advisory from an OSV record; RecordInvalid for anything else."""
    identifier = document.get("id")
    if not isinstance(identifier, str) or not 0 < len(identifier) <= 128:
        raise RecordInvalid("an OSV record needs an id")
    aliases = [alias for alias in document.get("aliases") or () if isinstance(alias, str)]
    name = next((alias for alias in aliases if alias.startswith("CVE-")), identifier)
    if identifier.startswith("CVE-"):
        name = identifier
    specific = document.get("database_specific")
    severity = _severity_word(specific.get("severity")) if isinstance(specific, dict) else None
    cvss = None
    for entry in document.get("severity") or ():
        if isinstance(entry, dict) and str(entry.get("type", "")).startswith("CVSS_V3"):
            cvss = str(entry.get("score", ""))[:256] or None
    affected = []
    for entry in document.get("affected") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("package"), dict):
            continue
        package = entry["package"]
        ecosystem, package_name = package.get("ecosystem"), package.get("name")
        if not isinstance(ecosystem, str) or not isinstance(package_name, str):
            continue
        for key in ("ecosystem_specific", "database_specific"):
            extra = entry.get(key)
            if severity is None and isinstance(extra, dict):
                severity = _severity_word(extra.get("severity"))
        kept = {
            "ranges": [r for r in entry.get("ranges") or () if isinstance(r, dict)],
            "versions": [v for v in entry.get("versions") or () if isinstance(v, str)],
        }
        affected.append((ecosystem[:64], package_name[:256], kept))
    uri = f"https://osv.dev/vulnerability/{identifier}"
    for reference in document.get("references") or ():
        if isinstance(reference, dict) and reference.get("type") in ("ADVISORY", "WEB"):
            uri = str(reference.get("url") or uri)[:1024]
            break
    summary = document.get("summary") or document.get("details") or ""
    return Advisory(
        id=identifier,
        name=name[:128],
        summary=str(summary)[:4096],
        uri=uri,
        severity=severity or "UNDEFINED",
        cvss_vector=cvss,
        affected=tuple(affected),
    )


def is_affected(version: str, affected: Mapping[str, Any], compare: Compare) -> bool:
    if version in affected.get("versions", ()):
        return True
    for entry in affected.get("ranges", ()):
        if entry.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        events = [e for e in entry.get("events") or () if isinstance(e, dict)]
        if _in_range(version, events, compare):
            return True
    return False


def _event_version(event: Mapping[str, Any]) -> str:
    for key in ("introduced", "fixed", "last_affected", "limit"):
        if isinstance(event.get(key), str):
            return str(event[key])
    return ""


def _in_range(version: str, events: Iterable[Mapping[str, Any]], compare: Compare) -> bool:
    def order(left: Mapping[str, Any], right: Mapping[str, Any]) -> int:
        a, b = _event_version(left), _event_version(right)
        if a == "0" or b == "0":
            return (b == "0") - (a == "0")
        return compare(a, b)

    affected = False
    for event in sorted(events, key=functools.cmp_to_key(order)):
        introduced = event.get("introduced")
        if isinstance(introduced, str) and (introduced == "0" or compare(version, introduced) >= 0):
            affected = True
            continue
        fixed = event.get("fixed")
        if isinstance(fixed, str) and compare(version, fixed) >= 0:
            affected = False
            continue
        last = event.get("last_affected")
        if isinstance(last, str) and compare(version, last) > 0:
            affected = False
    return affected
