"""Build requests as the management API takes them (pure): a deployment is required there, and
a repeated ``build_id`` is compared with the request its build was recorded with."""

from __future__ import annotations

from typing import Any

import pytest

from services.registry.builds import inputs_differing
from shared.build_requests import RequestInvalid, parse_build_request


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "build_id": "deployments-12-api",
        "sdi": {"id": "api-sdi", "version": "3.1.0"},
        "deployment": {"id": "deployments-12", "environment": "Staging"},
        "variables": {"Api:Mode": "strict"},
        "sensitive_variables": {"Api:Token": "t0ken-value"},
        "build_args": {"DOTNET_VERSION": "8.0"},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        (None, "deployment is required"),
        ({}, "deployment is required"),
        ({"environment": "Staging"}, "deployment is required"),
        ({"id": "  "}, "deployment.id is required"),
        ({"id": True}, "deployment.id is required"),
        ("deployments-12", "deployment must be an object"),
    ],
)
def test_the_api_refuses_a_request_without_its_deployment(deployment: object, message: str) -> None:
    body = request(deployment=deployment)
    if deployment is None:
        body.pop("deployment", None)
    with pytest.raises(RequestInvalid, match=message):
        parse_build_request(body, space="spaces-1", deployment_required=True)


def test_without_the_api_a_request_may_leave_the_deployment_out() -> None:
    """Over AMQP the tag then is the SDI version alone."""
    body = request()
    body.pop("deployment")
    assert parse_build_request(body, space="spaces-1").tag == "3.1.0"


def test_a_numeric_deployment_id_names_the_tag() -> None:
    parsed = parse_build_request(
        request(deployment={"id": 12}), space="spaces-1", deployment_required=True
    )
    assert parsed.tag == "3.1.0-12"


def test_the_recorded_request_holds_build_args_and_only_the_names_of_secrets() -> None:
    public = parse_build_request(request(), space="spaces-1").public()
    assert public["build_args"] == {"DOTNET_VERSION": "8.0"}
    assert public["sensitive_variables"] == ["Api:Token"]
    assert "t0ken-value" not in repr(public)


def recorded(**changes: Any) -> dict[str, Any]:
    return parse_build_request(request(**changes), space="spaces-1").public()


def test_the_same_request_again_differs_in_nothing() -> None:
    assert inputs_differing(recorded(), recorded()) == []


@pytest.mark.parametrize(
    ("changes", "differing"),
    [
        ({"variables": {"Api:Mode": "lenient"}}, ["variables"]),
        ({"build_args": {"DOTNET_VERSION": "9.0"}}, ["build_args"]),
        ({"sdi": {"id": "api-sdi", "version": "3.2.0"}}, ["image", "sdi"]),
        ({"sensitive_variables": {"Api:Key": "x"}}, ["sensitive_variables"]),
        ({"deployment": {"id": "deployments-12", "environment": "Production"}}, ["deployment"]),
    ],
)
def test_other_inputs_under_the_same_id_are_named(
    changes: dict[str, Any], differing: list[str]
) -> None:
    assert inputs_differing(recorded(), recorded(**changes)) == differing


def test_a_secret_value_changed_under_the_same_name_cannot_be_told() -> None:
    """The registry keeps no trace of sensitive values: the names are what it compares."""
    again = recorded(sensitive_variables={"Api:Token": "another-value"})
    assert inputs_differing(recorded(), again) == []


def test_a_record_from_before_build_args_were_kept_is_compared_without_them() -> None:
    older = recorded()
    older.pop("build_args")
    assert inputs_differing(older, recorded(build_args={"DOTNET_VERSION": "9.0"})) == []
    assert inputs_differing(older, recorded(variables={})) == ["variables"]
