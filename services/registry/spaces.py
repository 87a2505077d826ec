"""The spaces model: creating, changing and deleting spaces, between the management handlers
and the metadata store.

A space is the unit of tenancy, so every change here also reaches what this instance caches
about it: the registry's view of the space and the grants of its former members.
"""

from __future__ import annotations

import re
from typing import Any

from services.registry.bootstrap import DEFAULT_SPACE
from services.registry.identity.access import AccessControl, Principal
from services.registry.management.errors import Conflict, NotFound
from services.registry.registry import Registry
from shared.metadata.errors import AlreadyExists, SpaceNotEmpty
from shared.metadata.ports import Metadata
from shared.metadata.spaces import SpaceRecord

GENERATED_PREFIX = "spaces-"
# Two creates racing for the same number is rare; ten in a row means something else is wrong.
ALLOCATION_ATTEMPTS = 10
_NUMBERED = re.compile(rf"{re.escape(GENERATED_PREFIX)}(\d{{1,9}})")


def next_generated_id(taken: list[str]) -> str:
    """The ``spaces-N`` after the highest N in ``taken``. Ids that only look numbered (more
    digits than an id is ever given, or text after the number) do not count."""
    numbers = [int(m.group(1)) for m in map(_NUMBERED.fullmatch, taken) if m is not None]
    return f"{GENERATED_PREFIX}{max(numbers, default=0) + 1}"


class Spaces:
    def __init__(self, metadata: Metadata, registry: Registry, access: AccessControl) -> None:
        self.metadata = metadata
        self.registry = registry
        self.access = access

    async def find(self, space_id: str) -> SpaceRecord | None:
        return await self.metadata.spaces.get(space_id)

    async def visible_to(self, principal: Principal) -> list[SpaceRecord]:
        """The spaces ``principal`` has a role in (every one, for a superuser)."""
        visible = await self.access.visible_spaces(principal)
        spaces = await self.metadata.spaces.all()
        return [space for space in spaces if visible is None or space.id in visible]

    async def create(self, space_id: str | None, name: str, anonymous_pull: bool) -> SpaceRecord:
        """A new space: ``space_id``, or the next free ``spaces-N`` when it is None."""
        if space_id is None:
            return await self._create_numbered(name, anonymous_pull)
        try:
            return await self.metadata.spaces.create(space_id, name, anonymous_pull)
        except AlreadyExists as exc:
            raise Conflict(f"space {space_id} already exists") from exc

    async def _create_numbered(self, name: str, anonymous_pull: bool) -> SpaceRecord:
        """The unique index on the id is the lock: a concurrent create of the same N makes
        this read the ids again and try the next one."""
        for _ in range(ALLOCATION_ATTEMPTS):
            space_id = next_generated_id(await self.metadata.spaces.ids_starting(GENERATED_PREFIX))
            try:
                return await self.metadata.spaces.create(space_id, name, anonymous_pull)
            except AlreadyExists:
                continue
        raise Conflict("could not allocate a space id; retry")

    async def update(self, space_id: str, changes: dict[str, Any]) -> SpaceRecord:
        """Rename the space or change its anonymous pull; this instance sees it at once."""
        space = await self.metadata.spaces.update(space_id, changes)
        if space is None:
            raise NotFound(f"space {space_id} does not exist")
        self.registry.forget_space(space_id)
        return space

    async def delete(self, space_id: str) -> None:
        """Only an empty space other than the default can go: nothing is deleted implicitly.
        Its former members' grants are forgotten, so their roles in it end at once here."""
        if await self.metadata.spaces.get(space_id) is None:
            raise NotFound(f"space {space_id} does not exist")
        if space_id == DEFAULT_SPACE[0]:
            raise Conflict("the default space cannot be deleted")
        try:
            members = await self.metadata.spaces.delete(space_id)
        except SpaceNotEmpty as exc:
            raise Conflict(f"space {space_id} cannot be deleted: {exc.reason}") from exc
        self.registry.forget_space(space_id)
        for username in members or []:
            self.access.forget(username)
