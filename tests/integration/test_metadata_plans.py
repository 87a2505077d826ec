"""Every hot metadata query is served by the index named beside it in the code.

The store runs each query against the real MongoDB-wire server of the tests; the commands it
sends are recorded from the driver, and each one's filter, sort and projection are given to
``explain``, whose winning plan must scan that index (not the whole collection). Writes are
checked through a ``find`` with the same filter, which is what locates the document they write.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from shared.builds.lifecycle import BuildStatus, Built, succeeded
from shared.events.envelope import CloudEvent
from shared.metadata.blobs import Claim
from shared.metadata.builds import new_build
from shared.metadata.store import MetadataStore
from shared.versions import try_parse_docker_tag
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical, descriptor
from tests.support.pushes import manifest_push

Document = dict[str, Any]
REPOSITORY = "spaces-1/app"
LAYER = descriptor(OCI_LAYER, b"layer")
CONFIG = descriptor(OCI_CONFIG, b"{}")


class Recorder(CommandListener):
    """The reads and writes the store sends, as (collection, filter, sort, projection)."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, Document, Document | None, Document | None]] = []

    def started(self, event: CommandStartedEvent) -> None:
        command = event.command
        if event.command_name == "find":
            self.queries.append(
                (
                    command["find"],
                    dict(command.get("filter") or {}),
                    command.get("sort"),
                    command.get("projection"),
                )
            )
        elif event.command_name in ("update", "delete"):
            for statement in command.get(f"{event.command_name}s", []):
                self.queries.append((command[event.command_name], dict(statement["q"]), None, None))
        elif event.command_name == "findAndModify":
            self.queries.append((command["findAndModify"], dict(command["query"]), None, None))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


@pytest_asyncio.fixture
async def metadata(mongo_url: str) -> AsyncIterator[tuple[MetadataStore, Recorder]]:
    recorder = Recorder()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[recorder]
    )
    store = MetadataStore(client, client.get_default_database().name)
    await store.ensure_indexes()
    await store.spaces.ensure("spaces-1", "Default")
    await seed(store)
    recorder.queries.clear()
    yield store, recorder
    await store.close()


async def seed(store: MetadataStore) -> None:
    """A few repositories, tagged manifests (versions and not), pins, links and blobs."""
    for name in (REPOSITORY, "spaces-1/other", "spaces-1/app-two"):
        await store.images.touch_repository(name)
    for digest in (LAYER["digest"], CONFIG["digest"]):
        await store.blobs.reserve(digest, 5, "writer")
        await store.blobs.record_link(REPOSITORY, digest, 5, "writer")
    # "99999999999" is no Octopus version (a number beyond 32 bits): the feed leaves it out.
    for n, tag in enumerate(["1.0.0", "1.2.0-deployments-7", "latest", "99999999999", "2.0"]):
        content = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": CONFIG,
                "layers": [LAYER],
                "annotations": {"n": str(n)},
            }
        )
        await push(store, content, tag)
    await store.pins.pin(REPOSITORY, "1.0.0", "admin")


async def push(store: MetadataStore, content: bytes, tag: str) -> str:
    """Record a PUT of ``content`` as ``tag`` of REPOSITORY; its digest."""
    push = manifest_push(REPOSITORY, content, tag)
    [missing] = await store.images.commit_pushes([push])
    assert missing is None
    return push.manifest.digest


async def plans(
    store: MetadataStore, recorder: Recorder, call: Callable[[], Awaitable[object]]
) -> list[tuple[str, str]]:
    """Run ``call``; the (collection, index) each query it sent is planned to scan."""
    recorder.queries.clear()
    await call()
    used = []
    for collection, query, sort, projection in list(recorder.queries):
        find: Document = {"find": collection, "filter": query}
        if sort:
            find["sort"] = sort
        if projection:
            find["projection"] = projection
        explained = await store.db.command({"explain": find, "verbosity": "queryPlanner"})
        used.append((collection, _scanned_index(explained["queryPlanner"]["winningPlan"])))
    recorder.queries.clear()
    return used


def _scanned_index(plan: Document) -> str:
    """The index the plan scans, or ``COLLSCAN``."""
    while True:
        if plan.get("stage") == "IXSCAN":
            return str(plan["indexName"])
        if plan.get("stage") == "COLLSCAN" or "inputStage" not in plan:
            return "COLLSCAN"
        plan = plan["inputStage"]


