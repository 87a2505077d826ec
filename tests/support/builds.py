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
import yaml

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


def push_base_image(
    client: Client,
    repository: str,
    tag: str,
    files: dict[str, bytes] | None = None,
    on_build: list[str] | None = None,
) -> str:
    """A small OCI image (one layer with ``files``, /etc/base-release by default, and
    ``on_build`` triggers in its config); its manifest digest."""
    layer, tar = layer_of(files or {"etc/base-release": b"spacedock test base\n"})
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/bin:/bin"],
                "Cmd": ["sh"],
                **({"OnBuild": on_build} if on_build else {}),
            },
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


def push_zip_package(
    client: Client, space: str, package_id: str, version: str, content: bytes
) -> None:
    """A zip package pushed as an OCI artifact, as oras would push it: the upload endpoint's
    judgement of an SDI is skipped, so what reaches a build is the builder's to refuse."""
    repository = f"{space}/packages/{package_id}"
    empty = b"{}"
    client.push_blob(repository, empty)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.spacedock.package.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": digest_of(empty), "size": len(empty)},
        "layers": [{"mediaType": "application/zip", "digest": client.push_blob(repository, content),
                    "size": len(content),
                    "annotations": {"org.opencontainers.image.title":
                                    f"{package_id}.{version}.zip"}}],
    }  # fmt: skip
    response = client.put_manifest(repository, version, canonical(manifest))
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


# --- the deployment used by the build tests --------------------------------------------------

SECRET = "Server=db;Password=s3cret-#42"
XDT = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'

APP_FILES = {
    "appsettings.json": json.dumps(
        {"Logging": {"LogLevel": {"Default": "Information"}}, "ConnectionStrings": {"Db": "x"}}
    ),
    "config.yaml": "app:\n  name: placeholder   # comment kept\n  replicas: 1\n",
    "app.properties": "db.url=jdbc:none\n",
    "run.sh": "#!/bin/sh\nexec serve --env #{Octopus.Environment.Name}\n",
    "Web.config": (
        '<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n'
        '  <appSettings><add key="Environment" value="Dev" /><add key="AppName" value="?" />'
        '</appSettings>\n  <connectionStrings><add name="Db" connectionString="local" />'
        "</connectionStrings>\n</configuration>\n"
    ),
    "Web.Release.config": (
        f'<configuration {XDT}><appSettings><add key="Release" value="yes" '
        'xdt:Transform="Insert" /></appSettings></configuration>'
    ),
    "Web.Production.config": (
        f'<configuration {XDT}><appSettings><add key="Environment" value="Production" '
        'xdt:Transform="SetAttributes" xdt:Locator="Match(key)" /></appSettings></configuration>'
    ),
}


def sdi_files(base: str, app_id: str) -> dict[str, str]:
    """An SDI on ``base`` that extracts ``app_id`` into /app and uses every feature."""
    return {
        "Dockerfile": (
            f"FROM {base}\n"
            "WORKDIR /app\n"
            "COPY app/ ./\n"
            "COPY entrypoint.sh /entrypoint.sh\n"
            "ENV APP_ENV=#{Octopus.Environment.Name}\n"
            'CMD ["/bin/sh", "/entrypoint.sh"]\n'
        ),
        "entrypoint.sh": (
            "#!/bin/sh\necho #{AppName} #{Octopus.Deployment.Id} #{Octopus.Environment.Name}\n"
        ),
        "sdi.yaml": yaml.safe_dump(
            {
                "packages": [{"id": app_id, "version": "1.2.0", "extract_to": "app"}],
                "features": {
                    "substitute_in_files": ["entrypoint.sh", "Dockerfile", "app/run.sh"],
                    "dotnet_config_transforms": True,
                    "dotnet_config_variables": True,
                    "structured_variables": [
                        "app/appsettings.json", "app/config.yaml", "app/app.properties"
                    ],
                },
            }
        ),
    }  # fmt: skip


def request_for(
    sdi: dict[str, str], environment: str, deployment: str, **extra: Any
) -> dict[str, Any]:
    return {
        "build_id": f"{deployment}-{uuid.uuid4().hex[:6]}",
        "space": "spaces-1",
        "sdi": {"id": sdi["sdi"], "version": "1.2.0"},
        "image": {"repository": f"mywebapp-{sdi['sdi'][-6:]}", "tag": f"1.2.0-{deployment}"},
        "deployment": {"id": deployment, "environment": environment, "project": "mywebapp",
                       "release": "1.2.0", "tenant": None},
        "variables": {"Logging:LogLevel:Default": "Warning", "AppName": "web",
                      "app:name": "web-#{Octopus.Environment.Name}", "app:replicas": "3"},
        "sensitive_variables": {"ConnectionStrings:Db": SECRET, "Db": SECRET,
                                "db.url": "jdbc:postgresql://db/#{AppName}"},
        "packages": {sdi["app"]: "1.2.1"},
        **extra,
    }  # fmt: skip


IMAGE_FILES = (
    "/app/appsettings.json", "/app/config.yaml", "/app/app.properties", "/app/run.sh",
    "/app/Web.config", "/entrypoint.sh",
)  # fmt: skip


def check_files(files: Mapping[str, bytes], environment: str, deployment: str) -> None:
    """Every configured file of an image built from ``sdi_files`` for ``environment``."""
    settings = json.loads(files["/app/appsettings.json"])
    assert settings["Logging"]["LogLevel"]["Default"] == "Warning"
    assert settings["ConnectionStrings"]["Db"] == SECRET
    # the server writes an inline comment one space after the value it follows
    assert f"name: web-{environment} # comment kept" in files["/app/config.yaml"].decode()
    assert "replicas: 3" in files["/app/config.yaml"].decode()
    assert files["/app/app.properties"] == b"db.url=jdbc:postgresql://db/web\n"
    assert files["/app/run.sh"].decode().endswith(f"--env {environment}\n")
    assert files["/entrypoint.sh"] == f"#!/bin/sh\necho web {deployment} {environment}\n".encode()
    web = files["/app/Web.config"].decode()
    expected = "Production" if environment == "Production" else "Dev"
    assert f'key="Environment" value="{expected}"' in web
    assert 'key="Release" value="yes"' in web and 'key="AppName" value="web"' in web
    assert f'connectionString="{SECRET}"' in web


def zip_with_links(files: Mapping[str, str | bytes], links: Mapping[str, str]) -> bytes:
    """A zip whose ``links`` entries (name -> target) are symbolic links, written after the
    files and in the order given (the order is what some attacks depend on)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content.encode() if isinstance(content, str) else content)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix, so that the mode below is read
            info.external_attr = (0o120777 << 16) & 0xFFFF0000
            archive.writestr(info, target)
    return buffer.getvalue()


def build_over_http(
    url: str, auth: tuple[str, str], space: str, request: Mapping[str, Any], timeout: float = 180
) -> dict[str, Any]:
    """Submit ``request`` to ``space`` through the management API and wait for its end."""
    builds = f"{url}/api/v1/spaces/{space}/builds"
    created = requests.post(builds, json=dict(request), auth=auth, timeout=30)
    assert created.status_code == 202, created.text
    location = f"{builds}/{created.json()['build_id']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(location, auth=auth, timeout=30).json()
        if status["status"] in ("succeeded", "failed", "cancelled"):
            logs = requests.get(f"{location}/logs", auth=auth, timeout=30).json()
            return {**status, "logs": logs["logs"]}
        time.sleep(0.3)
    raise AssertionError(f"build {created.json()['build_id']} in {space} did not finish")
