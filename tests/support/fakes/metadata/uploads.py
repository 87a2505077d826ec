"""``UploadRepository`` in memory."""

from __future__ import annotations

import copy
import datetime as dt

from pymongo.errors import DuplicateKeyError

from shared.metadata.connection import Document
from shared.metadata.uploads import Upload
from tests.support.fakes.metadata.documents import Clock, Collections


def _free(doc: Document, now: dt.datetime) -> bool:
    """No write holds the upload: no lock, or one whose lease lapsed."""
    return doc["lock"] is None or doc["lock"]["until"] < now


def _held_by(doc: Document | None, token: str) -> bool:
    return doc is not None and doc["lock"] is not None and doc["lock"]["token"] == token


class InMemoryUploads:
    """``UploadRepository``: a write claims an upload that no live lease holds; only the
    holder of the lock releases (with the offset reached) or renews it."""

    def __init__(self, data: Collections, now: Clock) -> None:
        self._data = data
        self._now = now

    def _upload(self, doc: Document) -> Upload:
        return Upload.from_document(copy.deepcopy(doc))

    async def create(self, upload_id: str, repository: str, storage: Document) -> None:
        if upload_id in self._data.uploads:
            raise DuplicateKeyError(upload_id)  # as the real insert does
        now = self._now()
        self._data.uploads[upload_id] = {
            "_id": upload_id,
            "repository": repository,
            "offset": 0,
            "storage": copy.deepcopy(storage),
            "lock": None,
            "created_at": now,
            "updated_at": now,
        }

    async def get(self, upload_id: str) -> Upload | None:
        doc = self._data.uploads.get(upload_id)
        return None if doc is None else self._upload(doc)

    async def claim(self, upload_id: str, token: str, lease: dt.timedelta) -> Upload | None:
        now = self._now()
        doc = self._data.uploads.get(upload_id)
        if doc is None or not _free(doc, now):
            return None
        doc["lock"] = {"token": token, "until": now + lease}
        doc["updated_at"] = now
        return self._upload(doc)

    async def release(
        self, upload_id: str, token: str, offset: int | None = None, storage: Document | None = None
    ) -> bool:
        doc = self._data.uploads.get(upload_id)
        if not _held_by(doc, token):
            return False
        assert doc is not None
        doc["lock"], doc["updated_at"] = None, self._now()
        if offset is not None:
            doc["offset"] = offset
        if storage is not None:
            doc["storage"] = copy.deepcopy(storage)
        return True

    async def renew(self, upload_id: str, token: str, lease: dt.timedelta) -> None:
        doc = self._data.uploads.get(upload_id)
        if _held_by(doc, token):
            assert doc is not None
            doc["lock"]["until"] = self._now() + lease

    async def delete(self, upload_id: str) -> None:
        self._data.uploads.pop(upload_id, None)

    async def claim_abandoned(
        self, cutoff: dt.datetime, token: str, lease: dt.timedelta
    ) -> Upload | None:
        now = self._now()
        for doc in self._data.uploads.values():
            if doc["updated_at"] < cutoff and _free(doc, now):
                doc["lock"] = {"token": token, "until": now + lease}
                return self._upload(doc)
        return None

    async def delete_claimed(self, upload_id: str, token: str) -> bool:
        if not _held_by(self._data.uploads.get(upload_id), token):
            return False
        del self._data.uploads[upload_id]
        return True
