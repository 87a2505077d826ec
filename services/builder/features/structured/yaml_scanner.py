"""PyYAML's scanner and parser made to read what the server's YAML parser reads: comments
kept, as events among the parse events, and anchor names as the server allows them."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    StreamEndEvent,
    StreamStartEvent,
)

from services.builder.features.structured.common import (
    MAX_YAML_EVENTS,
    MAX_YAML_FLOW_DEPTH,
    NotThisFormat,
)


@dataclass(slots=True)
class Comment:
    """A comment, as an event between the parse events around it."""

    value: str
    inline: bool
    column: int


_SCANNER: Any = yaml.scanner.Scanner  # PyYAML's methods, untyped
_WHITE_BREAK_OR_ZERO = "\0 \t\r\n\x85\u2028\u2029"


class FlowTooDeep(yaml.scanner.ScannerError):
    """Flow collections nested past ``MAX_YAML_FLOW_DEPTH``: PyYAML's scanner looks at every
    open level for each token, so deeper nesting would cost the square of the file."""


class FlowDepthLimit:
    """A scanner mixin refusing flow collections nested past ``MAX_YAML_FLOW_DEPTH``."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's
        this: Any = self
        if this.flow_level >= MAX_YAML_FLOW_DEPTH:
            raise FlowTooDeep(
                None, None, f"flow collections nested more than {MAX_YAML_FLOW_DEPTH} deep",
                this.get_mark(),
            )  # fmt: skip
        _SCANNER.fetch_flow_collection_start(this, TokenClass)


class _ServerAnchors(FlowDepthLimit, yaml.scanner.Scanner):
    """Anchor and alias names as the server's scanner reads them: any characters up to
    white space or one of ``[]{},`` (PyYAML allows only ASCII letters, digits, ``-`` and
    ``_``); an alias that may be a mapping key also ends before ``: ``."""

    def scan_anchor(self, TokenClass: Any) -> Any:  # noqa: N803 - PyYAML's signature
        this: Any = self
        start_mark = this.get_mark()
        is_alias = this.peek() == "*"
        this.forward()
        possible_key = this.possible_simple_keys.get(this.flow_level)
        ends_at_colon = is_alias and possible_key is not None and possible_key.required
        length = 0
        while True:
            char = this.peek(length)
            if char in _WHITE_BREAK_OR_ZERO or char in "[]{},":
                break
            if ends_at_colon and char == ":" and this.peek(length + 1) in _WHITE_BREAK_OR_ZERO:
                break
            length += 1
        if not length or this.peek(length) not in _WHITE_BREAK_OR_ZERO + "?:,]}%@`":
            raise yaml.scanner.ScannerError(
                "while scanning an anchor or alias", start_mark,
                "found a name containing one of []{},", this.get_mark(),
            )  # fmt: skip
        value = this.prefix(length)
        this.forward(length)
        return TokenClass(value, start_mark, this.get_mark())


class _FragmentParser(yaml.reader.Reader, _ServerAnchors, yaml.parser.Parser):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


class CommentScanner(yaml.reader.Reader, _ServerAnchors, yaml.parser.Parser):
    """PyYAML's scanner and parser, keeping the comments PyYAML drops: each comment is
    handed out just before the event whose making first looked past it."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        self.comments: deque[tuple[int, Comment]] = deque()
        self.flushed: list[Comment] = []

    def scan_to_next_token(self) -> None:
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        found = False
        while not found:
            while self.peek() == " ":
                self.forward()
            if self.peek() == "#":
                start = self.get_mark()
                length = 0
                while self.peek(length) not in "\0\r\n\x85\u2028\u2029":
                    length += 1
                raw = self.prefix(length)
                self.forward(length)
                before = self.buffer[start.pointer - start.column : start.pointer]
                body = raw[1:]
                stripped = body.lstrip(" \t")
                lead = len(body) - len(stripped)
                value = " " * (lead - 1) + stripped if lead > 1 else stripped
                self.comments.append(
                    (start.index, Comment(value, bool(before.strip(" \t")), start.column))
                )
            if _SCANNER.scan_line_break(self):
                if not self.flow_level:
                    self.allow_simple_key = True
            else:
                found = True

    def _flush(self) -> None:
        if self.tokens:
            index = self.tokens[0].start_mark.index
            while self.comments and self.comments[0][0] < index:
                self.flushed.append(self.comments.popleft()[1])

    def check_token(self, *choices: Any) -> bool:
        result = bool(_SCANNER.check_token(self, *choices))
        self._flush()
        return result

    def peek_token(self) -> Any:
        token = _SCANNER.peek_token(self)
        self._flush()
        return token

    def get_token(self) -> Any:
        while self.need_more_tokens():
            self.fetch_more_tokens()
        self._flush()
        return _SCANNER.get_token(self)

    def events(self) -> Iterator[Event | Comment]:
        count = 0
        while self.state is not None:
            event = self.state()
            if isinstance(event, (StreamStartEvent, DocumentStartEvent)):
                yield event  # the server's parser hands these out before pending comments
                yield from self.flushed
                count += len(self.flushed) + 1
                self.flushed = []
                continue
            yield from self.flushed
            count += len(self.flushed) + 1
            self.flushed = []
            yield event
            if count > MAX_YAML_EVENTS:
                raise NotThisFormat(f"more than {MAX_YAML_EVENTS} parse events")
        while self.comments:
            yield self.comments.popleft()[1]


def yaml_events(text: str) -> list[Event | Comment]:
    try:
        return list(CommentScanner(text).events())
    except yaml.YAMLError as exc:
        raise NotThisFormat(describe(exc)) from exc


_QUOTED = re.compile(r"'(?!<)[^']*'|\"[^\"]*\"")


def describe(exc: yaml.YAMLError) -> str:
    """PyYAML's problem and where it is, without the snippet of the file it quotes (or any
    text of it): an earlier feature may have written a secret there."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if not isinstance(problem, str):
        return "not YAML"
    problem = _QUOTED.sub("…", problem)
    if mark is None:
        return problem
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


def fragment_events(value: str) -> list[Event]:
    """The parse events of a value, without stream and document events."""
    parser: Any = _FragmentParser(value)
    events = []
    while parser.check_event():
        event = parser.get_event()
        if not isinstance(
            event, (StreamStartEvent, StreamEndEvent, DocumentStartEvent, DocumentEndEvent)
        ):
            events.append(event)
        if len(events) > MAX_YAML_EVENTS:
            raise NotThisFormat("the value is too large")
    return events
