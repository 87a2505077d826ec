"""``GET /api/v1/docs``: the OpenAPI document of ``/api/v1`` as a page for people.

The page is rendered once per application, from the same document ``/api/v1/openapi.json``
serves, into plain HTML whose stylesheet the registry serves too: a deployment without
internet access shows it whole, and the page runs no script at all (its
Content-Security-Policy allows only what the registry itself serves). Every text taken from
the document is escaped, even though the document is the product's own: summaries quote
patterns such as ``<id>.<version>``. The page is an operation of the management API's table
(``management.routes``), public as the document is; :func:`install` renders it and serves
the stylesheet, which is no operation of the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from html import escape
from typing import Any

from aiohttp import web

DOCS_PATH = "/api/v1/docs"
STYLESHEET_PATH = "/assets/api-docs.css"
OPENAPI_LINK = "/api/v1/openapi.json"
CONTENT_SECURITY_POLICY = "default-src 'self'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
}
METHODS = ("get", "put", "post", "patch", "delete")
SCHEMA_PREFIX = "#/components/schemas/"
# Constraints shown beside a type, in this order, with how each reads.
CONSTRAINTS = (
    ("format", "format {}"),
    ("pattern", "matches {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minimum", "minimum {}"),
    ("maximum", "maximum {}"),
    ("maxProperties", "at most {} entries"),
)


page_key = web.AppKey("api_docs_page", bytes)


def install(app: web.Application, document: Mapping[str, Any]) -> None:
    """Render the page of ``document`` for :func:`docs_page`, and serve its stylesheet."""
    app[page_key] = render_page(document).encode()
    app.router.add_get(STYLESHEET_PATH, docs_stylesheet)


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[page_key],
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


async def docs_stylesheet(request: web.Request) -> web.Response:
    return web.Response(
        text=STYLESHEET, content_type="text/css", charset="utf-8", headers=SECURITY_HEADERS
    )


def render_page(document: Mapping[str, Any]) -> str:
    info = document.get("info", {})
    title = f"{info.get('title', 'API')} (version {info.get('version', '?')})"
    operations = list(_operations(document))
    schemas: Mapping[str, Any] = document.get("components", {}).get("schemas", {})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f'<link rel="stylesheet" href="{escape(STYLESHEET_PATH)}">',
        "</head><body><main>",
        f"<h1>{escape(title)}</h1>",
        "<p>Requests take HTTP Basic credentials (a username with its password or one of its "
        "API keys) or a bearer token from <code>/auth/token</code>, unless marked public. "
        f'The machine-readable description is <a href="{escape(OPENAPI_LINK)}">'
        f"{escape(OPENAPI_LINK)}</a>.</p>",
        '<nav aria-label="operations"><h2>Operations</h2><ul class="toc">',
        *(
            f'<li><a href="#{_anchor(method, path)}">{_method_badge(method)} '
            f"<code>{escape(path)}</code></a> {escape(op.get('summary', ''))}</li>"
            for method, path, op in operations
        ),
        "</ul></nav>",
        *(_operation_section(method, path, op) for method, path, op in operations),
        '<section id="schemas"><h2>Schemas</h2>',
        *(_schema_section(name, schema) for name, schema in schemas.items()),
        "</section></main></body></html>",
    ]
    return "\n".join(parts)


def _operations(document: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def _anchor(method: str, path: str) -> str:
    return "op-" + re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")


def _method_badge(method: str) -> str:
    return f'<span class="method method-{escape(method)}">{escape(method.upper())}</span>'


def _operation_section(method: str, path: str, op: Mapping[str, Any]) -> str:
    public = op.get("security") == []
    parts = [
        f'<section class="operation" id="{_anchor(method, path)}">',
        f"<h3>{_method_badge(method)} <code>{escape(path)}</code>"
        + (' <span class="public">public</span>' if public else "")
        + "</h3>",
        f"<p>{escape(op.get('summary', ''))}</p>",
    ]
    parameters = op.get("parameters", [])
    if parameters:
        parts.append("<h4>Parameters</h4>")
        parts.append(
            _table(
                ("name", "in", "required", "schema", "description"),
                (
                    (
                        f"<code>{escape(p['name'])}</code>",
                        escape(p.get("in", "")),
                        "yes" if p.get("required") else "no",
                        _schema_html(p.get("schema", {})),
                        escape(p.get("description", "")),
                    )
                    for p in parameters
                ),
            )
        )
    body = op.get("requestBody")
    if body is not None:
        required = "required" if body.get("required") else "optional"
        parts.append(f"<h4>Request body ({required})</h4>")
        parts.append(_content_html(body.get("content", {})))
    parts.append("<h4>Responses</h4>")
    parts.append(
        _table(
            ("status", "description", "body"),
            (
                (
                    f"<code>{escape(status)}</code>",
                    escape(response.get("description", "")),
                    _content_html(response.get("content", {})),
                )
                for status, response in op.get("responses", {}).items()
            ),
        )
    )
    parts.append("</section>")
    return "\n".join(parts)


def _content_html(content: Mapping[str, Any]) -> str:
    if not content:
        return "none"
    return "<br>".join(
        f"<code>{escape(media_type)}</code>: {_schema_html(value.get('schema', {}))}"
        for media_type, value in content.items()
    )


def _schema_section(name: str, schema: Mapping[str, Any]) -> str:
    return (
        f'<section class="schema" id="{_schema_anchor(name)}"><h3>{escape(name)}</h3>'
        f"{_schema_html(schema)}</section>"
    )


def _schema_anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9]+", "-", name)


def _schema_html(schema: Mapping[str, Any]) -> str:
    """A schema as people read one: its type and constraints, and an object's fields as a
    table (nested objects nest); a reference is a link to the schema's own section."""
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith(SCHEMA_PREFIX):
        name = reference.removeprefix(SCHEMA_PREFIX)
        return f'<a href="#{_schema_anchor(name)}">{escape(name)}</a>'
    summary = _type_text(schema)
    notes = [template.format(schema[key]) for key, template in CONSTRAINTS if key in schema]
    if "enum" in schema:
        notes.append("one of " + ", ".join(json.dumps(value) for value in schema["enum"]))
    if "examples" in schema:
        notes.append("e.g. " + ", ".join(json.dumps(value) for value in schema["examples"]))
    text = f'<span class="type">{escape(summary)}</span>'
    if notes:
        text += f' <span class="notes">({escape("; ".join(str(n) for n in notes))})</span>'
    if schema.get("description"):
        text += f" — {escape(str(schema['description']))}"
    properties: Mapping[str, Any] = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        text += _table(
            ("field", "required", "schema"),
            (
                (
                    f"<code>{escape(field)}</code>",
                    "yes" if field in required else "no",
                    _schema_html(value),
                )
                for field, value in properties.items()
            ),
        )
        if schema.get("additionalProperties") is False:
            text += '<p class="notes">No other fields are accepted.</p>'
    elif isinstance(schema.get("additionalProperties"), Mapping):
        text += f"<div>each value: {_schema_html(schema['additionalProperties'])}</div>"
    items = schema.get("items")
    if isinstance(items, Mapping):
        text += f"<div>items: {_schema_html(items)}</div>"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            choices = "".join(f"<li>{_schema_html(choice)}</li>" for choice in schema[key])
            text += f"<ul>{choices}</ul>"
    return text


