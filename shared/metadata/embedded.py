"""The embedded MongoDB-wire server (SecantusDB) that ``make run`` uses when no
``SPACEDOCK_MONGO_URL`` is given: a child process storing its data under the data dir.

It runs with ``--auth`` (SCRAM-SHA-256), so a process that can reach its loopback port
cannot read or write the metadata (users, signing keys) without the password. The password
is made once and kept in ``PASSWORD_FILE`` (mode 0600) in the server's directory (0700,
which also keeps the database files from other local users). SecantusDB has no localhost
exception: a server started with ``--auth`` and no user yet admits nobody, and one started
without it admits everybody. So before each start, while no server has the storage open, the
user is set to the stored password by SecantusDB's own ``createUser``/``updateUser``,
run in this process on the storage: never over an open port.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import quote_plus

import structlog

from shared.secret_files import stored_secret

log = structlog.get_logger("spacedock.embedded_mongo")

USERNAME = "spacedock"
PASSWORD_FILE = "password"


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


def stored_password(path: Path) -> str:
    """The password kept in ``path``, made there (readable by its owner only) on first use."""
    password = stored_secret(path, lambda: secrets.token_urlsafe(32))
    if not password:
        raise EmbeddedMongoError(f"{path} is empty: remove it and a new password is made")
    return password


def set_user(storage_path: Path, username: str, password: str) -> None:
    """Give ``username`` (role ``root``) ``password`` in the stopped server's storage,
    through SecantusDB's own user commands. Blocking: run it off the event loop."""
    # SecantusDB ships no type information; its command layer is what createUser runs.
    from secantus.commands import CommandContext, dispatch  # type: ignore[import-untyped]
    from secantus.cursors import CursorRegistry  # type: ignore[import-untyped]
    from secantus.storage import Storage  # type: ignore[import-untyped]

    storage = Storage(str(storage_path), ttl_sweep_seconds=0)
    try:
        context = CommandContext(
            connection_id=0, storage=storage, cursors=CursorRegistry(), db_name="admin"
        )
        user = {"pwd": password, "roles": ["root"]}
        reply = dispatch({"createUser": username, **user}, context)
        if reply.get("ok") != 1.0 and storage.get_user("admin", username) is not None:
            reply = dispatch({"updateUser": username, **user}, context)
        if reply.get("ok") != 1.0:
            raise EmbeddedMongoError(
                f"cannot set the embedded server's user: {reply.get('errmsg')}"
            )
    finally:
        storage.close()


class EmbeddedMongo:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self._password = ""

    def __repr__(self) -> str:
        return f"EmbeddedMongo({str(self.data_dir)!r}, port={self.port})"

    @property
    def password_file(self) -> Path:
        return self.data_dir / PASSWORD_FILE

    @property
    def url(self) -> str:
        """The URL with the password in it: for the services' clients, never for a log.

        ``retryWrites=false``: SecantusDB keeps a record of every retryable write for 30
        minutes and walks all of them (sorting 10,000 once past its cap) on each one, so with
        retryable writes the server slowed down as pushes went on. Without them a single
        write carries no transaction number and leaves no record. Transactions are unchanged
        (the driver still retries their commit and re-runs them on transient errors); what
        is lost is the driver's one automatic retry of a single write after a dropped
        connection, which on this loopback server with no failover means the request fails
        instead, as it would with the server gone.
        """
        credentials = f"{USERNAME}:{quote_plus(self._password)}"
        return (
            f"mongodb://{credentials}@127.0.0.1:{self.port}/spacedock"
            "?authSource=admin&retryWrites=false"
        )

    async def start(self, wait_seconds: float = 30.0) -> str:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # also when an earlier version made it readable by all
        self._password = stored_password(self.password_file)
        storage = self.data_dir / "data"
        try:
            await asyncio.to_thread(set_user, storage, USERNAME, self._password)
        except EmbeddedMongoError:
            raise
        except Exception as exc:  # WiredTiger's errors, e.g. the storage still open elsewhere
            raise EmbeddedMongoError(f"cannot open the embedded storage {storage}: {exc}") from exc
        self.port = _free_port()
        log_file = (self.data_dir / "server.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            _server_command(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(storage),
            "--auth",
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
