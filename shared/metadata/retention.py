"""What a retention run reads of a space, and how it removes what its policy lets go
(``shared.retention_run``): every tag and manifest of the space with only the fields the
decision needs, and removals in batches, each batch one transaction that checks every item
again (a tag pushed again, or a manifest tagged, listed or pushed since the run looked, stays).
"""

from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.database import AsyncDatabase

from shared.batches import batched
from shared.metadata.connection import Document, Session, prefix_range
from shared.metadata.images import ImageRepository

# Documents read per ``$in`` of ids or digests: the embedded server checks a document against
# such a list element by element, so one long list costs documents times length.
IN_BATCH = 100

# What weighing a manifest reads (``created_at`` for one written before every push set
# ``touched_at``, and not pushed since), and what a run that removes it also reads.
_WEIGHED_FIELDS = {"touched_at": 1, "created_at": 1, "manifests": 1, "subject": 1}
_EVENT_FIELDS = {**_WEIGHED_FIELDS, "media_type": 1, "size": 1}


def _moment(value: object) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None


class RetentionRepository:
    def __init__(self, db: AsyncDatabase[Document], images: ImageRepository) -> None:
        self.db = db
        self._images = images

    def _in_space(self, space_id: str) -> Document:
        return {"repository": prefix_range(f"{space_id}/")}

    async def space_tags(self, space_id: str) -> list[Document]:
        """Every tag of the space: ``repository``, ``tag``, ``digest`` and ``updated_at``.
        The first two are read from ``_id`` (``<repository>:<tag>``, neither of which may
        contain a ``:``): the embedded server copies each field it returns."""
        # index: one of tags on repository first (repository_1_tag_1, repository_1_digest_1,
        # ...: a range on their first field)
        cursor = self.db.tags.find(self._in_space(space_id), {"digest": 1, "updated_at": 1})
        tags: list[Document] = []
        async for doc in cursor:
            doc["repository"], _colon, doc["tag"] = doc["_id"].partition(":")
            tags.append(doc)
        return tags

    async def space_pins(self, space_id: str) -> set[tuple[str, str]]:
        # index: pins space_1
        cursor = self.db.pins.find({"space": space_id}, {"repository": 1, "tag": 1})
        return {(doc["repository"], doc["tag"]) async for doc in cursor}

    async def space_manifests(
        self, space_id: str, *, with_event_fields: bool
    ) -> dict[tuple[str, str], Document]:
        """Every manifest of the space by (repository, digest), as retention weighs it: when
        it was last pushed (``pushed_at``: ``touched_at``, else for a manifest written before
        every push set that its ``created_at``, else None), its ``touched_at`` as stored (a
        removal checks it did not move), what it lists and refers to, and with
        ``with_event_fields`` what its ``image.deleted`` event says (a dry run writes none).
        Nothing more: the embedded server copies each field it returns, and a space holds as
        many manifests as tags (the key is read from ``_id``, ``<repository>@<digest>``:
        neither part may contain an ``@``)."""
        fields = _EVENT_FIELDS if with_event_fields else _WEIGHED_FIELDS
        # index: manifests repository_1_subject_1 (a range on its first field), named: a
        # planner may pick repository_1_blobs_1, which holds an entry per blob, not per manifest
        cursor = self.db.manifests.find(
            self._in_space(space_id), fields, hint=[("repository", 1), ("subject", 1)]
        )
        manifests: dict[tuple[str, str], Document] = {}
        async for doc in cursor:
            repository, _at, digest = doc["_id"].partition("@")
            doc["pushed_at"] = _moment(doc.get("touched_at")) or _moment(doc.get("created_at"))
            manifests[(repository, digest)] = doc
        return manifests

    async def space_blobs(self, space_id: str) -> dict[tuple[str, str], list[str]]:
        """The blobs each manifest of the space references, by (repository, digest): read
        only when a dry run has something to weigh (``blobs_only_in``)."""
        # index: manifests repository_1_subject_1 (as space_manifests)
        cursor = self.db.manifests.find(
            self._in_space(space_id), {"blobs": 1}, hint=[("repository", 1), ("subject", 1)]
        )
        blobs: dict[tuple[str, str], list[str]] = {}
        async for doc in cursor:
            repository, _at, digest = doc["_id"].partition("@")
            blobs[(repository, digest)] = doc.get("blobs") or []
        return blobs

    async def blobs_only_in(
        self, going: list[tuple[str, str]], space: dict[tuple[str, str], list[str]]
    ) -> dict[str, int]:
        """The blobs that only the ``going`` manifests reference, with their sizes: what
        removing them frees once the grace period of their links has passed. ``space`` is
        what every manifest of their space references (``space_blobs``).

        Only their repositories' links go with them, so a blob stays when a manifest of the
        space that stays references it (read already, in ``space``), or when any other
        repository links it: a manifest elsewhere references only blobs its repository links
        (a push needs the link, and a link goes only once no manifest of its repository needs
        it), so the links are all there is to read, a few per blob, instead of every manifest
        that shares a base layer."""
        leaving = set(going)
        candidates: set[str] = set()
        for key in going:
            candidates.update(space.get(key) or [])
        for key, blobs in space.items():
            if key not in leaving:
                candidates.difference_update(blobs)
        repositories = {repository for repository, _digest in going}
        elsewhere: set[str] = set()
        for blobs in batched(sorted(candidates), IN_BATCH):
            # The filter names only the indexed field; the rest is checked here, so that every
            # server bounds the scan by the index.
            # index: blob_links digest_1
            async for doc in self.db.blob_links.find(
                {"digest": {"$in": blobs}}, {"digest": 1, "repository": 1}
            ):
                if doc["repository"] not in repositories:
                    elsewhere.add(doc["digest"])
        sizes: dict[str, int] = {}
        for blobs in batched(sorted(candidates - elsewhere), IN_BATCH):
            # index: _id_
            async for doc in self.db.blobs.find({"_id": {"$in": blobs}}, {"size": 1}):
                sizes[doc["_id"]] = int(doc["size"])
        return sizes

    async def remove_tags_if_unchanged(
        self, tags: list[tuple[str, str, str, dt.datetime]], session: Session
    ) -> set[tuple[str, str]]:
        """In a transaction: delete those of ``tags`` ((repository, tag, digest, pushed at),
        as whoever looked saw them) that still point at that digest since then (not pushed
        again meanwhile); the (repository, tag) of those deleted. One read of the tags and one
        delete: a push that moves one of them after this read conflicts with the delete."""
        seen = {f"{repository}:{tag}": (digest, at) for repository, tag, digest, at in tags}
        unchanged: list[str] = []
        for ids in batched(sorted(seen), IN_BATCH):
            # index: _id_
            cursor = self.db.tags.find(
                {"_id": {"$in": ids}}, {"digest": 1, "updated_at": 1}, session=session
            )
            unchanged += [
                doc["_id"]
                async for doc in cursor
                if (doc["digest"], doc["updated_at"]) == seen[doc["_id"]]
            ]
        if not unchanged:
            return set()
        for ids in batched(unchanged, IN_BATCH):
            # index: _id_
            await self.db.tags.delete_many({"_id": {"$in": ids}}, session=session)
        deleted = set(unchanged)
        removed = {(r, t) for r, t, _digest, _at in tags if f"{r}:{t}" in deleted}
        for repository in sorted({repository for repository, _tag in removed}):
            await self._images.tags_changed(repository, session)
        return removed

    async def remove_manifests_if_unneeded(
        self, manifests: list[tuple[str, str, dt.datetime | None]], session: Session
    ) -> set[tuple[str, str]]:
        """In a transaction: delete those of ``manifests`` ((repository, digest, ``touched_at``
        as whoever looked saw it), parents before children) that, now, no tag points at, no
        manifest lists or refers to but one deleted here before it, and no push touched
        since; the (repository, digest) of those deleted. A push that tags, lists or refers to
        one of them after these reads touches it, and so conflicts with the delete."""
        ids = {f"{r}@{d}": touched for r, d, touched in manifests}
        by_repository: dict[str, list[str]] = {}
        for repository, digest, _touched in manifests:
            by_repository.setdefault(repository, []).append(digest)
        unchanged: set[str] = set()
        needed_by: dict[str, set[str]] = {}  # a manifest id -> the ids of those that need it
        for batch in batched(sorted(ids), IN_BATCH):
            # index: _id_
            async for doc in self.db.manifests.find(
                {"_id": {"$in": batch}}, {"touched_at": 1}, session=session
            ):
                if doc.get("touched_at") == ids[doc["_id"]]:
                    unchanged.add(doc["_id"])
        for repository, digests in by_repository.items():
            for batch in batched(digests, IN_BATCH):
                # index: tags repository_1_digest_1
                async for doc in self.db.tags.find(
                    {"repository": repository, "digest": {"$in": batch}},
                    {"digest": 1},
                    session=session,
                ):
                    needed_by.setdefault(f"{repository}@{doc['digest']}", set()).add(doc["_id"])
                # index: manifests repository_1_subject_1
                async for doc in self.db.manifests.find(
                    {"repository": repository, "subject": {"$in": batch}},
                    {"subject": 1},
                    session=session,
                ):
                    needed_by.setdefault(f"{repository}@{doc['subject']}", set()).add(doc["_id"])
                # index: manifests manifests_1 (an index in any repository may list the digest)
                async for doc in self.db.manifests.find(
                    {"manifests": {"$in": batch}},
                    {"repository": 1, "manifests": 1},
                    session=session,
                ):
                    for child in doc.get("manifests") or []:
                        if doc["repository"] == repository:
                            needed_by.setdefault(f"{repository}@{child}", set()).add(doc["_id"])
        going: set[str] = set()
        for manifest_id in ids:  # parents first: whether a parent goes is settled already
            if manifest_id in unchanged and needed_by.get(manifest_id, set()) <= going:
                going.add(manifest_id)
        for batch in batched(sorted(going), IN_BATCH):
            # index: _id_
            await self.db.manifests.delete_many({"_id": {"$in": batch}}, session=session)
        return {(r, d) for r, d, _touched in manifests if f"{r}@{d}" in going}
