"""Variables as the deployment server keeps them: names compared case-insensitively, every
value a string or None (a variable defined with no value: empty in a template, ``null`` in
JSON, an emptied setting in a .NET configuration file), sensitive
values marked so they can be kept out of everything but files. Iteration follows the order
in which names were first defined, as ``#{each}`` over ``Name[Key]`` groups does."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    value: str | None
    sensitive: bool = False


class VariableSet:
    def __init__(
        self,
        variables: Mapping[str, str | None] = {},
        sensitive: Mapping[str, str | None] = {},
    ) -> None:
        self._by_key: dict[str, Variable] = {}
        self.longest_name = 0  # a longer name is not defined: lookups stop there
        for name, value in variables.items():
            self.set(name, value)
        for name, value in sensitive.items():
            self.set(name, value, sensitive=True)

    def set(self, name: str, value: str | None, *, sensitive: bool = False) -> None:
        key = name.lower()
        self._by_key[key] = Variable(name, value, sensitive)
        self.longest_name = max(self.longest_name, len(key))

    def find(self, name: str) -> Variable | None:
        """The variable called ``name`` in any case, with its sensitivity."""
        return self._by_key.get(name.lower())

    def get(self, name: str) -> str | None:
        """The value of ``name``; None when it has none or is not defined."""
        variable = self.find(name)
        return None if variable is None else variable.value

    def is_sensitive(self, name: str) -> bool:
        variable = self.find(name)
        return variable is not None and variable.sensitive

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_key

    def __iter__(self) -> Iterator[Variable]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def secrets(self) -> list[str]:
        """The sensitive values, longest first (for redaction)."""
        values = {v.value for v in self._by_key.values() if v.sensitive and v.value}
        return sorted(values, key=len, reverse=True)


def system_variables(deployment: Mapping[str, Any], space: str) -> dict[str, str]:
    """The ``Octopus.*`` variables a deployment defines, from a build request's
    ``deployment`` (all values strings, as the deployment server gives them)."""

    def text(key: str) -> str | None:
        value = deployment.get(key)
        return None if value is None else str(value)

    pairs = {
        "Octopus.Deployment.Id": text("id"),
        "Octopus.Deployment.Name": text("name"),
        "Octopus.Environment.Id": text("environment_id"),
        "Octopus.Environment.Name": text("environment"),
        "Octopus.Release.Id": text("release_id"),
        "Octopus.Release.Number": text("release"),
        "Octopus.Release.Channel.Name": text("channel"),
        "Octopus.Project.Id": text("project_id"),
        "Octopus.Project.Name": text("project"),
        "Octopus.Tenant.Id": text("tenant_id"),
        "Octopus.Tenant.Name": text("tenant"),
        "Octopus.Space.Id": space,
        "Octopus.Space.Name": text("space_name"),
        "Octopus.Machine.Name": text("machine"),
        "Octopus.Task.Id": text("task_id"),
    }
    return {name: value for name, value in pairs.items() if value is not None}
