"""The ``spacedock`` command: ``serve`` (all three services in one process), or one service;
the admin verbs, and ``sdi preview`` for SDI authors.

This is the one place that knows every service: each runs on its own in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Awaitable, Callable

import structlog

from services.builder.main import run_builder
from services.reaper.main import run_reaper
from services.registry.bootstrap import AdminCredentials
from services.registry.identity import api_keys
from services.registry.main import run_registry
from shared.events.bus import EventBus, InProcessBus
from shared.logging import configure_logging
from shared.metadata.embedded import EmbeddedMongo, EmbeddedMongoError
from shared.sealing import KEY_FILE, SealingKeyInvalid, stored_key
from shared.settings import Settings, SettingsError
from spacedock import admin, sdi_preview

log = structlog.get_logger("spacedock")

Service = Callable[[Settings, asyncio.Event], Awaitable[None]]
SERVICES = ("serve", "registry", "builder", "reaper")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spacedock", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run registry, builder and reaper in one process")
    commands.add_parser("registry", help="run the registry (OCI and management API)")
    commands.add_parser("builder", help="run the builder")
    commands.add_parser("reaper", help="run the reaper")
    admin.add_verbs(commands)
    sdi_preview.add_verbs(commands)
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"spacedock: {exc}", file=sys.stderr)
        return 2
    if args.command == "sdi":
        return sdi_preview.run(args, settings)
    if args.command not in SERVICES:
        return admin.run(args, settings)
    configure_logging(settings.log_format)
    try:
        return asyncio.run(_run(args.command, settings))
    except EmbeddedMongoError as exc:
        print(f"spacedock: {exc}", file=sys.stderr)
        return 1
    except (OSError, SealingKeyInvalid) as exc:
        print(f"spacedock: {exc}", file=sys.stderr)
        return 1


async def _run(command: str, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    if command == "serve" and settings.sealing_key is None:
        # Registry and builder seal and open build commands with one key; a sealed command
        # may outlive a run (in the outbox), so the key is made once and kept in the data dir.
        key = stored_key(settings.data_dir / KEY_FILE)
        settings = dataclasses.replace(settings, sealing_key=key)
    embedded: EmbeddedMongo | None = None
    if settings.mongo_url is None:
        embedded = EmbeddedMongo(settings.data_dir / "metadata")
        settings = dataclasses.replace(settings, mongo_url=await embedded.start())
    bus: EventBus | None = None
    if command == "serve":
        # One process: the services share an in-process bus (without RabbitMQ) and the
        # builder signs in with a key made for this run.
        bus = InProcessBus() if settings.amqp_url is None else None
        if settings.builder_key is None:
            settings = dataclasses.replace(settings, builder_key=api_keys.new_key().text)
    try:
        services: list[Awaitable[None]] = []
        if command in ("serve", "registry"):
            show = _print_welcome if command == "serve" else None
            services.append(run_registry(settings, stop, on_ready=_banner(settings, show), bus=bus))
        if command in ("serve", "builder"):
            services.append(run_builder(settings, stop, bus=bus))
        if command in ("serve", "reaper"):
            services.append(run_reaper(settings, stop, bus=bus))
        tasks = [asyncio.ensure_future(service) for service in services]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return 0
    finally:
        if embedded is not None:
            await embedded.stop()


def _banner(
    settings: Settings, show: Callable[[Settings, AdminCredentials | None], None] | None
) -> Callable[[AdminCredentials | None], None] | None:
    if show is None:
        return None
    return lambda credentials: show(settings, credentials)


def _print_welcome(settings: Settings, credentials: AdminCredentials | None) -> None:
    """Shown on the terminal (never logged): how to log in."""
    host = settings.public_host
    lines = [
        "",
        f"Spacedock is running at {settings.public_url}",
    ]
    if credentials is None or credentials.source != "generated":
        # Only a password made just now is shown: one the operator set, or one shown at the
        # first start, is not printed again.
        if credentials is None:
            where = "set before (changed since it was generated, or SPACEDOCK_ADMIN_PASSWORD)"
        elif credentials.source == "environment":
            where = "from SPACEDOCK_ADMIN_PASSWORD"
        else:
            where = f"in {credentials.source}"
        lines.append(f"admin password: {where}")
        lines.append(f"  docker login {host} -u admin")
    else:
        lines.append(f"admin user: {credentials.username}")
        lines.append(f"admin password: {credentials.password}")
        lines.append(
            f"  echo '{credentials.password}' | docker login {host} -u admin --password-stdin"
        )
    lines.append(f"  docker push {host}/spaces-1/<image>:<tag>")
    lines.append("")
    with contextlib.suppress(OSError):
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
