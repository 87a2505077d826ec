"""Running the services: ``serve`` (registry, builder and reaper in one process, as ``make
run`` does) or one of them (``registry``, ``builder``, ``reaper``).

This is the one place that knows every service: each runs on its own in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Callable
from functools import partial

from services.builder.main import run_builder
from services.reaper.main import run_reaper
from services.registry.bootstrap import AdminCredentials
from services.registry.identity import api_keys
from services.registry.main import run_registry
from shared.events.bus import InProcessBus
from shared.logging import configure_logging
from shared.metadata.embedded import EmbeddedMongoError
from shared.metrics import ProcessMetrics
from shared.runtime import Service, metadata_url, run_until_stopped, stop_on_signals
from shared.sealing import KEY_FILE, SealingKeyInvalid, stored_key
from shared.settings import Settings


def run(command: str, settings: Settings) -> int:
    """Run ``command`` (serve, registry, builder or reaper) until a signal stops it; its
    exit status."""
    configure_logging(settings.log_format)
    try:
        return asyncio.run(_run(command, settings))
    except EmbeddedMongoError as exc:
        print(f"spacedock: {exc}", file=sys.stderr)
        return 1
    except (OSError, SealingKeyInvalid) as exc:
        print(f"spacedock: {exc}", file=sys.stderr)
        return 1


async def _run(command: str, settings: Settings) -> int:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        return await _serve(command, settings, stop)


async def _serve(command: str, settings: Settings, stop: asyncio.Event) -> int:
    if command == "serve":
        settings = _one_process(settings)
    async with metadata_url(settings) as settings:
        # One process without RabbitMQ: its services share an in-process bus.
        bus = InProcessBus() if command == "serve" and settings.amqp_url is None else None
        # One process: its services record into one set of metrics, on the registry's
        # /metrics; a builder or reaper alone serves its own on SPACEDOCK_METRICS_LISTEN.
        metrics = ProcessMetrics() if command == "serve" else None
        services: list[Service] = []
        if command in ("serve", "registry"):
            show = _print_welcome if command == "serve" else None
            on_ready = _banner(settings, show)
            services.append(
                partial(run_registry, settings, on_ready=on_ready, bus=bus, metrics=metrics)
            )
        if command in ("serve", "builder"):
            services.append(partial(run_builder, settings, bus=bus, metrics=metrics))
        if command in ("serve", "reaper"):
            services.append(partial(run_reaper, settings, bus=bus, metrics=metrics))
        try:
            await run_until_stopped(services, stop)
        finally:
            if bus is not None:
                await bus.close()
    return 0


def _one_process(settings: Settings) -> Settings:
    """Registry and builder in one process seal and open build commands with one key, and
    the builder signs in with a key made for this run. A sealed command may outlive a run
    (in the outbox), so the sealing key is made once and kept in the data dir."""
    if settings.sealing_key is None:
        key = stored_key(settings.data_dir / KEY_FILE)
        settings = dataclasses.replace(settings, sealing_key=key)
    if settings.builder_key is None:
        settings = dataclasses.replace(settings, builder_key=api_keys.new_key().text)
    return settings


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
