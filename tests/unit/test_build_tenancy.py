"""Build ids are scoped by space, and the registry's build commands carry sensitive values
sealed for their build (the pure parts: requests, commands, documents)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.build_requests import (
    FIELDS,
    SEALED,
    RequestInvalid,
    SealingUnavailable,
    build_key,
    parse_build_request,
)
from shared.metadata.builds import new_build
from shared.sealing import Sealer

SECRET = "Server=db;Password=s3cret-#42"
SEALER = Sealer(bytes(range(32)))


def request(**extra: Any) -> dict[str, Any]:
    return {
        "build_id": "deployments-99-web",
        "space": "spaces-1",
        "sdi": {"id": "mywebapp-sdi", "version": "1.2.0"},
        "deployment": {"id": "deployments-99", "environment": "Production"},
        "variables": {"AppName": "web", "Replicas": 3},
        "sensitive_variables": {"ConnectionStrings:Db": SECRET},
        "packages": {"mywebapp": "1.2.1"},
        **extra,
    }


def test_a_build_is_named_by_its_space_and_id() -> None:
    assert build_key("spaces-1", "deployments-99-web") == "spaces-1/deployments-99-web"
    assert build_key("spaces-1", "x") != build_key("spaces-2", "x")
    one = parse_build_request(request())
    other = parse_build_request(request(space="spaces-2"))
    assert one.build_id == other.build_id and one.key != other.key


def test_build_documents_are_keyed_by_space_and_keep_the_plain_id() -> None:
    doc = new_build("spaces-2", "deployments-99-web", None, command_id="c-1")
    assert doc["_id"] == "spaces-2/deployments-99-web"
    assert (doc["space"], doc["build_id"], doc["command_id"]) == (
        "spaces-2",
        "deployments-99-web",
        "c-1",
    )
    assert doc["status"] == "queued"


def test_the_registry_command_seals_sensitive_values_and_a_builder_reads_the_same_request() -> None:
    parsed = parse_build_request(request(), space="spaces-1")
    command = parsed.command(SEALER)
    assert "sensitive_variables" not in command and SEALED in command
    assert SECRET not in json.dumps(command)
    assert parse_build_request(command, sealer=SEALER) == parsed


def test_a_command_without_sensitive_values_needs_no_key() -> None:
    parsed = parse_build_request(request(sensitive_variables=None))
    command = parsed.command(None)
    assert SEALED not in command
    assert parse_build_request(command) == parsed


def test_sensitive_values_without_a_key_are_never_put_in_a_command() -> None:
    with pytest.raises(SealingUnavailable, match="SPACEDOCK_SEALING_KEY"):
        parse_build_request(request()).command(None)


def test_clear_sensitive_values_from_the_deployment_server_are_accepted() -> None:
    parsed = parse_build_request(request(), sealer=SEALER)
    assert parsed.sensitive_variables == {"ConnectionStrings:Db": SECRET}
    assert parsed.public()["sensitive_variables"] == ["ConnectionStrings:Db"]
    assert SECRET not in json.dumps(parsed.public()) and SECRET not in repr(parsed)


def sealed_for(space: str, build_id: str, sealer: Sealer = SEALER) -> str:
    return sealer.seal({"Db": SECRET}, context=build_key(space, build_id))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # sealed for another space's build of the same id: a replay across spaces
        ({SEALED: sealed_for("spaces-2", "deployments-99-web")}, "does not open"),
        ({SEALED: sealed_for("spaces-1", "deployments-98-web")}, "does not open"),
        ({SEALED: sealed_for("spaces-1", "deployments-99-web", Sealer(bytes(32)))}, "open"),
        ({SEALED: "v1.AAAA"}, "is not a sealed value"),
        ({SEALED: 42}, "must be a string"),
    ],
)
def test_a_sealed_field_that_does_not_open_for_this_build_is_request_invalid(
    change: dict[str, Any], message: str
) -> None:
    data = {**request(sensitive_variables=None), **change}
    with pytest.raises(RequestInvalid, match=message):
        parse_build_request(data, sealer=SEALER)


def test_sealed_and_clear_values_together_or_without_a_key_are_request_invalid() -> None:
    sealed = sealed_for("spaces-1", "deployments-99-web")
    with pytest.raises(RequestInvalid, match="not both"):
        parse_build_request({**request(), SEALED: sealed}, sealer=SEALER)
    with pytest.raises(RequestInvalid, match="SPACEDOCK_SEALING_KEY"):
        parse_build_request({**request(sensitive_variables=None), SEALED: sealed})


def test_a_sealed_request_without_its_build_id_does_not_open() -> None:
    """The id is part of what was sealed: a generated one cannot match."""
    data = {**request(sensitive_variables=None), SEALED: sealed_for("spaces-1", "x")}
    data.pop("build_id")
    with pytest.raises(RequestInvalid, match="does not open"):
        parse_build_request(data, sealer=SEALER)


def test_clients_of_the_http_api_cannot_send_a_sealed_field() -> None:
    """POST …/builds takes FIELDS only: sealed values come from the registry itself."""
    assert SEALED not in FIELDS


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "extra",
    [
        {"deployment": {"a\u0000b": "x"}},
        {"variables": {"A\u0000": "x"}},
        {"deployment": {"x": _deep(40)}},
    ],
    ids=["nul-key", "nul-variable", "deep"],
)
def test_what_mongodb_cannot_hold_is_request_invalid(extra: dict[str, Any]) -> None:
    with pytest.raises(RequestInvalid):
        parse_build_request({"space": "spaces-1", "sdi": {"id": "app", "version": "1"}, **extra})


def test_variables_keep_null_as_the_deployment_server_sends_it() -> None:
    """A variable defined with no value stays null (JSON writes ``null`` for it, a .NET
    setting is emptied); true, false and numbers become the server's text."""
    parsed = parse_build_request(
        request(variables={"Empty": None, "On": True, "Count": 3, "Name": "web"})
    )
    assert parsed.variables == {"Empty": None, "On": "True", "Count": "3", "Name": "web"}
    with pytest.raises(RequestInvalid, match=r"variables\.Bad must be a string"):
        parse_build_request(request(variables={"Bad": ["a"]}))
