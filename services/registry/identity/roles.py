"""Roles per space, the actions they allow, and the scopes clients ask tokens for (pure)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Role(enum.IntEnum):
    """Each role includes the ones below it."""

    READER = 1
    WRITER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, value: object) -> Role | None:
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        return None

    @property
    def label(self) -> str:
        return self.name.lower()


class Action(enum.StrEnum):
    """The actions of Docker token scopes on a repository."""

    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"

    @property
    def needs(self) -> Role:
        return _NEEDS[self]


_NEEDS = {Action.PULL: Role.READER, Action.PUSH: Role.WRITER, Action.DELETE: Role.ADMIN}

# The management API's token scopes on a space (``space:<id>:<action>``), by the role each
# needs.
SPACE_ACTIONS = {Role.READER: "read", Role.WRITER: "write", Role.ADMIN: "manage"}


@dataclass(frozen=True, slots=True)
class Grants:
    """What one account may do, as loaded from the metadata store.

    ``epoch`` changes with the password, so a password verified before a change stops
    working; ``api_keys`` are the ids of the account's keys that are not revoked.
    """

    username: str
    superuser: bool = False
    global_role: Role | None = None
    roles: Mapping[str, Role] = field(default_factory=dict)
    epoch: int = 0
    api_keys: frozenset[str] = frozenset()

    def role_in(self, space: str) -> Role | None:
        if self.superuser:
            return Role.ADMIN
        own = self.roles.get(space)
        if own is None or (self.global_role is not None and self.global_role > own):
            return self.global_role
        return own

    @property
    def sees_every_space(self) -> bool:
        return self.superuser or self.global_role is not None

    def visible_spaces(self) -> frozenset[str] | None:
        """The spaces this account has a role in; None when it has one in every space."""
        return None if self.sees_every_space else frozenset(self.roles)


@dataclass(frozen=True, slots=True)
class ScopeRequest:
    """One ``type:name:actions`` item of a token request's ``scope`` parameter."""

    type: str
    name: str
    actions: tuple[str, ...]


class ScopeInvalid(ValueError):
    pass


def parse_scopes(values: list[str]) -> list[ScopeRequest]:
    """Every scope in the ``scope`` parameters (each may hold several, space-separated)."""
    scopes: list[ScopeRequest] = []
    for value in values:
        for item in value.split():
            resource_type, colon, rest = item.partition(":")
            name, colon2, actions = rest.rpartition(":")
            if not colon or not colon2 or not resource_type or not name:
                raise ScopeInvalid(f"invalid scope {item[:200]!r}: expected type:name:actions")
            # A resource class such as repository(plugin) does not change what is granted.
            resource_type = resource_type.split("(", 1)[0]
            wanted = tuple(a for a in actions.split(",") if a)
            scopes.append(ScopeRequest(resource_type, name, wanted))
    return scopes
