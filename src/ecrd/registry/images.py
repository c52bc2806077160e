"""Images the way ECR's API handles them: put with ECR's rules, look up by id, delete, list.

The data plane's manifest PUT and ECR's PutImage store through the same ManifestService; this
adds ECR's extra rules (an identical put is an error, deleting a last tag deletes the image)
and ECR's wording for failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ecrd.auth.principals import Principal
from ecrd.errors import (
    DigestMismatch,
    ImageAlreadyExists,
    ManifestBlobUnknown,
    ManifestChildUnknown,
    TagImmutable,
)
from ecrd.metadata.images import ImageDeletion, ImageStore, ImageSummary
from ecrd.metadata.records import Manifest, Registry, Repository, StoredManifest
from ecrd.registry.manifests import ManifestService


@dataclass(frozen=True)
class ImagePage:
    images: list[ImageSummary]
    has_more: bool


@dataclass(frozen=True)
class TaggedImage:
    """One tag and the image it names, with when the tag was last set."""

    tag: str
    image: ImageSummary
    tagged_at: datetime
    # Where the next page starts after this entry: (manifest id, tag).
    position: tuple[int, str]


class ImageService:
    def __init__(self, manifests: ManifestService, images: ImageStore) -> None:
        self._manifests = manifests
        self._images = images

    async def put(
        self,
        registry: Registry,
        repository: Repository,
        payload: bytes,
        media_type: str | None,
        tag: str | None,
        digest: str | None,
        require_references: bool = True,
        pusher: Principal | None = None,
    ) -> StoredManifest:
        """PutImage: store the manifest, tagged when `tag` is given, pushed by `pusher`. Its
        media type is `media_type` or the one the manifest names, never guessed
        (MediaTypeMissing).

        Raises DigestMismatch when `digest` is not the manifest's, ImageAlreadyExists when
        the same manifest (and tag) is there already (unless it was archived: putting it
        again restores it), TagImmutable, ManifestBlobUnknown and ManifestChildUnknown, each
        worded as ECR words it.
        """
        where = (
            f"in the repository with name '{repository.name}' in registry with id "
            f"'{registry.account_id}'"
        )
        try:
            stored = await self._manifests.store(
                repository,
                payload,
                media_type,
                tag,
                digest,
                require_references,
                infer_media_type=False,
                pusher=pusher,
            )
        except DigestMismatch as error:
            raise DigestMismatch(
                "Invalid parameter at 'imageDigest' failed to satisfy constraint: "
                f"'The provided image digest does not match the image manifest: {error.message}'"
            ) from None
        except TagImmutable:
            raise TagImmutable(
                f"The image tag '{tag}' already exists in the '{repository.name}' repository "
                "and cannot be overwritten because the tag is immutable."
            ) from None
        except ManifestChildUnknown as error:
            raise ManifestChildUnknown(
                f"Some of the referenced images with digests '{error.digests}' do not exist "
                f"{where}",
                error.digests,
            ) from None
        except ManifestBlobUnknown as error:
            raise ManifestBlobUnknown(
                f"Layers with digests '{error.digests}' required for pushing image into "
                f"repository with name '{repository.name}' in the registry with id "
                f"'{registry.account_id}' do not exist",
                error.digests,
            ) from None
        if not stored.created and not stored.tag_moved and not stored.restored:
            tagged = f" and tag '{tag}'" if tag is not None else ""
            raise ImageAlreadyExists(
                f"Image with digest '{stored.manifest.digest}'{tagged} already exists {where}"
            )
        return stored

    async def find(
        self, repository: Repository, tag: str | None, digest: str | None
    ) -> Manifest | None:
        """The manifest a tag or digest names in the repository, with its bytes."""
        return await self._manifests.find_in(repository, tag, digest)

    async def find_many(
        self, repository: Repository, tag_names: list[str], digests: list[str]
    ) -> tuple[dict[str, Manifest], dict[str, Manifest]]:
        """The manifests `tag_names` and `digests` name in the repository: (by tag, by
        digest), in a fixed number of statements."""
        return await self._manifests.find_many_in(repository, tag_names, digests)

    async def tagged(self, repository: Repository, tag_names: list[str]) -> dict[str, str]:
        return await self._images.tagged(repository.id, tag_names)

    async def describe(self, repository: Repository, digests: list[str]) -> list[ImageSummary]:
        return await self._images.by_digests(repository.id, digests)

    async def page(
        self,
        repository: Repository,
        tag_status: str,
        after_id: int | None,
        limit: int,
        image_status: str = "ANY",
    ) -> ImagePage:
        """A page of images in push order, of a tag status and an image status (ACTIVE,
        ARCHIVED, ACTIVATING, or ANY)."""
        found = await self._images.page(
            repository.id, tag_status, after_id, limit + 1, image_status
        )
        return ImagePage(found[:limit], has_more=len(found) > limit)

    async def tagged_page(
        self, repository: Repository, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[TaggedImage], bool]:
        """A page of the repository's tags with their images, in (manifest id, tag) order."""
        entries, has_more = await self.id_page(repository, "TAGGED", after, limit)
        digests = list(dict.fromkeys(digest for _id, digest, _tag in entries))
        images = {image.digest: image for image in await self.describe(repository, digests)}
        tags = [tag for _id, _digest, tag in entries if tag is not None]
        tagged_at = await self._images.tag_times(repository.id, tags)
        page = [
            TaggedImage(
                tag, images[digest], tagged_at.get(tag, images[digest].pushed_at), (id_, tag)
            )
            for id_, digest, tag in entries
            if tag is not None
        ]
        return page, has_more

    async def id_page(
        self,
        repository: Repository,
        tag_status: str,
        after: tuple[int, str] | None,
        limit: int,
        image_status: str = "ANY",
    ) -> tuple[list[tuple[int, str, str | None]], bool]:
        found = await self._images.id_page(
            repository.id, tag_status, after, limit + 1, image_status
        )
        return found[:limit], len(found) > limit

    async def delete_by_tag(self, repository: Repository, tag: str) -> ImageDeletion | None:
        return await self._images.delete_by_tag(repository.id, tag)

    async def delete_by_digest(
        self,
        repository: Repository,
        digest: str,
        if_tagged_as: tuple[str, ...] | None = None,
        replicate: bool = True,
    ) -> ImageDeletion | None:
        """Delete an image with its tags; `replicate` off for a replica's own deletion."""
        return await self._images.delete_by_digest(
            repository.id, digest, if_tagged_as, replicate=replicate
        )

    def record_pull(
        self, repository: Repository, manifest: Manifest, principal: Principal | None = None
    ) -> None:
        self._manifests.record_pull(repository, manifest, principal)