def _type_text(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if isinstance(kind, str):
        return kind
    if "oneOf" in schema or "anyOf" in schema:
        return "one of"
    return "any value"


def _table(headings: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table of cells already escaped (or built of escaped parts)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# Kept in the module rather than a file beside it: an installed package (the container's)
# carries its Python modules whatever its packaging says about other files.
STYLESHEET = """\
:root { color-scheme: light dark; --line: #8884; --muted: #777; }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h1 { font-size: 1.6rem; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.1rem; margin: 0 0 .4rem; }
h4 { margin: 1rem 0 .3rem; font-size: .95rem; }
code { font: .9em ui-monospace, monospace; overflow-wrap: anywhere; }
a { color: inherit; }
.toc { list-style: none; padding: 0; }
.toc li { margin: .15rem 0; }
.toc a { text-decoration: none; }
.operation, .schema { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem;
  margin: 1rem 0; }
.method { display: inline-block; min-width: 4.2rem; text-align: center; border-radius: 4px;
  font: bold .8rem ui-monospace, monospace; padding: .1rem .3rem; color: #fff; }
.method-get { background: #2f6f9f; }
.method-post { background: #2f7f4f; }
.method-put, .method-patch { background: #8a6a1f; }
.method-delete { background: #9f3f3f; }
.public { font-size: .75rem; border: 1px solid var(--line); border-radius: 4px;
  padding: 0 .3rem; }
table { border-collapse: collapse; margin: .3rem 0; width: 100%; }
th, td { border: 1px solid var(--line); padding: .25rem .5rem; text-align: left;
  vertical-align: top; }
th { font-weight: 600; }
td table { font-size: .95em; }
.type { font-family: ui-monospace, monospace; }
.notes { color: var(--muted); }
"""
