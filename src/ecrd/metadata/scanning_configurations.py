"""Each registry's scanning configuration (scan type and rules), one JSON row per registry."""

from __future__ import annotations

from ecrd.metadata.database import Database
from ecrd.metadata.registry_documents import RegistryDocumentStore
from ecrd.metadata.schema import registry_scanning_configurations


class ScanningConfigurationStore(RegistryDocumentStore):
    def __init__(self, database: Database) -> None:
        super().__init__(database, registry_scanning_configurations)
