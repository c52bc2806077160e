"""Registry scanning configurations: the scan type, the rules that say which repositories are
scanned on push (or continuously), and how a repository's own scanOnPush flag combines with
them, as ECR resolves it.

    BASIC     rules may be SCAN_ON_PUSH (or MANUAL); CONTINUOUS_SCAN is ENHANCED's only
    ENHANCED  rules may be CONTINUOUS_SCAN or SCAN_ON_PUSH (ecrd scans with its own scanner
              either way: there is no Amazon Inspector behind it)
    resolve   the repository's frequency: the first rule (CONTINUOUS_SCAN before SCAN_ON_PUSH
              before MANUAL) one of whose WILDCARD filters matches the name (`*` is any run of
              characters), with the filters that matched; else SCAN_ON_PUSH when the
              repository's own scanOnPush is on; else MANUAL
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ecrd.errors import ParameterInvalid
from ecrd.metadata.image_scans import ScanStore
from ecrd.metadata.records import Registry, Repository, wildcard_matches
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.scanning_configurations import ScanningConfigurationStore

BASIC = "BASIC"
ENHANCED = "ENHANCED"
SCAN_ON_PUSH = "SCAN_ON_PUSH"
CONTINUOUS_SCAN = "CONTINUOUS_SCAN"
MANUAL = "MANUAL"
_ALLOWED = {BASIC: (SCAN_ON_PUSH, MANUAL), ENHANCED: (CONTINUOUS_SCAN, SCAN_ON_PUSH, MANUAL)}
# Which rule wins when several cover a repository.
_PRECEDENCE = (CONTINUOUS_SCAN, SCAN_ON_PUSH, MANUAL)
DEFAULT = {"scanType": BASIC, "rules": []}


class ScannedRepository(Protocol):
    """What decides a repository's scan frequency: its name and its own scanOnPush flag."""

    @property
    def name(self) -> str: ...

    @property
    def scan_on_push(self) -> bool: ...


@dataclass(frozen=True)
class RepositoryScanning:
    """How a repository is scanned: its frequency, and the registry filters that decided it."""

    frequency: str
    applied_filters: tuple[dict[str, str], ...]

    @property
    def on_push(self) -> bool:
        return self.frequency in (SCAN_ON_PUSH, CONTINUOUS_SCAN)


def check_configuration(scan_type: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """ECR's rules on a scanning configuration (the model has checked the shapes); returns it
    as it is stored and shown."""
    seen: set[str] = set()
    kept = []
    for rule in rules:
        frequency = rule["scanFrequency"]
        if frequency not in _ALLOWED[scan_type]:
            raise ParameterInvalid(
                f"Invalid parameter at 'rules' failed to satisfy constraint: 'scanFrequency "
                f"{frequency} is not supported for scanType {scan_type}'"
            )
        if frequency in seen:
            raise ParameterInvalid(
                "Invalid parameter at 'rules' failed to satisfy constraint: 'only one rule "
                f"may have scanFrequency {frequency}'"
            )
        seen.add(frequency)
        kept.append(
            {
                "scanFrequency": frequency,
                "repositoryFilters": [
                    {"filter": item["filter"], "filterType": item["filterType"]}
                    for item in rule["repositoryFilters"]
                ],
            }
        )
    return {"scanType": scan_type, "rules": kept}


def resolve(configuration: dict[str, Any], repository: ScannedRepository) -> RepositoryScanning:
    rules = {rule["scanFrequency"]: rule for rule in configuration.get("rules") or ()}
    for frequency in _PRECEDENCE:
        rule = rules.get(frequency)
        if rule is None:
            continue
        applied = tuple(
            item
            for item in rule["repositoryFilters"]
            if wildcard_matches(item["filter"], repository.name)
        )
        if applied:
            return RepositoryScanning(frequency, applied)
    if repository.scan_on_push:
        return RepositoryScanning(SCAN_ON_PUSH, ())
    return RepositoryScanning(MANUAL, ())


class ScanningConfigurationService:
    def __init__(
        self, registries: RegistryStore, store: ScanningConfigurationStore, scans: ScanStore
    ) -> None:
        self._registries = registries
        self._store = store
        self._scans = scans

    async def get(self, registry: Registry) -> dict[str, Any]:
        found = await self._store.get(registry.id) if registry.is_stored else None
        return found or dict(DEFAULT)

    async def put(
        self, registry: Registry, scan_type: str, rules: list[dict[str, Any]]
    ) -> dict[str, Any]:
        checked = check_configuration(scan_type, rules)
        registry = await self._registries.store(registry)
        await self._store.put(registry.id, checked)
        # Repositories may now be scanned continuously: their images' scans are rematched
        # when advisories came after them.
        await self._scans.check_again(registry.id)
        return checked

    async def of_repository(self, registry: Registry, repository: Repository) -> RepositoryScanning:
        return resolve(await self.get(registry), repository)
