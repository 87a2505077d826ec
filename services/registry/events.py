"""The registry's events, ``image.pushed`` and ``image.deleted``: built here, written to the
outbox in the same transaction as the change, and published by the relay."""

from __future__ import annotations

from collections.abc import Callable

from shared.events.envelope import CloudEvent, image_event
from shared.oci.names import RepositoryName


class ImageEvents:
    def __init__(self, public_url: str, public_host: str, notify: Callable[[], None]) -> None:
        self.source = f"{public_url}/v2"
        self.public_host = public_host
        self.notify = notify  # after a commit: wakes the relay

    def image(
        self,
        kind: str,
        name: RepositoryName,
        tag: str | None,
        digest: str,
        media_type: str | None,
        size: int | None,
        actor: str | None,
    ) -> CloudEvent:
        """``image.pushed`` or ``image.deleted`` about ``name`` (a tag, or with ``tag``
        None the manifest itself)."""
        return image_event(
            kind,
            source=self.source,
            public_host=self.public_host,
            repository=name.full,
            tag=tag,
            digest=digest,
            media_type=media_type,
            size=size,
            actor=actor,
        )
