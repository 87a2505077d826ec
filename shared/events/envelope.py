"""CloudEvents 1.0 (JSON format) as Spacedock sends them (PRODUCT.md §7).

``type`` is ``io.spacedock.<kind>``; the AMQP routing key is ``<kind>``. The build events
are made by ``shared.builds.lifecycle``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

TYPE_PREFIX = "io.spacedock."
CONTENT_TYPE = "application/cloudevents+json"
EVENTS_EXCHANGE = "spacedock.events"
COMMANDS_EXCHANGE = "spacedock.commands"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class CloudEvent:
    kind: str  # e.g. "image.pushed": the type without its prefix, and the routing key
    source: str
    subject: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: dt.datetime = field(default_factory=_now)
    correlation_id: str | None = None  # copied onto the AMQP message
    reply_to: str | None = None  # a queue that also gets the event (build results)

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.kind

    def document(self) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": rfc3339(self.time),
            "datacontenttype": "application/json",
            "data": self.data,
        }

    def body(self) -> bytes:
        return json.dumps(self.document(), separators=(",", ":")).encode()


def image_reference(public_host: str, repository: str, tag: str | None, digest: str) -> str:
    """``<host>/<repository>:<tag>@<digest>``, or without ``:<tag>`` for a digest alone."""
    tagged = f"{public_host}/{repository}" + (f":{tag}" if tag is not None else "")
    return f"{tagged}@{digest}"


def image_event(
    kind: str,
    *,
    source: str,
    public_host: str,
    repository: str,
    tag: str | None,
    digest: str,
    media_type: str | None,
    size: int | None,
    actor: str | None,
    moment: dt.datetime | None = None,
) -> CloudEvent:
    """``image.pushed`` or ``image.deleted`` for one tag (or, with ``tag`` None, a digest)."""
    moment = moment or _now()
    verb = kind.rsplit(".", 1)[1]  # pushed | deleted
    reference = image_reference(public_host, repository, tag, digest)
    data: dict[str, Any] = {
        "space": repository.split("/", 1)[0],
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "media_type": media_type,
        "size": size,
        "reference": reference,
        f"{verb}_by": actor,
        f"{verb}_at": rfc3339(moment),
    }
    return CloudEvent(kind, source, reference, data, time=moment)
