"""YAML: values replaced by path over the document's parse events, so that comments,
anchors, tags, styles and every document of a stream are written back."""

from __future__ import annotations

import io
import re
from typing import Any

import yaml
from yaml.events import (
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamStartEvent,
)

from services.builder.features.structured.common import (
    Context,
    NotThisFormat,
    Replacement,
    StructuredError,
    fold,
)
from services.builder.features.structured.encoding import (
    decode_text,
    encode_text,
    line_break_of,
)
from services.builder.features.structured.yaml_emitter import ServerEmitter
from services.builder.features.structured.yaml_scanner import (
    Comment,
    FlowDepthLimit,
    fragment_events,
    yaml_events,
)


class _PathStack:
    """Where the events are, as the server tracks it: mapping keys and sequence indexes."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []  # [is_sequence, key or None, index]
        self.longest = -1  # paths longer than this match no name: None stands for them

    def path(self) -> str | None:
        parts = []
        length = -1
        for is_sequence, key, index in self.frames:
            if key is not None:
                part = key
            elif is_sequence and index != -1:
                part = str(index)
            else:
                continue
            length += len(part) + 1
            if length > self.longest:
                return None
            parts.append(part)
        return ":".join(parts)

    def classify(self, event: Event | Comment) -> tuple[str, str | None]:
        top = self.frames[-1] if self.frames else None
        if (
            top is not None
            and top[0]
            and isinstance(event, (MappingStartEvent, SequenceStartEvent, ScalarEvent))
        ):
            top[2] += 1
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            kind = "mapping" if isinstance(event, MappingStartEvent) else "sequence"
            path = self.path()
            self.frames.append([kind == "sequence", None, -1])
            return kind, path
        if isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            self.frames.pop()
            path = self.path()
            self._key_end()
            return ("mapping_end" if isinstance(event, MappingEndEvent) else "sequence_end"), path
        if isinstance(event, ScalarEvent):
            if top is not None and not top[0] and top[1] is None:
                top[1] = event.value  # a mapping key
                return "other", self.path()
            path = self.path()
            self._key_end()
            return "scalar", path
        if isinstance(event, Comment):
            return "comment", self.path()
        return "other", self.path()

    def _key_end(self) -> None:
        if self.frames:
            self.frames[-1][1] = None


class _IndentDetector:
    """The most common step between the columns of nested block collections."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.last = 0

    def process(self, event: Event | Comment) -> None:
        if isinstance(event, Comment):
            column = event.column
        else:
            column = event.start_mark.column if event.start_mark is not None else 0
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            if not event.flow_style:
                step = column - self.last
                if 2 <= step <= 9:
                    self.steps.append(step)
                self.last = column
        elif not isinstance(event, (StreamStartEvent, DocumentStartEvent)) and column < self.last:
            self.last = column

    def indent(self) -> int:
        if not self.steps:
            return 2
        return max(dict.fromkeys(self.steps), key=self.steps.count)


_MAX_PATCH_NODES = 100_000


class _PatchLoader(FlowDepthLimit, yaml.BaseLoader):
    """PyYAML's loader of strings, refusing deep flow nesting as the file's scanner does."""


_OCTOPUS_RESERVED = re.compile(r"^Octopus([^:]|$)", re.IGNORECASE)


