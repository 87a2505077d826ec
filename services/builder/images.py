"""Which images a Dockerfile would make an engine fetch, and whether a build may (pure).

Docker reads every ``FROM`` (after the ARGs declared before the first one) and every
``COPY --from`` that names no earlier stage as an image to pull. A build may use images of
this registry, where the build's own credential decides what it can read (its space, and
spaces that allow anonymous pull), and images of the registries an operator allows
(``SPACEDOCK_BUILD_ALLOWED_REGISTRIES``); anything else is refused before an engine contacts
any host. ``ADD`` of a URL is refused too: the engine would fetch it from the builder's
network.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from services.builder.assemble import meta_args
from services.builder.dockerfile import (
    Dockerfile,
    Instruction,
    copy_arguments,
    expand,
    parse_instruction,
)
from shared.builds.errors import BaseImageDenied, DockerfileInvalid, DockerfileUnsupported
from shared.oci.digest import Digest
from shared.oci.errors import DigestInvalid
from shared.oci.names import NAME_RE, is_tag

DOCKER_HUB = "docker.io"
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
SCRATCH = "scratch"
MAX_REFERENCE = 512
_REFERENCE = re.compile(
    r"[A-Za-z0-9._:/@\[\]-]+"  # host[:port]/path[:tag][@algorithm:hex]
)


@dataclass(frozen=True, slots=True)
class ImageReference:
    """An image as Docker reads its name: ``host`` is ``docker.io`` for a name without one
    (``written_host`` is then empty)."""

    text: str
    host: str
    repository: str
    reference: str  # a tag or a digest
    written_host: str
    line: int
    stage_base: bool = False  # a FROM, not a COPY --from

    @property
    def display(self) -> str:
        return f"{self.text!r} on line {self.line}"


def parse_image(text: str, line: int, *, stage_base: bool = False) -> ImageReference:
    if not text or len(text) > MAX_REFERENCE or not _REFERENCE.fullmatch(text):
        raise DockerfileInvalid(f"{text[:100]!r} on line {line} is not an image")
    name, at, digest = text.partition("@")
    first, slash, rest = name.partition("/")
    written_host = first if slash and ("." in first or ":" in first or first == "localhost") else ""
    path = rest if written_host else name
    repository, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        repository, tag = path, "latest"
    reference = digest if at else tag
    if NAME_RE.fullmatch(repository) is None or not (
        is_tag(reference) if not at else _is_digest(reference)
    ):
        raise DockerfileInvalid(f"{text[:100]!r} on line {line} is not an image")
    return ImageReference(
        text=text,
        host=(written_host or DOCKER_HUB).lower(),
        repository=repository,
        reference=reference,
        written_host=written_host,
        line=line,
        stage_base=stage_base,
    )


def images_used(dockerfile: Dockerfile, build_args: dict[str, str]) -> list[ImageReference]:
    """Every image the Dockerfile names: each stage's base and each ``COPY --from`` that is
    not a stage. ADD of a URL is refused here (DockerfileUnsupported)."""
    values = meta_args(dockerfile, build_args)
    stages: list[str] = []  # the stages that have ended: a stage cannot copy from itself
    current: str | None = None
    found: list[ImageReference] = []
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            if current is not None:
                stages.append(current)
            base, stage = _from(instruction, values)
            if base.lower() not in stages and base.lower() != SCRATCH:
                found.append(parse_image(base, instruction.line, stage_base=True))
            current = stage.lower() if stage else f"#{len(stages)}"
        elif instruction.keyword in ("COPY", "ADD"):
            source = _copy_from(instruction)
            if source is not None and not _is_stage(source, stages):
                found.append(parse_image(source, instruction.line))
            if instruction.keyword == "ADD":
                _refuse_remote(instruction)
        elif instruction.keyword == "ONBUILD" and trigger_problems([instruction.arguments]):
            # Runs when a later stage (or image) starts FROM this one: judged like a trigger.
            raise DockerfileUnsupported(
                f"ONBUILD on line {instruction.line} would add a URL or a variable, or copy "
                "from another image",
            )
    return found


def check_hosts(
    images: list[ImageReference], own_hosts: Collection[str], allowed_hosts: Collection[str]
) -> None:
    """Refuse (BaseImageDenied) an image from a registry that is neither this one nor
    allowed by the operator."""
    own = {host.lower() for host in own_hosts}
    allowed = {host.lower() for host in allowed_hosts}
    for image in images:
        if image.host not in own and image.host not in allowed:
            raise BaseImageDenied(
                f"{image.display}: images come from this registry ({', '.join(sorted(own))})"
                f"{'' if not allowed else ' or ' + ', '.join(sorted(allowed))}; "
                f"{image.host} is not allowed (SPACEDOCK_BUILD_ALLOWED_REGISTRIES)",
            )


def trigger_problems(triggers: list[str]) -> list[str]:
    """The ONBUILD triggers of a base image that this build must not run: they run in it as
    if they were its own instructions, so an ``ADD`` of a URL (or of a variable, which may
    hold one) and a ``COPY --from`` another image are refused like those of the Dockerfile."""
    refused = []
    for trigger in triggers:
        try:
            instruction = parse_instruction(trigger.strip(" \t"))
            if instruction.keyword in ("COPY", "ADD") and _copy_from(instruction) is not None:
                raise DockerfileUnsupported("--from in a trigger")
            if instruction.keyword == "ADD":
                _refuse_remote(instruction)
        except (DockerfileInvalid, DockerfileUnsupported):
            refused.append(trigger[:200])
    return refused


def _from(instruction: Instruction, values: dict[str, str]) -> tuple[str, str | None]:
    words = expand(instruction.arguments, values).split()
    if len(words) == 3 and words[1].lower() == "as":
        if _STAGE_NAME.fullmatch(words[2].lower()) is None:  # as Docker requires
            raise DockerfileInvalid(
                f"FROM on line {instruction.line}: {words[2][:100]!r} is not a stage name",
            )
        return words[0], words[2]
    if len(words) != 1:
        raise DockerfileInvalid(f"FROM on line {instruction.line}: expected FROM image [AS name]")
    if "$" in words[0]:
        raise DockerfileInvalid(f"FROM on line {instruction.line} uses an undeclared variable")
    return words[0], None


def _is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except DigestInvalid:
        return False
    return True


def _is_stage(source: str, stages: list[str]) -> bool:
    """Whether ``--from`` names a stage that has ended, by its name or its index."""
    if source.lower() in stages:
        return True
    return source.isascii() and source.isdigit() and int(source) < len(stages)


def _copy_from(instruction: Instruction) -> str | None:
    source = instruction.flags.get("from")
    if source is not None and "$" in source:
        raise DockerfileUnsupported(
            f"{instruction.keyword} --from on line {instruction.line} names its source with a "
            "variable; name the stage or image",
        )
    return source


def _refuse_remote(instruction: Instruction) -> None:
    """ADD fetches a URL itself, from the engine's network: refused, and so is a source
    named by a variable, which could hold one."""
    if "\\" in instruction.arguments or "`" in instruction.arguments:
        # Docker takes escapes out of a source before it looks for a URL in it.
        raise DockerfileUnsupported(
            f"ADD on line {instruction.line} has an escape character in its sources; use COPY",
        )
    sources, _ = copy_arguments(instruction)
    for source in sources:
        if "://" in source or source.startswith("git@") or "$" in source:
            raise DockerfileUnsupported(
                f"ADD of a URL or of a variable on line {instruction.line}: builds do not "
                "fetch from the network; put the file in a package (or use COPY)",
            )
