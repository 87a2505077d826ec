"""What build tests need: a base image pushed to the registry, SDI and application packages
uploaded to the feed, and build requests sent over RabbitMQ with replies read back."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile
import time
import uuid
import zipfile
from collections.abc import Mapping
from typing import Any

import aio_pika
import requests

from tests.support.amqp import AMQP_URL
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Client, canonical, digest_of
from tests.support.processes import Registry


def zip_of(files: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content.encode() if isinstance(content, str) else content)
    return buffer.getvalue()


def layer_of(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A gzip'd tar layer holding ``files``, and its uncompressed tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0), raw.getvalue()


def push_base_image(client: Client, repository: str, tag: str) -> str:
    """A small OCI image (one layer with /etc/base-release); its manifest digest."""
    layer, tar = layer_of({"etc/base-release": b"spacedock test base\n"})
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]},
            "history": [{"created_by": "test base"}],
        }
    )
    client.push_blob(repository, config)
    client.push_blob(repository, layer)
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}],
        }
    )
    response = client.put_manifest(repository, tag, manifest)
    assert response.status_code == 201, response.text
    return digest_of(manifest)


def upload_package(registry: Registry, space: str, filename: str, content: bytes) -> None:
    response = requests.post(
        f"{registry.url}/api/v1/spaces/{space}/packages",
        files={"file": (filename, content)},
        auth=registry.auth,
        timeout=60,
    )
    assert response.status_code == 201, response.text


class Requester:
    """Sends build requests to ``spacedock.commands`` and reads replies from its own queue."""

    def __init__(self, url: str = AMQP_URL) -> None:
        self.url = url
        self.reply_queue = f"test-replies-{uuid.uuid4().hex[:8]}"
        asyncio.run(self._declare())

    async def _declare(self) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_exchange(
                "spacedock.commands", aio_pika.ExchangeType.DIRECT, durable=True
            )
            await channel.declare_queue(self.reply_queue, durable=True)

    def send(
        self, data: Any, correlation_id: str | None = None, *, raw: bytes | None = None
    ) -> None:
        async def publish() -> None:
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                exchange = await channel.get_exchange("spacedock.commands")
                body = (
                    raw
                    if raw is not None
                    else json.dumps(
                        {
                            "specversion": "1.0",
                            "id": str(uuid.uuid4()),
                            "source": "tests",
                            "type": "io.spacedock.build.request",
                            "data": data,
                        }
                    ).encode()
                )
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/cloudevents+json",
                        correlation_id=correlation_id,
                        reply_to=self.reply_queue,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="build.request",
                )

        asyncio.run(publish())

    def replies(self, count: int, timeout: float = 120) -> list[tuple[dict[str, Any], str | None]]:
        """``count`` replies (event, correlation id), in arrival order."""

        async def read() -> list[tuple[dict[str, Any], str | None]]:
            got: list[tuple[dict[str, Any], str | None]] = []
            deadline = time.monotonic() + timeout
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(self.reply_queue)
                while len(got) < count and time.monotonic() < deadline:
                    message = await queue.get(no_ack=True, fail=False, timeout=5)
                    if message is None:
                        await asyncio.sleep(0.2)
                        continue
                    got.append((json.loads(message.body), message.correlation_id))
            return got

        return asyncio.run(read())
