"""Markdown and MarkdownToHtml: Markdown as the deployment server's Markdig pipeline
(CommonMark, pipe tables, the emphasis extras and autolinks) writes it as HTML.

markdown-it-py is CommonMark as Markdig is: a list may follow a paragraph line, two spaces
nest a list, ``"`` in text is ``&quot;``. What Markdig adds is added here: ``~~del~~``,
``~sub~``, ``^sup^``, ``++ins++``, ``==mark==``, bare ``http://``/``www.`` links, and table
alignment written as Markdig writes it.

The value is the tenant's, and markdown-it's work per character is large (a run of ``![``
re-scans link labels to its nesting limit), so a value longer than MAX_MARKDOWN characters
fails, as does a document whose table rows leave more than MAX_FILLED_CELLS cells for the
parser to fill in (a header of many columns and rows of one cell each make that many cells
from a few characters)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import mdTrim
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_block.table import escapedSplit, getLine
from markdown_it.rules_block.table import table as markdown_it_table
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.rules_inline.state_inline import Delimiter
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from services.builder.features.filters.dotnet import DOTNET_WHITESPACE
from services.builder.features.filters.errors import FilterFailed

MAX_MARKDOWN = 64 * 1024  # characters of one value
MAX_FILLED_CELLS = 16 * 1024  # table cells the parser fills in, in one document

# --- the emphasis extras -------------------------------------------------------------------

# Marker, the width of a delimiter, and the element: a run of another width is text.
_EXTRAS = (("^", 1, "sup"), ("+", 2, "ins"), ("=", 2, "mark"))


def _extra_tokenizer(marker: str, width: int) -> Callable[[StateInline, bool], bool]:
    def tokenize(state: StateInline, silent: bool) -> bool:
        if silent or state.src[state.pos] != marker:
            return False
        scanned = state.scanDelims(state.pos, True)
        token = state.push("text", "", 0)
        token.content = marker * scanned.length
        if scanned.length == width:
            state.delimiters.append(
                Delimiter(
                    marker=ord(marker),
                    length=0,  # no "rule of three"
                    token=len(state.tokens) - 1,
                    end=-1,
                    open=scanned.can_open,
                    close=scanned.can_close,
                )
            )
        state.pos += scanned.length
        return True

    return tokenize


def _extra_pairer(marker: str, tag: str) -> Callable[[StateInline], None]:
    def pair(delimiters: Sequence[Delimiter], tokens: list[Token]) -> None:
        for delimiter in delimiters:
            if delimiter.marker != ord(marker) or delimiter.end == -1:
                continue
            opener, closer = tokens[delimiter.token], tokens[delimiters[delimiter.end].token]
            opener.type, opener.nesting = f"{tag}_open", 1
            closer.type, closer.nesting = f"{tag}_close", -1
            for token in (opener, closer):
                token.tag, token.markup, token.content = tag, token.content, ""

    def post_process(state: StateInline) -> None:
        pair(state.delimiters, state.tokens)
        for meta in state.tokens_meta:
            if meta and "delimiters" in meta:
                pair(meta["delimiters"], state.tokens)

    return post_process


# --- autolinks -----------------------------------------------------------------------------

# Markdig's AutoLinks: after white space, the start, or one of *_~( ; up to white space or
# '<', without the punctuation that ends a sentence.
_AUTOLINK = re.compile(r"(?:(?<=^)|(?<=[\s*_~(]))((?:https?://|ftp://|mailto:|tel:|www\.)[^\s<]+)")
_TRAILING = ".,:;!?\"')]*_~"


def _autolinks(state: StateCore) -> None:
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        in_link = 0
        for token in block.children:
            if token.type in ("link_open", "link_close"):
                in_link += 1 if token.type == "link_open" else -1
            if token.type != "text" or in_link or not _AUTOLINK.search(token.content):
                children.append(token)
                continue
            children.extend(_split_links(state.md, token))
        block.children = children


def _split_links(md: MarkdownIt, token: Token) -> list[Token]:
    pieces: list[Token] = []
    text, position = token.content, 0
    for match in _AUTOLINK.finditer(text):
        if match.start() < position:
            continue
        url = match.group(1).rstrip(_TRAILING)
        if url.lower() in ("www.", "mailto:", "tel:") or url.endswith("://"):
            continue
        href = "http://" + url if url.lower().startswith("www.") else url
        pieces.append(_text(text[position : match.start(1)]))
        link = Token("link_open", "a", 1, attrs={"href": md.normalizeLink(href)})
        pieces += [link, _text(url), Token("link_close", "a", -1)]
        position = match.start(1) + len(url)
    pieces.append(_text(text[position:]))
    return [piece for piece in pieces if piece.type != "text" or piece.content]


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


# --- tables ------------------------------------------------------------------------------

_FILLED = "spacedock_filled_cells"  # in the parser's env: cells filled in so far


def _bounded_table(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """markdown-it's table rule, after counting, as it reads them, the cells its rows leave
    empty: it writes every row with as many cells as the header has."""
    if silent or not markdown_it_table(state, start, end, True):  # no table, or only a look
        return silent and markdown_it_table(state, start, end, True)
    columns = _cells(getLine(state, start))
    terminators = state.md.block.ruler.getRules("blockquote")
    parent, state.parentType = state.parentType, "table"
    filled: int = state.env.get(_FILLED, 0)
    try:
        line = start + 2
        while line < end and state.sCount[line] >= state.blkIndent:
            if any(rule(state, line, end, True) for rule in terminators):
                break
            text = getLine(state, line)
            if not mdTrim(text) or state.is_code_block(line):
                break
            filled += max(0, columns - _cells(text))
            if filled > MAX_FILLED_CELLS:
                raise FilterFailed(
                    f"Markdown: tables leave more than {MAX_FILLED_CELLS} cells empty"
                )
            line += 1
    finally:
        state.parentType = parent
    state.env[_FILLED] = filled
    return markdown_it_table(state, start, end, silent)


def _cells(line: str) -> int:
    """The cells of a table row as markdown-it splits it."""
    columns = escapedSplit(mdTrim(line))
    if columns and columns[0] == "":
        columns.pop(0)
    if columns and columns[-1] == "":
        columns.pop()
    return len(columns)


# --- rendering ----------------------------------------------------------------------------


def _tilde_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return "<sub>" if tokens[idx].markup == "~" else "<del>"


def _tilde_close(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return "</sub>" if tokens[idx].markup == "~" else "</del>"


def _aligned_cell(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    style = str(token.attrs.get("style", ""))
    if style.startswith("text-align:"):
        token.attrs["style"] = f"text-align: {style.removeprefix('text-align:')};"
    return self.renderToken(tokens, idx, options, env)


def _pipeline() -> MarkdownIt:
    options: dict[str, Any] = {"strikethrough_single_tilde": True}
    md = MarkdownIt("commonmark", options).enable(["table", "strikethrough"])
    md.block.ruler.at("table", _bounded_table, {"alt": ["paragraph", "reference"]})
    for marker, width, tag in _EXTRAS:
        md.inline.ruler.before("emphasis", f"markdig_{tag}", _extra_tokenizer(marker, width))
        md.inline.ruler2.before("emphasis", f"markdig_{tag}", _extra_pairer(marker, tag))
    md.core.ruler.push("markdig_autolinks", _autolinks)
    md.add_render_rule("s_open", _tilde_open)
    md.add_render_rule("s_close", _tilde_close)
    md.add_render_rule("th_open", _aligned_cell)
    md.add_render_rule("td_open", _aligned_cell)
    return md


_MARKDIG = _pipeline()


def markdown_to_html(value: str | None, args: tuple[str, ...]) -> str | None:
    """Block HTML as Markdig writes it (every block ends with a newline), then one more
    newline, as Octostache adds."""
    if value is None or args:
        return None
    if len(value) > MAX_MARKDOWN:
        raise FilterFailed(f"Markdown: the value is longer than {MAX_MARKDOWN} characters")
    html: str = _MARKDIG.render(value.strip(DOTNET_WHITESPACE), {})
    return html + "\n"