def replace_yaml(content: bytes, context: Context) -> tuple[bytes, list[Replacement]]:
    text, encoding = decode_text(content)
    events = yaml_events(text)
    names: dict[str, tuple[str, str | None]] = {
        fold(name): (name, None)
        for name in reversed(context.names)
        if not _OCTOPUS_RESERVED.match(name)
    }
    wanted = names
    at_document_start = False
    paths = _PathStack()
    paths.longest = _longest(wanted)
    detector = _IndentDetector()
    output: list[Event | Comment] = []
    held: tuple[str, str | None, Event | Comment, str | None] | None = None

    def value_of(path: str | None) -> tuple[bool, str | None]:
        entry = None if path is None else wanted.get(fold(path))
        if entry is None or path is None:
            return False, None
        name, patched = entry
        if patched is not None:
            return True, context.take(patched, path, "yaml")
        return True, context.value(name, path, "yaml")

    for event in events:
        if isinstance(event, Comment) and at_document_start:
            patch = _patch_name(event.value)
            if patch:
                wanted = {**names, **_patch_values(context.lookup(patch))}
                paths.longest = _longest(wanted)
        at_document_start = isinstance(event, DocumentStartEvent)
        if isinstance(event, DocumentEndEvent):
            wanted = names
            paths.longest = _longest(wanted)
        detector.process(event)
        kind, path = paths.classify(event)
        if held is None:
            if kind == "scalar":
                found, value = value_of(path)
                output.append(_replaced_scalar(event, value) if found else event)  # type: ignore[arg-type]
            elif kind in ("mapping", "sequence"):
                found, value = value_of(path)
                if found:
                    held = (kind, path, event, value)
                else:
                    output.append(event)
            elif kind == "comment":
                held = ("comment", path, event, None)
            else:
                output.append(event)
            continue
        held_kind, held_path, held_event, held_value = held
        if kind == f"{held_kind}_end" and held_path == path:
            assert isinstance(held_event, CollectionStartEvent)
            output.extend(_replacement_events(held_value, held_event.anchor, held_event.tag))
            held = None
        elif held_kind == "comment" and kind in ("mapping", "sequence"):
            output += [event, held_event]  # the server puts a comment after the start it precedes
            held = None
        elif held_kind == "comment":
            output += [held_event, event]
            held = None
    if held is not None and held[0] == "comment":
        output.append(held[2])
    stream = io.StringIO()
    emitter = ServerEmitter(stream, detector.indent(), line_break_of(text))
    try:
        for event in output:
            emitter.emit(event)
    except yaml.YAMLError as exc:
        # The emitter's message can quote a value, which may be secret.
        raise StructuredError("the replaced document cannot be written as YAML") from exc
    data, _ = encode_text(stream.getvalue(), encoding)
    return data, context.replaced


def _longest(wanted: dict[str, tuple[str, str | None]]) -> int:
    return max((len(key) for key in wanted), default=-1)


def _patch_name(comment: str) -> str:
    """The variable a ``# patch: Name`` comment opening a document names."""
    return comment.replace("patch:", "").strip() if comment.lstrip().startswith("patch:") else ""


def _patch_values(patch: str | None) -> dict[str, tuple[str, str | None]]:
    """A patch variable's YAML as values by path (every leaf a string, null an empty one)."""
    if not patch:
        return {}
    try:
        document = yaml.load(patch, Loader=_PatchLoader)  # every scalar a string
    except yaml.YAMLError as exc:
        # The parser's message quotes the value, which may be secret: give the line only.
        mark = getattr(exc, "problem_mark", None)
        where = "" if mark is None else f" (line {mark.line + 1})"
        raise NotThisFormat(f"a patch variable is not YAML{where}") from exc
    found: dict[str, tuple[str, str | None]] = {}
    stack: list[tuple[str, Any]] = [("", document)]
    visited = 0
    while stack:
        path, node = stack.pop()
        visited += 1
        if visited > _MAX_PATCH_NODES:  # aliases can make a small value expand enormously
            raise StructuredError("a patch variable expands to too many values")
        if isinstance(node, dict):
            stack.extend((f"{path}:{k}" if path else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}:{i}" if path else str(i), v) for i, v in enumerate(node))
        elif path:
            value = "" if node is None or node in ("", "~", "null", "Null", "NULL") else str(node)
            if not _OCTOPUS_RESERVED.match(path):  # reserved names are skipped here too
                found[fold(path)] = (path, value)
    return found


def _replaced_scalar(event: ScalarEvent, value: str | None) -> ScalarEvent:
    if value is None:
        return ScalarEvent(event.anchor, "!!null", (True, False), "null", event.start_mark,
                           event.end_mark, style=None)  # fmt: skip
    return ScalarEvent(event.anchor, event.tag, event.implicit, value, event.start_mark,
                       event.end_mark, style=event.style)  # fmt: skip


def _replacement_events(value: str | None, anchor: str | None, tag: str | None) -> list[Event]:
    """A mapping's or sequence's replacement: the value's own events when it parses as
    YAML with content, else the value as a double-quoted string (``null`` for none)."""
    if value is not None:
        try:
            events = fragment_events(value)
        except (yaml.YAMLError, NotThisFormat):
            events = []
        if events:
            return events
        return [ScalarEvent(anchor, tag, (True, True), value, style='"')]
    return [ScalarEvent(anchor, tag, (True, False), "null", style=None)]
