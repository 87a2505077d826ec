"""PyYAML's emitter made to write what the server's YAML emitter writes for the same events."""

from __future__ import annotations

import io
import re
from typing import Any

import yaml
from yaml.emitter import Emitter, ScalarAnalysis
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from services.builder.features.structured.yaml_scanner import Comment

_DEFAULT_TAGS = {"!": "!", "!!": "tag:yaml.org,2002:"}


def is_printable(char: str) -> bool:
    code = ord(char)
    return (
        code in (0x9, 0xA, 0xD, 0x85)
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
    )  # beyond the BMP the server sees two surrogates, neither printable


BREAKS = "\r\n\x85\u2028\u2029"


class _Analysis(ScalarAnalysis):
    """PyYAML's analysis of a scalar, and whether it holds a single quote."""

    def __init__(self, scalar: str, flags: tuple[bool, ...], has_single_quotes: bool) -> None:
        super().__init__(scalar, *flags)
        self.has_single_quotes = has_single_quotes


class ServerEmitter(Emitter):
    """PyYAML's emitter made to write what the server's does for the same events: its
    choice of scalar styles and tags, sequences indented after a comment, comments."""

    def __init__(self, stream: io.StringIO, indent: int, line_break: str) -> None:
        # The file's most common line ending, CRLF when it has none, as for JSON and XML.
        super().__init__(stream, indent=indent, width=2**31 - 1, allow_unicode=True,
                         line_break=line_break)  # fmt: skip
        self.document_end_written = False

    def emit(self, event: Event | Comment) -> None:
        queue: list[Any] = self.events
        queue.append(event)
        while not self.need_more_events():
            current: Any = queue.pop(0)
            self.event = current
            if isinstance(current, Comment):
                self.write_comment(current)
            else:
                state: Any = self.state
                state()
            self.event = None

    def write_comment(self, comment: Comment) -> None:
        if self.flow_level or self.state in (
            self.expect_first_flow_mapping_key,
            self.expect_first_flow_sequence_item,
        ):
            return
        lines = re.split(r"\r\n|\r|\n", comment.value)
        if comment.inline:
            self.write_raw(" # " + " ".join(lines))
        else:
            for line in lines:
                self.write_indent()
                self.write_raw("# " + line)
                self.write_line_break()
        self.indention = True

    def prepare_anchor(self, anchor: str) -> str:
        # The server writes any name its parser read (PyYAML would refuse most of them).
        if not anchor:
            raise yaml.emitter.EmitterError("anchor must not be empty")
        return anchor

    def write_raw(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data)

    def expect_document_start(self, first: bool = False) -> None:
        event = self.event
        if isinstance(event, DocumentStartEvent):
            custom = {
                handle: prefix
                for handle, prefix in (event.tags or {}).items()
                if _DEFAULT_TAGS.get(handle) != prefix
            }
            implicit = first and not event.explicit
            if not first and not self.document_end_written and (event.version or custom):
                self.write_indicator("...", True)
                self.write_indent()
            if event.version:
                implicit = False
                self.write_indicator("%YAML", True)
                self.write_indicator(f"{event.version[0]}.{event.version[1]}", True)
                self.write_indent()
            self.tag_prefixes = {prefix: handle for handle, prefix in _DEFAULT_TAGS.items()}
            self.tag_prefixes.update({prefix: handle for handle, prefix in custom.items()})
            if custom:
                implicit = False
                for handle, prefix in [*custom.items(), *_DEFAULT_TAGS.items()]:
                    self.write_indicator("%TAG", True)
                    self.write_indicator(handle, True)
                    self.write_indicator(self.prepare_tag_prefix(prefix), True)
                    self.write_indent()
            if self.check_empty_document():
                implicit = False
            if not implicit:
                self.write_indent()
                self.write_indicator("---", True)
            self.document_end_written = False
            self.state = self.expect_document_root
        elif isinstance(event, StreamEndEvent):
            self.write_stream_end()
            self.state = self.expect_nothing
        else:
            raise yaml.emitter.EmitterError(f"expected DocumentStartEvent, but got {event}")

    def expect_document_end(self) -> None:
        if isinstance(self.event, DocumentEndEvent) and self.event.explicit:
            self.document_end_written = True
        super().expect_document_end()

    def check_empty_document(self) -> bool:
        if not isinstance(self.event, DocumentStartEvent) or not self.events:
            return False
        event: Any = self.events[0]
        return isinstance(event, ScalarEvent) and event.value == ""

    def expect_block_mapping_key(self, first: bool = False) -> None:
        if not first and isinstance(self.event, MappingEndEvent):
            super().expect_block_mapping_key(first)
            return
        self.write_indent()
        if self.check_simple_key():
            # The server writes the colon as soon as the key is written, before any
            # comment that comes between the key and its value.
            self.states.append(self.expect_block_mapping_simple_value)
            self.expect_node(mapping=True, simple_key=True)
            self.write_indicator(":", False)
        else:
            self.write_indicator("?", True, indention=True)
            self.states.append(self.expect_block_mapping_value)
            self.expect_node(mapping=True)

    def expect_block_mapping_simple_value(self) -> None:
        self.states.append(self.expect_block_mapping_key)
        self.expect_node(mapping=True)

    def expect_block_sequence(self) -> None:
        self.state = self.expect_first_block_sequence_item

    def expect_first_block_sequence_item(self) -> None:
        # The server settles a sequence's indentation at its first item, after any
        # comment written since its start.
        self.increase_indent(flow=False, indentless=self.mapping_context and not self.indention)
        self.expect_block_sequence_item(first=True)

    def writes_tag(self, event: Any) -> bool:
        if isinstance(event, ScalarEvent):
            return bool(event.tag) and not event.implicit[0] and not event.implicit[1]
        return isinstance(event, CollectionStartEvent) and bool(event.tag) and not event.implicit

    def check_simple_key(self) -> bool:
        event: Any = self.event
        length = 0
        if isinstance(event, (NodeEvent, AliasEvent)) and event.anchor is not None:
            length += len(event.anchor)
        if self.writes_tag(event):
            if self.prepared_tag is None:
                self.prepared_tag = self.prepare_tag(event.tag)
            length += len(self.prepared_tag)
        if isinstance(event, ScalarEvent):
            if self.analysis is None:
                self.analysis = self.analyze_scalar(event.value)
            if self.analysis.multiline:
                return False
            length += len(event.value)
        elif isinstance(event, CollectionStartEvent):
            if not (isinstance(event, SequenceStartEvent) and self.check_empty_sequence()):
                return False
        elif not isinstance(event, AliasEvent):
            return False
        return length <= 1024

    def process_tag(self) -> None:
        event: Any = self.event
        if isinstance(event, ScalarEvent) and self.style is None:
            self.style = self.choose_scalar_style()
        if not self.writes_tag(event):
            self.prepared_tag = None
            return
        if self.prepared_tag is None:
            self.prepared_tag = self.prepare_tag(event.tag)
        if self.prepared_tag:
            self.write_indicator(self.prepared_tag, True)
        self.prepared_tag = None

    def choose_scalar_style(self) -> str:
        event: Any = self.event
        if self.analysis is None:
            self.analysis = self.analyze_scalar(event.value)
        analysis: Any = self.analysis
        style = event.style or ""
        if self.simple_key_context and analysis.multiline:
            style = '"'
        if style == "":
            allowed = analysis.allow_flow_plain if self.flow_level else analysis.allow_block_plain
            if not allowed:
                style = (
                    "'" if analysis.allow_single_quoted and not analysis.has_single_quotes else '"'
                )
            if not event.value and (self.flow_level or self.simple_key_context):
                style = "'"
            if not self.writes_tag(event) and not event.implicit[0]:
                style = "'"
        if style == "'" and not analysis.allow_single_quoted:
            style = '"'
        if style in ("|", ">") and (
            not analysis.allow_block or self.flow_level or self.simple_key_context
        ):
            style = '"'
        return style

    def analyze_scalar(self, scalar: str) -> _Analysis:
        if not scalar:
            null = getattr(self.event, "tag", None) == "tag:yaml.org,2002:null"
            return _Analysis(scalar, (True, False, False, null, not null, True, False), False)
        flow_indicators = block_indicators = scalar.startswith(("---", "..."))
        leading_space = leading_break = trailing_space = trailing_break = False
        leading_quote = break_space = space_break = previous_space = previous_break = False
        line_of_spaces = lines_of_spaces = line_breaks = single_quotes = False
        special = False
        preceded_by_whitespace = True
        last = len(scalar) - 1
        for index, char in enumerate(scalar):
            followed_by_whitespace = index == last or scalar[index + 1] in " \t" + BREAKS
            if index == 0:
                if char in "#,[]{}&*!|>\"%@`'":
                    flow_indicators = block_indicators = True
                    leading_quote = char == "'"
                    single_quotes |= char == "'"
                if char in "?:":
                    flow_indicators = True
                    block_indicators |= followed_by_whitespace
                if char == "-" and followed_by_whitespace:
                    flow_indicators = block_indicators = True
            else:
                if char in ",?[]{}":
                    flow_indicators = True
                if char == ":":
                    flow_indicators = True
                    block_indicators |= followed_by_whitespace
                if char == "#" and preceded_by_whitespace:
                    flow_indicators = block_indicators = True
                single_quotes |= char == "'"
            if not is_printable(char):
                special = True
            if char in BREAKS:
                line_breaks = True
            if char == " ":
                leading_space |= index == 0
                trailing_space |= index == last
                if previous_break:
                    break_space = line_of_spaces = True
                previous_space, previous_break = True, False
            elif char in BREAKS:
                leading_break |= index == 0
                trailing_break |= index == last
                space_break |= previous_space
                lines_of_spaces |= line_of_spaces
                previous_space, previous_break = False, True
            else:
                previous_space = previous_break = line_of_spaces = False
            preceded_by_whitespace = char in " \t" + BREAKS
        flow_plain = block_plain = single = block = True
        if leading_space or leading_break or trailing_space or trailing_break or leading_quote:
            flow_plain = block_plain = False
        if trailing_space:
            block = False
        if break_space or space_break or special:
            flow_plain = block_plain = single = False
        if lines_of_spaces:
            block = False
        if line_breaks:
            flow_plain = block_plain = False
        if flow_indicators:
            flow_plain = False
        if block_indicators:
            block_plain = False
        flags = (False, line_breaks, flow_plain, block_plain, single, True, block)
        return _Analysis(scalar, flags, single_quotes)

    def write_plain(self, text: str, split: bool = True) -> None:
        if not text:
            if not self.whitespace:
                self.write_raw(" ")
            self.whitespace = self.indention = False
            return
        super().write_plain(text, split)
        self.open_ended = False

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        self.write_indicator('"', True)
        chunks = []
        for char in text:
            if is_printable(char) and char not in BREAKS + '"\\':
                chunks.append(char)
            elif char in self.ESCAPE_REPLACEMENTS and char != "\t":
                chunks.append("\\" + self.ESCAPE_REPLACEMENTS[char])
            elif ord(char) <= 0xFF:
                chunks.append(f"\\x{ord(char):02X}")
            elif ord(char) <= 0xFFFF:
                chunks.append(f"\\u{ord(char):04X}")
            else:
                chunks.append(f"\\U{ord(char):08X}")
        self.write_raw("".join(chunks))
        self.write_indicator('"', False)

    def determine_block_hints(self, text: str) -> str:
        hints = ""
        if text and text[0] in " " + BREAKS:
            hints += str(self.best_indent)
        if not text or text[-1] not in BREAKS:
            hints += "-"
        elif len(text) >= 2 and text[-2] in BREAKS:
            hints += "+"
        return hints
