"""Registry host names: what clients put in image references, and which registry a Host names.

Without a domain every registry shares the server's public address, and a Host header always
means the default registry. With a domain each registry has its own host, as on AWS:

    <account>.dkr.ecr.<region>.<domain>[:port]
"""

from __future__ import annotations

import re

from ecrd.metadata.records import Registry
from ecrd.metadata.registries import derived_alias
from ecrd.settings import Settings


class RegistryHosts:
    def __init__(self, settings: Settings) -> None:
        self._address = settings.public_address
        self._public_address = settings.public_registry_host or settings.public_address
        self._account_id = settings.account_id
        self._public_alias = settings.public_alias
        self._scheme = settings.public_scheme
        self._domain = settings.domain
        port = re.search(r":(\d+)$", self._address)
        self._port_suffix = port.group(0) if port else ""
        self._by_host = (
            re.compile(
                r"^(\d{12})\.dkr\.ecr\.([a-z]{2}(?:-[a-z]+)+-\d)\." + re.escape(self._domain) + r"$"
            )
            if self._domain
            else None
        )

    def default_alias(self, account_id: str) -> str:
        """The alias a new public registry gets: the configured one for the default account."""
        if account_id == self._account_id and self._public_alias:
            return self._public_alias
        return derived_alias(account_id)

    def public_prefix_of(self, registry: Registry) -> str:
        """`<public host>/<alias>`: what a public repository's URI starts with."""
        return f"{self._public_address}/{registry.alias}"

    def public_image(self, alias: str, name: str) -> str:
        """`<public host>/<alias>/<name>`: what `docker pull` takes."""
        return f"{self._public_address}/{alias}/{name}"

    def public_host_named_by(self, host_header: str | None) -> bool:
        """Whether a Host header names the public registry host (when it has its own)."""
        if self._public_address == self._address or not host_header:
            return False
        return host_header.lower() == self._public_address.lower()

    @property
    def public_host_shared(self) -> bool:
        """Whether public repositories share the private host (told apart by their alias)."""
        return self._public_address == self._address

    def gallery_url(self, path: str) -> str:
        """A URL on the public host (the gallery and what it serves)."""
        return f"{self._scheme}://{self._public_address}{path}"

    def host_of(self, account_id: str, region: str) -> str:
        """host[:port] of the registry of (account, region)."""
        if not self._domain:
            return self._address
        return f"{account_id}.dkr.ecr.{region}.{self._domain}{self._port_suffix}"

    def url_of(self, account_id: str, region: str) -> str:
        return f"{self._scheme}://{self.host_of(account_id, region)}"

    def registry_named_by(self, host_header: str | None) -> tuple[str, str] | None:
        """(account, region) a Host header names, or None for the default registry."""
        if self._by_host is None or not host_header:
            return None
        match = self._by_host.match(re.sub(r":\d+$", "", host_header.lower()))
        return None if match is None else (match.group(1), match.group(2))
