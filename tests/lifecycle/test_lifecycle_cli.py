"""`ecrd lifecycle run` in this process (click's runner) against stores made through the domain
services, on SQLite and PostgreSQL: what it prints, how it narrows to registries, regions and
names, how it pages (small pages, patched), and what it does with a repository it cannot
evaluate. tests/aws/test_lifecycle_runs.py runs it as a subprocess against a real server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from ecrd.cli import _settings, store_options
from ecrd.lifecycle.commands import lifecycle_group
from ecrd.metadata.lifecycle import ImageTimes, LifecycleStore
from ecrd.metadata.records import RepositorySettings
from ecrd.metadata.schema import repositories
from ecrd.registry.services import RegistryServices, build_services
from tests.conftest import postgres_database

pytestmark = pytest.mark.metadata_independent  # both stores, in the SQLite pass

Value = TypeVar("Value")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCOUNT = "000000000000"
OTHER_ACCOUNT = "111111111111"
REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
KEEP_TWO = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the two newest",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 2,
                },
                "action": {"type": "expire"},
            }
        ]
    },
    indent=2,
)


@dataclass
class Store:
    """A store, the `ecrd lifecycle` options naming it, and its services to set it up."""

    arguments: list[str]
    data_dir: Path
    url: str

    def invoke(self, *arguments: str) -> Result:
        command = lifecycle_group(store_options, _settings)
        return CliRunner().invoke(command, ["run", *arguments, *self.arguments])

    def on_services(self, work: Callable[[RegistryServices], Awaitable[Value]]) -> Value:
        settings = _settings(None, data_dir=self.data_dir, database_url=self.url)

        async def main() -> Value:
            services = build_services(settings)
            try:
                await services.database.migrate()
                return await work(services)
            finally:
                await services.close()

        return asyncio.run(main())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    for name in list(os.environ):
        if name.startswith("ECRD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ./ecrd.toml of the developer's
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'metadata.db'}"
        yield Store(["--data-dir", str(data_dir)], data_dir, url)
        return
    with postgres_database() as url:
        yield Store(["--data-dir", str(data_dir), "--database-url", url], data_dir, url)


def _manifest(seed: str) -> bytes:
    """An image manifest whose config and layer are not stored (strict references off)."""

    def descriptor(media_type: str, text: str) -> dict[str, object]:
        data = text.encode()
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", f"config {seed}"),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", seed)],
        }
    ).encode()


def make_repository(
    store: Store,
    name: str,
    ages: list[int],
    policy_text: str | None = KEEP_TWO,
    account_id: str = ACCOUNT,
    region: str = REGION,
) -> list[str]:
    """A repository with one image per age (days), tagged v0, v1, ...; their digests."""

    async def work(services: RegistryServices) -> list[str]:
        registry = await services.registries.get(account_id, region)
        repository = await services.repositories.create(registry, name, RepositorySettings(), {})
        digests = []
        for number, age in enumerate(ages):
            stored = await services.images.put(
                registry,
                repository,
                _manifest(f"{account_id} {region} {name} {number}"),
                OCI_MANIFEST,
                f"v{number}",
                None,
                require_references=False,
            )
            digest = stored.manifest.digest
            pushed = datetime.now(UTC) - timedelta(days=age)
            missing = await LifecycleStore(services.database).set_image_times(
                account_id, region, name, digest, ImageTimes(pushed_at=pushed)
            )
            assert missing is None
            digests.append(digest)
        if policy_text is not None:
            await services.lifecycle.put_policy(repository, policy_text)
        return digests

    return store.on_services(work)


def digests_in(store: Store, name: str, account_id: str = ACCOUNT, region: str = REGION
               ) -> set[str]:  # fmt: skip
    async def work(services: RegistryServices) -> set[str]:
        registry = await services.registries.get(account_id, region)
        repository = await services.repositories.find(registry, name)
        page = await services.images.page(repository, "ANY", None, 1000)
        return {image.digest for image in page.images}

    return store.on_services(work)


def test_runs_page_through_repositories_and_images(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pages of one repository and two images, so every run crosses page boundaries
    monkeypatch.setattr("ecrd.registry.lifecycle.HOLDER_PAGE_SIZE", 1)
    monkeypatch.setattr("ecrd.registry.lifecycle.IMAGE_PAGE_SIZE", 2)
    # given the same name in two accounts, and a repository in another region
    ages = [5, 4, 3, 2, 1]
    made = {
        (ACCOUNT, REGION, "team/app"): make_repository(store, "team/app", ages),
        (OTHER_ACCOUNT, REGION, "team/app"): make_repository(
            store, "team/app", ages, account_id=OTHER_ACCOUNT
        ),
        (ACCOUNT, OTHER_REGION, "team/web"): make_repository(
            store, "team/web", ages, region=OTHER_REGION
        ),
    }
    # when a dry run goes over everything
    dry = store.invoke("--dry-run")
    assert dry.exit_code == 0, dry.output
    # then each repository says it would expire its three oldest, and nothing changed
    for (account_id, region, name), digests in made.items():
        header = f"{account_id} {region} {name}: would expire 3, would transition 0 (dry run)"
        assert header in dry.stdout.splitlines()
        for number, digest in enumerate(digests[:3]):
            assert f"  would expire {digest} (v{number}; rule 1)" in dry.stdout
        assert digests_in(store, name, account_id, region) == set(digests)
    # when the other account's registries are run
    narrowed = store.invoke("--registry-id", OTHER_ACCOUNT)
    assert narrowed.exit_code == 0, narrowed.output
    assert narrowed.stdout.splitlines()[0] == (
        f"{OTHER_ACCOUNT} {REGION} team/app: expired 3, transitioned 0"
    )
    assert f"{ACCOUNT} " not in narrowed.stdout
    assert digests_in(store, "team/app", OTHER_ACCOUNT) == set(
        made[OTHER_ACCOUNT, REGION, "team/app"][3:]
    )
    assert digests_in(store, "team/app") == set(made[ACCOUNT, REGION, "team/app"])
    # then the other region, by region
    by_region = store.invoke("--region", OTHER_REGION)
    assert by_region.exit_code == 0, by_region.output
    assert by_region.stdout.splitlines()[0] == (
        f"{ACCOUNT} {OTHER_REGION} team/web: expired 3, transitioned 0"
    )
    assert digests_in(store, "team/app") == set(made[ACCOUNT, REGION, "team/app"])
    # and then everything: only the first repository has anything left to expire
    everything = store.invoke()
    assert everything.exit_code == 0, everything.output
    headers = [line for line in everything.stdout.splitlines() if not line.startswith(" ")]
    assert sorted(headers) == sorted(
        [
            f"{ACCOUNT} {REGION} team/app: expired 3, transitioned 0",
            f"{OTHER_ACCOUNT} {REGION} team/app: expired 0, transitioned 0",
            f"{ACCOUNT} {OTHER_REGION} team/web: expired 0, transitioned 0",
        ]
    )
    for (account_id, region, name), digests in made.items():
        assert digests_in(store, name, account_id, region) == set(digests[3:])


def test_nothing_to_run(store: Store) -> None:
    make_repository(store, "team/no-policy", [9], policy_text=None)
    # no repository has a policy: said, and not an error
    result = store.invoke()
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no repository has a lifecycle policy"
    assert digests_in(store, "team/no-policy")
    # naming a repository without a policy is an error, in one line
    named = store.invoke("--repository", "team/no-policy")
    assert named.exit_code == 1
    assert named.stderr.strip() == ("Error: no repository 'team/no-policy' with a lifecycle policy")
    narrowed = store.invoke("--repository", "team/no-policy", "--region", OTHER_REGION)
    assert narrowed.stderr.strip().endswith(f"in region {OTHER_REGION}")


def test_a_repository_that_cannot_be_evaluated_is_reported_and_the_others_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a repository too large to evaluate (the bound patched down to 4 images)
    monkeypatch.setattr("ecrd.registry.lifecycle.MAX_EVALUATED_IMAGES", 4)
    large = make_repository(store, "team/large", [5, 4, 3, 2, 1])
    # and one whose stored policy no longer parses (written before a stricter check)
    broken = make_repository(store, "team/broken", [3, 2, 1])

    async def break_policy(services: RegistryServices) -> None:
        statement = (
            update(repositories)
            .where(repositories.c.name == "team/broken")
            .values(lifecycle_policy_text='{"rules": "not a list of rules"}')
        )
        await services.database.write(lambda connection: connection.execute(statement))

    store.on_services(break_policy)
    # and one that is fine
    fine = make_repository(store, "team/fine", [3, 2, 1])
    result = store.invoke()
    # then the run goes on past the two, says why they were not evaluated, and fails
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(f"{ACCOUNT} {REGION} team/large: not evaluated: ") and "4 images" in line
        for line in lines
    ), lines
    assert any(
        line.startswith(f"{ACCOUNT} {REGION} team/broken: not evaluated: ") for line in lines
    ), lines
    assert f"{ACCOUNT} {REGION} team/fine: expired 1, transitioned 0" in lines
    assert result.stderr.strip() == "Error: 2 of 3 repositories could not be evaluated (see above)"
    assert digests_in(store, "team/large") == set(large)
    assert digests_in(store, "team/broken") == set(broken)
    assert digests_in(store, "team/fine") == set(fine[1:])


def test_the_registry_id_must_be_an_account(store: Store) -> None:
    result = store.invoke("--registry-id", "not-an-account")
    assert result.exit_code == 2
    assert "--registry-id" in result.stderr