async def test_manifest_put_path_writes_by_id(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """A push's transaction finds each document it writes by _id: the links it touches,
    the manifest, the tag, the repository (listed, stamped, its feed key raised)."""
    store, recorder = metadata
    content = canonical(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG, "layers": [LAYER]}
    )
    fresh = MetadataStore(store.client, store.db.name)  # nothing remembered as listed

    async def put() -> None:
        await fresh.images.touch_repository("spaces-1/new")
        await push(store, content, "3.0")

    assert await plans(store, recorder, put) == [
        ("repositories", "_id_"),
        ("spaces", "_id_"),  # a new repository: the space's listing stamp moves
        ("blob_links", "_id_"),
        ("manifests", "_id_"),
        ("tags", "_id_"),
        ("repositories", "_id_"),
    ]


async def test_an_upload_a_mount_and_an_unlink_find_the_blob_by_id(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """Each write of a blob's document names it by _id alone (or by _id and the claim's
    deadline, which one index serves whole), and checks anything else it depends on itself:
    with a guard beside _id, the embedded server scanned every blob, so each upload cost as
    much as the registry held blobs."""
    store, recorder = metadata
    blob = "sha256:" + "a1" * 32

    async def upload_mount_unlink() -> None:
        assert not await store.blobs.reserve(blob, 7, "uploader")
        await store.blobs.renew(blob, "uploader")
        await store.blobs.record_link(REPOSITORY, blob, 7, "uploader")
        assert await store.blobs.link("spaces-1/other", blob, 7)
        assert await store.blobs.unlink("spaces-1/other", blob)
        assert await store.blobs.reserve(blob, 7, "again")
        await store.blobs.release(blob, "again")

    used = await plans(store, recorder, upload_mount_unlink)
    assert [(c, i) for c, i in used if i not in ("_id_", "_id_1_deleting_until_1")] == []
    stored = await store.blobs.get(blob)
    assert stored is not None
    assert (stored["stored"], stored["links"], stored["writers"]) == (True, 1, [])


async def test_manifest_get_by_tag_and_digest(metadata: tuple[MetadataStore, Recorder]) -> None:
    store, recorder = metadata

    async def get() -> None:
        digest = await store.images.get_tag(REPOSITORY, "1.0.0")
        assert digest is not None
        assert await store.images.get_manifest(REPOSITORY, digest) is not None
        assert await store.images.repository_exists(REPOSITORY)

    assert await plans(store, recorder, get) == [
        ("tags", "_id_"),
        ("manifests", "_id_"),
        ("repositories", "_id_"),
    ]


async def test_repository_names_by_space_and_stamps(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """What the catalog and the feed's search read: the stamps of the spaces asked for (or
    of all of them: a short collection), then one space's names in order."""
    store, recorder = metadata

    async def reads() -> None:
        assert set(await store.images.repositories_stamps(["spaces-1", "spaces-9"])) == {"spaces-1"}
        assert set(await store.images.repositories_stamps(None)) == {"spaces-1"}
        names = [r.name for r in await store.images.space_repositories("spaces-1")]
        assert names == ["spaces-1/app", "spaces-1/app-two", "spaces-1/other"]

    assert await plans(store, recorder, reads) == [
        ("spaces", "_id_"),
        ("spaces", "COLLSCAN"),
        ("repositories", "space_1__id_1"),
    ]


async def test_tag_listing_reads_the_stamp_then_every_tag_in_order(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    store, recorder = metadata

    async def reads() -> None:
        assert await store.images.tags_stamp(REPOSITORY) == 5  # one per tagged push of the seed
        assert await store.images.tags_stamp("spaces-1/none") is None
        tags = await store.images.all_tags(REPOSITORY)
        assert tags == ["1.0.0", "1.2.0-deployments-7", "2.0", "99999999999", "latest"]

    assert await plans(store, recorder, reads) == [
        ("repositories", "_id_"),
        ("repositories", "_id_"),
        ("tags", "repository_1_tag_1"),
    ]


async def test_feed_newest_versions(metadata: tuple[MetadataStore, Recorder]) -> None:
    store, recorder = metadata

    async def feed() -> None:
        newest = await store.feed.newest_versions(
            REPOSITORY, include_prerelease=True, before=None, limit=3
        )
        assert [entry.tag for entry in newest] == ["2.0", "1.2.0-deployments-7", "1.0.0"]
        after = await store.feed.newest_versions(
            REPOSITORY, include_prerelease=True, before=newest[1].cursor, limit=10
        )
        assert [entry.tag for entry in after] == ["1.0.0", "latest"]
        released = await store.feed.newest_versions(
            REPOSITORY, include_prerelease=False, before=None, limit=10
        )
        assert [entry.tag for entry in released] == ["2.0", "1.0.0", "latest"]

    used = await plans(store, recorder, feed)
    assert ("tags", "repository_1_feed_key_1") in used
    assert ("tags", "repository_1_prerelease_1_feed_key_1") in used
    assert set(used) == {
        ("repositories", "_id_"),  # where the first page starts
        ("tags", "repository_1_feed_key_1"),
        ("tags", "repository_1_prerelease_1_feed_key_1"),
        ("manifests", "_id_"),  # the sizes
    }


async def test_feed_pages_follow_octopus_order(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """Page after page, with or without prereleases, the feed lists every version tag once,
    in the order shared.versions gives, whatever the highest key recorded says."""
    store, _recorder = metadata
    rng = random.Random(13)
    tags = {"latest", "2", "v3.1", "10.0.0.1"}
    while len(tags) < 400:
        numbers = ".".join(str(rng.choice([0, 1, 2, 9, 10, 17, 255, 256, 4096])) for _ in range(3))
        suffix = rng.choice(["", "", "-beta", "-rc.2", "-deployments-" + str(rng.randrange(300))])
        tags.add(numbers + suffix)
    content = canonical(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG, "layers": [LAYER]}
    )
    for tag in sorted(tags):
        await push(store, content, tag)
    every = {doc["tag"] async for doc in store.db.tags.find({"repository": REPOSITORY})}
    versions = [(v, tag) for tag in every if (v := try_parse_docker_tag(tag)) is not None]
    for released_only in (False, True):
        wanted = [
            tag
            for version, tag in sorted(versions, key=lambda item: item[0].sort_key, reverse=True)
            if not (released_only and version.is_prerelease)
        ]
        for top in (None, "", "0", "~", "00000001"):
            if top is not None:
                await store.db.repositories.update_one(
                    {"_id": REPOSITORY}, {"$set": {"feed_top": top}}
                )
            listed: list[str] = []
            before = None
            while True:
                page = await store.feed.newest_versions(
                    REPOSITORY, include_prerelease=not released_only, before=before, limit=37
                )
                listed += [entry.tag for entry in page]
                if len(page) < 37:
                    break
                before = page[-1].cursor
            # Equal versions (1.0 and 1.0.0) come latest push first: compare as sets there.
            assert sorted(listed) == sorted(wanted)
            assert [_sort_key(tag) for tag in listed] == [_sort_key(tag) for tag in wanted]


def _sort_key(tag: str) -> object:
    version = try_parse_docker_tag(tag)
    assert version is not None
    return version.sort_key


async def test_tags_written_before_feed_keys_are_upgraded(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """Tags without a feed key (written by an older version, before or after this one first
    started) get one at the next start, once; a key a push wrote is never replaced."""
    store, _recorder = metadata
    await store.db.tags.update_many({}, {"$unset": {"feed_key": "", "prerelease": ""}})
    assert await store.feed.upgrade_tags() == 5
    assert await store.feed.upgrade_tags() == 0
    newest = await store.feed.newest_versions(
        REPOSITORY, include_prerelease=True, before=None, limit=1
    )
    assert [entry.tag for entry in newest] == ["2.0"]
    # An older instance writes a tag without a key after the first pass: the next start keys it.
    await store.db.tags.update_one(
        {"repository": REPOSITORY, "tag": "2.0"}, {"$unset": {"feed_key": "", "prerelease": ""}}
    )
    assert await store.feed.upgrade_tags() == 1
    newest = await store.feed.newest_versions(
        REPOSITORY, include_prerelease=True, before=None, limit=1
    )
    assert [entry.tag for entry in newest] == ["2.0"]


async def test_a_feed_hint_left_too_high_is_lowered_by_the_next_first_page(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """A newest version deleted (or a push that failed) leaves the repository's hint above
    every key; the next first page reads down from it once and lowers it."""
    store, _recorder = metadata
    first = await store.feed.newest_versions(
        REPOSITORY, include_prerelease=True, before=None, limit=1
    )
    await store.db.repositories.update_one({"_id": REPOSITORY}, {"$set": {"feed_top": "~"}})
    again = await store.feed.newest_versions(
        REPOSITORY, include_prerelease=True, before=None, limit=1
    )
    assert again == first
    hint = await store.db.repositories.find_one({"_id": REPOSITORY})
    assert hint is not None and hint["feed_top"] == first[0].cursor


async def test_retention_reads_of_a_space(metadata: tuple[MetadataStore, Recorder]) -> None:
    store, recorder = metadata

    async def reads() -> None:
        assert len(await store.retention.space_tags("spaces-1")) == 5
        assert await store.retention.space_pins("spaces-1") == {(REPOSITORY, "1.0.0")}
        manifests = await store.retention.space_manifests("spaces-1", with_event_fields=True)
        assert len(manifests) == 5
        assert await store.pins.of_repository(REPOSITORY) == {"1.0.0"}
        references = await store.retention.space_blobs("spaces-1")
        assert await store.retention.blobs_only_in(list(manifests), references) == {
            LAYER["digest"]: 5,
            CONFIG["digest"]: 5,
        }

    used = await plans(store, recorder, reads)
    # A range on repository: any index with repository first bounds it.
    assert used[0][0] == "tags" and used[0][1].startswith("repository_1_")
    assert used[2][0] == "manifests" and used[2][1].startswith("repository_1_")
    # The manifests are read through the index their query names (one entry per manifest).
    hinted = await store.db.command(
        {
            "explain": {
                "find": "manifests",
                "filter": {"repository": {"$gte": "spaces-1/", "$lt": "spaces-10"}},
                "hint": {"repository": 1, "subject": 1},
            },
            "verbosity": "queryPlanner",
        }
    )
    assert _scanned_index(hinted["queryPlanner"]["winningPlan"]) == "repository_1_subject_1"
    assert [used[1], used[3]] == [("pins", "space_1"), ("pins", "repository_1")]
    # What the space's manifests reference: again a range on repository (named by its hint).
    assert used[4][0] == "manifests" and used[4][1].startswith("repository_1_")
    assert used[5:] == [("blob_links", "digest_1"), ("blobs", "_id_")]


async def test_a_dry_run_reads_of_each_manifest_only_what_weighs_it(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """The embedded server copies every field a query returns, and a space holds as many
    manifests as tags: a dry run reads when each was pushed and what it lists or refers to; a
    run that removes them reads what their events say too."""
    store, recorder = metadata
    recorder.queries.clear()
    weighed = await store.retention.space_manifests("spaces-1", with_event_fields=False)
    removed = await store.retention.space_manifests("spaces-1", with_event_fields=True)
    weighing = {"touched_at", "created_at", "manifests", "subject"}
    assert [(query[0], set(query[3] or {})) for query in recorder.queries] == [
        ("manifests", weighing),
        ("manifests", weighing | {"media_type", "size"}),
    ]
    assert removed.keys() == weighed.keys()
    for key, doc in removed.items():
        assert doc == {**weighed[key], "media_type": doc["media_type"], "size": doc["size"]}
        assert doc["media_type"] and doc["size"] > 0
        assert doc["pushed_at"] == doc["touched_at"]


async def test_a_manifest_written_before_every_push_touched_it_is_weighed_by_its_creation(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """Retention weighs a manifest by when it was pushed, ``touched_at``. One written without
    it was pushed when created (``created_at``, in the same read); one with neither (or not a
    time) has no push time. ``touched_at`` itself is handed on as stored: a removal checks it
    did not move."""
    store, recorder = metadata
    long_ago = dt.datetime(2020, 5, 17, 8, 30, tzinfo=dt.UTC)
    kept = dt.datetime(2021, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ids = [doc["_id"] async for doc in store.db.manifests.find({}, {"_id": 1}).sort("_id", 1)]
    created_only, nothing, not_a_time, touched = ids[:4]
    await store.db.manifests.update_one(
        {"_id": created_only}, {"$set": {"created_at": long_ago}, "$unset": {"touched_at": ""}}
    )
    await store.db.manifests.update_one(
        {"_id": nothing}, {"$unset": {"touched_at": "", "created_at": ""}}
    )
    await store.db.manifests.update_one(
        {"_id": not_a_time}, {"$set": {"touched_at": None, "created_at": "2020-05-17"}}
    )
    await store.db.manifests.update_one({"_id": touched}, {"$set": {"touched_at": kept}})

    async def weigh() -> dict[str, Any]:
        weighed = await store.retention.space_manifests("spaces-1", with_event_fields=False)
        return {
            f"{r}@{d}": (doc["pushed_at"], doc.get("touched_at")) for (r, d), doc in weighed.items()
        }

    recorder.queries.clear()
    found = await weigh()
    assert found[created_only] == (long_ago, None) and found[touched] == (kept, kept)
    assert found[nothing] == (None, None) and found[not_a_time] == (None, None)
    assert [query[0] for query in recorder.queries] == ["manifests"]  # one read


async def test_retention_removals_read_and_write_by_index(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """A batch of tags: one read by _id, one delete by _id, the repository's stamp. A batch
    of manifests: themselves by _id, the tags, referrers and indexes naming them through
    their indexes, one delete by _id."""
    store, recorder = metadata
    tags = {doc["tag"]: doc for doc in await store.retention.space_tags("spaces-1")}
    seen = await store.retention.space_manifests("spaces-1", with_event_fields=True)
    manifests = {d: doc for (_r, d), doc in seen.items()}
    going = [tags["latest"], tags["2.0"]]

    async def tags_then_manifests() -> None:
        async def remove(session: AsyncClientSession) -> None:
            batch = [(t["repository"], t["tag"], t["digest"], t["updated_at"]) for t in going]
            assert await store.retention.remove_tags_if_unchanged(batch, session) == {
                (REPOSITORY, "latest"),
                (REPOSITORY, "2.0"),
            }
            unneeded = [
                (REPOSITORY, t["digest"], manifests[t["digest"]]["touched_at"]) for t in going
            ]
            removed = await store.retention.remove_manifests_if_unneeded(unneeded, session)
            assert removed == {(REPOSITORY, t["digest"]) for t in going}

        await store.transaction(remove)

    assert await plans(store, recorder, tags_then_manifests) == [
        ("tags", "_id_"),
        ("tags", "_id_"),
        ("repositories", "_id_"),
        ("manifests", "_id_"),
        ("tags", "repository_1_digest_1"),
        ("manifests", "repository_1_subject_1"),
        ("manifests", "manifests_1"),
        ("manifests", "_id_"),
    ]


async def test_garbage_collection_reads_and_writes(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """A collection pass over the seeded blobs (linked, kept) and one an upload abandoned."""
    store, recorder = metadata
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    digests = [LAYER["digest"], CONFIG["digest"]]
    abandoned = "sha256:" + "a" * 64
    await store.blobs.reserve(abandoned, 3, "failed-upload")
    await store.blobs.release(abandoned, "failed-upload")

    async def collection() -> None:
        assert set((await store.blobs.stale_links("spaces-1", later))[REPOSITORY]) == set(digests)
        assert await store.blobs.expire_links(REPOSITORY, digests, later) == []
        assert [batch async for batch in store.blobs.unlinked(10)] == [[abandoned]]
        assert [batch async for batch in store.blobs.unlinked(10, among=digests)] == []
        claim = await store.blobs.claim([*digests, abandoned], "collector", dt.timedelta(hours=1))
        assert claim.sizes == {abandoned: 3}
        assert await store.blobs.forget(claim, [abandoned]) == 1

    used = await plans(store, recorder, collection)
    assert used == [
        ("blob_links", "repository_1"),
        ("manifests", "repository_1_blobs_1"),
        ("blob_links", "_id_"),
        ("blobs", "links_1__id_1"),
        ("blobs", "_id_"),
        ("blob_links", "digest_1"),
        ("manifests", "blobs_1"),
        ("blobs", "_id_"),  # the claim reads the blobs nothing refers to
        ("blobs", "_id_"),  # and claims them
        ("blobs", "_id_"),  # forgetting reads them again, in its transaction
        ("blobs", "_id_"),  # and deletes those still claimed
    ]


async def test_blob_writes_guarded_by_a_second_field(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """A reservation, and a collector forgetting or releasing what it claimed, find their
    blobs through an index, not by reading every blob."""
    store, recorder = metadata
    digests = [LAYER["digest"], CONFIG["digest"]]

    claim = Claim("collector", dt.datetime.now(dt.UTC).replace(microsecond=0), {})

    async def writes() -> None:
        assert await store.blobs.reserve(LAYER["digest"], 5, "another-writer")
        await store.blobs.unclaim(claim, digests)
        assert await store.blobs.forget(claim, digests) == 0

    used = await plans(store, recorder, writes)
    # Forgetting reads the two blobs by _id and, the claim holding neither, deletes nothing.
    assert used == [("blobs", "_id_1_deleting_until_1")] * 3 + [("blobs", "_id_")]


async def test_tags_of_a_manifest_and_referrers(metadata: tuple[MetadataStore, Recorder]) -> None:
    store, recorder = metadata
    digest = await store.images.get_tag(REPOSITORY, "latest")
    assert digest is not None

    async def reads() -> None:
        await store.images.referrers(REPOSITORY, digest, None)
        await store.transaction(
            lambda session: store.images.delete_manifest(REPOSITORY, digest, session=session)
        )

    used = await plans(store, recorder, reads)
    assert used == [
        ("manifests", "repository_1_subject_1"),
        ("tags", "repository_1_digest_1"),
        ("tags", "repository_1_digest_1"),
        ("repositories", "_id_"),  # its tags' stamp moves
        ("manifests", "_id_"),
    ]


LEASE = dt.timedelta(minutes=5)


async def test_build_moves_read_and_write_their_build_by_id(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """Each move of a build reads the build by _id, checks its conditions, and writes it by
    _id (a move refused writes nothing): never a read of every build ever run."""
    store, recorder = metadata
    for n in range(30):
        await store.builds.create(new_build("spaces-1", f"earlier-{n}", None))
    await store.builds.create(new_build("spaces-1", "b-7", None))
    built = Built("registry.test/spaces-1/app:7", "sha256:" + "7" * 64, "assembled")
    outcome = succeeded("spaces-1", "b-7", built, duration_ms=40)

    async def moves() -> None:
        assert await store.builds.attach_reply("spaces-1", "b-7", "corr-7", "replies") is not None
        assert await store.builds.attach_reply("spaces-1", "b-7", "corr-8", "other") is None
        assert await store.builds.claim("spaces-1", "b-7", "builder-a", LEASE) is not None
        assert await store.builds.claim("spaces-1", "b-7", "builder-b", LEASE) is None
        assert await store.builds.renew("spaces-1", "b-7", "builder-a", LEASE) is not None
        assert await store.builds.renew("spaces-1", "b-7", "builder-b", LEASE) is None
        assert await store.builds.request_cancel("spaces-1", "b-7") is not None
        assert await store.builds.finish("spaces-1", "b-7", "builder-a", outcome, [])
        assert not await store.builds.finish("spaces-1", "b-7", "builder-a", outcome, [])
        assert await store.builds.request_cancel("spaces-1", "b-7") is None

    # Two queries for a move made (the read, then the write), one for a move refused.
    assert await plans(store, recorder, moves) == [("builds", "_id_")] * (5 * 2 + 5)


async def test_upload_locking_reads_and_writes_the_upload_by_id(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """A write's claim, renewal and release, and the reaper's claim of an abandoned upload
    and its deletion, find the upload by _id; the abandoned ones are found by updated_at."""
    store, recorder = metadata
    for n in range(30):
        await store.uploads.create(f"other-{n}", REPOSITORY, {"parts": []})
    await store.uploads.create("upload-1", REPOSITORY, {"parts": []})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)

    async def writes() -> None:
        assert await store.uploads.claim("upload-1", "write-1", LEASE) is not None
        assert await store.uploads.claim("upload-1", "write-2", LEASE) is None
        await store.uploads.renew("upload-1", "write-1", LEASE)
        assert await store.uploads.release("upload-1", "write-1", offset=5)
        assert not await store.uploads.release("upload-1", "write-1")
        assert await store.uploads.claim_abandoned(later, "reaper", LEASE) is not None
        assert not await store.uploads.delete_claimed("upload-1", "write-1")

    used = await plans(store, recorder, writes)
    assert used == [
        *[("uploads", "_id_")] * (2 + 1 + 2 + 2 + 1),
        ("uploads", "updated_at_1"),  # the candidates: untouched since the cutoff
        *[("uploads", "_id_")] * (2 + 1),
    ]


async def test_reaper_runs_are_claimed_and_finished_by_id(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    store, recorder = metadata
    every, debounce = dt.timedelta(hours=1), dt.timedelta(minutes=1)
    for n in range(30):
        await store.runs.mark_due(f"spaces-{n + 10}")

    async def runs() -> None:
        started = await store.runs.claim("spaces-1", "reaper-a", every, debounce, LEASE)
        assert started is not None
        assert await store.runs.claim("spaces-1", "reaper-b", every, debounce, LEASE) is None
        await store.runs.mark_due("spaces-1")
        await store.runs.finish("spaces-1", "reaper-b", started)  # not its run: nothing
        await store.runs.finish("spaces-1", "reaper-a", started)

    # A claim first makes sure the space has a document (an upsert by _id).
    assert await plans(store, recorder, runs) == [("reaper_runs", "_id_")] * (3 + 2 + 1 + 1 + 2)


async def test_a_space_builds_are_listed_through_their_index(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """Each window of a listing page is a range of the space's index, with the status between
    when the listing is filtered: never a read of every build."""
    store, recorder = metadata
    await store.spaces.ensure("spaces-2", "Elsewhere")
    for n in range(12):
        await store.builds.create(new_build("spaces-1", f"listed-{n:02d}", None))
        await store.builds.create(new_build("spaces-2", f"elsewhere-{n:02d}", None))
    await store.db.builds.update_one({"_id": "spaces-1/listed-03"}, {"$set": {"status": "failed"}})

    async def listings() -> None:
        first = await store.builds.newest("spaces-1", status=None, before=None, limit=5)
        assert [b.build_id for b in first] == [f"listed-{n:02d}" for n in range(11, 6, -1)]
        rest = await store.builds.newest(
            "spaces-1", status=None, before=first[-1].listing_key, limit=50
        )
        assert [b.build_id for b in rest] == [f"listed-{n:02d}" for n in range(6, -1, -1)]
        failed = await store.builds.newest(
            "spaces-1", status=BuildStatus.FAILED, before=None, limit=50
        )
        assert [b.build_id for b in failed] == ["listed-03"]

    used = await plans(store, recorder, listings)
    assert set(used) == {
        ("builds", "space_1_listing_key_1"),
        ("builds", "space_1_status_1_listing_key_1"),
    }


async def test_the_outbox_relay_reads_and_writes_by_index(
    metadata: tuple[MetadataStore, Recorder],
) -> None:
    """Every step of a relay's round (claim, renew, release, delete, the oldest entry's age)
    on an index: the outbox is read once per pushed batch, and grows while a broker is away."""
    store, recorder = metadata
    outbox = store.outbox
    lease = dt.timedelta(minutes=1)
    while seeded := await outbox.claim("seed", lease, 100):  # the seed's events, published
        await outbox.done("seed", [entry.id for entry in seeded])
    for n in range(3):
        await outbox.add([CloudEvent("image.pushed", "test", f"subject-{n}", {"n": n})])

    async def claim() -> None:
        claimed = await outbox.claim("relay", lease, 2)
        assert len(claimed) == 2
        ids = [entry.id for entry in claimed]
        await outbox.renew("relay", ids, lease)
        await outbox.release("relay", ids[1:])
        await outbox.done("relay", ids[:1])
        assert await outbox.oldest() is not None

    assert await plans(store, recorder, claim) == [
        ("outbox", "claimed_until_1"),  # lapsed leases and entries never claimed
        ("outbox", "claimed_by_1__id_1"),  # the relay's own, at its first claim (a restart)
        ("outbox", "_id_"),  # claimed
        ("outbox", "claimed_by_1__id_1"),  # renewed
        ("outbox", "claimed_by_1__id_1"),  # released
        ("outbox", "claimed_by_1__id_1"),  # deleted once published
        ("outbox", "created_at_1"),  # the oldest, for the outbox's age metric
    ]
    recorder.queries.clear()
    await outbox.claim("relay", lease, 2)
    assert [query[0] for query in recorder.queries] == ["outbox", "outbox"]  # no resume again
