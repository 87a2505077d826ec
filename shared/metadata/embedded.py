"""The embedded MongoDB-wire server (SecantusDB) that ``make run`` uses when no
``SPACEDOCK_MONGO_URL`` is given: a child process storing its data under the data dir."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from pathlib import Path

import structlog

log = structlog.get_logger("spacedock.embedded_mongo")


class EmbeddedMongoError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command() -> str:
    beside_python = Path(sys.executable).with_name("secantusd-py")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("secantusd-py")
    if found is None:
        raise EmbeddedMongoError("secantusd-py not found: install the SecantusDB package")
    return found


class EmbeddedMongo:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    async def start(self, wait_seconds: float = 30.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        log_file = (self.data_dir / "server.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            _server_command(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir / "data"),
            "--log-level",
            "WARNING",
            stdout=log_file,
            stderr=log_file,
        )
        log_file.close()
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while asyncio.get_running_loop().time() < deadline:
            if self.process.returncode is not None:
                raise EmbeddedMongoError(
                    f"embedded MongoDB server exited ({self.process.returncode}); "
                    f"see {self.data_dir / 'server.log'}"
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                log.info("embedded_mongo_started", port=self.port, path=str(self.data_dir))
                return self.url
            await asyncio.sleep(0.1)
        await self.stop()
        raise EmbeddedMongoError(f"embedded MongoDB server did not start within {wait_seconds}s")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
