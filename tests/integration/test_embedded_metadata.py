"""The embedded metadata server ``spacedock serve`` starts is behind a password: a process that
reaches its loopback port without the password kept in the data dir reads and writes nothing
(not the users, not the token signing key), and the password is made once, kept 0600, and
used again after a restart."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from shared.metadata.embedded import PASSWORD_FILE, USERNAME, EmbeddedMongo
from tests.support.processes import BIN, free_port, start_secantus

Document = dict[str, object]


@contextmanager
def serve(data: Path, log: Path) -> Iterator[int]:
    """``spacedock serve`` on embedded defaults; yields the embedded server's port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPACEDOCK_")}
    env.update(
        SPACEDOCK_LISTEN=f"127.0.0.1:{port}",
        SPACEDOCK_DATA_DIR=str(data),
        SPACEDOCK_LOG_FORMAT="json",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "spacedock"), "serve"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, log.read_text()
            time.sleep(0.3)
        else:
            raise AssertionError(f"serve not ready\n{log.read_text()[-3000:]}")
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/users", timeout=10).status_code == 401
        admin = ("admin", (data / "admin-password").read_text().strip())
        users = requests.get(f"http://127.0.0.1:{port}/api/v1/users", auth=admin, timeout=10)
        assert users.status_code == 200, users.text
        yield _embedded_port(log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"no clean stop in 30 s\n{log.read_text()[-3000:]}") from None
    assert code == 0, log.read_text()[-2000:]


def _embedded_port(log: Path) -> int:
    for line in log.read_text().splitlines():
        with_port = json.loads(line) if line.startswith("{") else {}
        if with_port.get("event") == "embedded_mongo_started":
            return int(with_port["port"])
    raise AssertionError(f"no embedded_mongo_started line\n{log.read_text()[-3000:]}")


def assert_closed_without_password(port: int) -> None:
    client: MongoClient[Document] = MongoClient(
        f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=5000
    )
    try:
        db = client["spacedock"]
        reads_and_writes: dict[str, Callable[[], object]] = {
            "list collections": db.list_collection_names,
            "read users": lambda: db["users"].find_one(),
            "read the signing key": lambda: db["secrets"].find_one(),
            "insert a user": lambda: db["users"].insert_one({"_id": "intruder"}),
            "create a server user": lambda: client.admin.command(
                "createUser", "intruder", pwd="intruder", roles=["root"]
            ),
        }
        for what, attempt in reads_and_writes.items():
            with pytest.raises(OperationFailure) as failure:
                attempt()
            assert failure.value.code == 13, what  # Unauthorized
    finally:
        client.close()


def with_password(port: int, password: str) -> MongoClient[Document]:
    return MongoClient(
        f"mongodb://{USERNAME}:{password}@127.0.0.1:{port}/spacedock?authSource=admin",
        serverSelectionTimeoutMS=5000,
    )


def test_serve_keeps_its_metadata_behind_a_password_made_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    password_file = data / "metadata" / PASSWORD_FILE

    with serve(data, first_log) as port:
        assert_closed_without_password(port)
        password = password_file.read_text().strip()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((data / "metadata").stat().st_mode) == 0o700
        client = with_password(port, password)
        try:
            assert client["spacedock"]["secrets"].find_one() is not None
            assert client["spacedock"]["users"].find_one({"_id": "admin"}) is not None
        finally:
            client.close()

    with serve(data, second_log) as port:  # a restart on the same data dir
        assert password_file.read_text().strip() == password
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert_closed_without_password(port)
        client = with_password(port, password)
        try:
            assert client["spacedock"]["users"].find_one({"_id": "intruder"}) is None
        finally:
            client.close()

    for log in (first_log, second_log):
        assert password not in log.read_text()


async def test_a_database_made_without_a_password_is_closed_on_its_next_start(
    tmp_path: Path,
) -> None:
    """A data dir from before the password (an open server) keeps its data and gets one."""
    metadata = tmp_path / "metadata"
    open_server = start_secantus(metadata, test_commands=False)
    try:
        client: MongoClient[Document] = MongoClient(f"mongodb://127.0.0.1:{open_server.port}")
        client["spacedock"]["users"].insert_one({"_id": "admin"})
        client.close()
    finally:
        open_server.stop()
    metadata.chmod(0o755)

    embedded = EmbeddedMongo(metadata)
    url = await embedded.start()
    try:
        password = (metadata / PASSWORD_FILE).read_text().strip()
        assert password in url and password not in repr(embedded)
        assert stat.S_IMODE(metadata.stat().st_mode) == 0o700
        assert_closed_without_password(embedded.port)
        client = with_password(embedded.port, password)
        try:
            assert client["spacedock"]["users"].find_one({"_id": "admin"}) is not None
        finally:
            client.close()
    finally:
        await embedded.stop()
