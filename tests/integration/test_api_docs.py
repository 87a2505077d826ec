"""``GET /api/v1/docs``: the management API's description as a page for people, served by the
registry with everything it needs, public like the document, every operation on it, and
every text from the document escaped."""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser

import requests

from services.registry.management import docs
from services.registry.management.routes import DOCUMENT, OPERATIONS
from tests.support.processes import Registry


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def test_the_page_lists_every_operation_without_credentials_and_fetches_nothing_else(
    registry: Registry,
) -> None:
    response = requests.get(f"{registry.url}{docs.DOCS_PATH}", timeout=10)  # no credentials
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == "default-src 'self'"
    page = response.text

    for op in OPERATIONS:
        section = re.search(
            rf'<section class="operation" id="{docs._anchor(op.method.lower(), op.path)}">'
            r"(.*?)</section>",
            page,
            re.S,
        )
        assert section is not None, (op.method, op.path)
        text = section.group(1)
        assert f">{op.method}</span> <code>{escape(op.path)}</code>" in text
        assert escape(op.summary) in text
        described = DOCUMENT["paths"][op.path][op.method.lower()]
        for parameter in described.get("parameters", []):
            assert f"<code>{escape(parameter['name'])}</code>" in text, parameter
        for status in described["responses"]:
            assert f"<code>{status}</code>" in text, status
        if op.body is not None:
            assert f'href="#schema-{op.body}"' in text  # the request body's schema, linked
    for name in DOCUMENT["components"]["schemas"]:
        assert f'<section class="schema" id="schema-{name}">' in page

    tags = tags_of(page)
    assert all(tag != "script" and "style" not in attrs for tag, attrs in tags)
    # Every link stays on the registry; the only thing the page loads is its stylesheet.
    links = [attrs["href"] for tag, attrs in tags if "href" in attrs]
    assert all(href and href.startswith(("#", "/")) for href in links), links
    loaded = [attrs.get("href") for tag, attrs in tags if tag == "link"]
    assert loaded == [docs.STYLESHEET_PATH]
    assert not [attrs for _, attrs in tags if "src" in attrs]

    stylesheet = requests.get(f"{registry.url}{docs.STYLESHEET_PATH}", timeout=10)
    assert stylesheet.status_code == 200
    assert stylesheet.headers["Content-Type"] == "text/css; charset=utf-8"
    assert "url(" not in stylesheet.text and "@import" not in stylesheet.text


def test_every_text_of_the_document_is_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    document = {
        "info": {"title": hostile, "version": "1"},
        "paths": {
            "/api/v1/things/{thing}": {
                "get": {
                    "summary": hostile,
                    "parameters": [
                        {
                            "name": hostile,
                            "in": "path",
                            "schema": {"type": "string", "pattern": "^<a>$"},
                            "description": hostile,
                        }
                    ],
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": f"x/{hostile}"}}}
                    },
                    "responses": {"200": {"description": hostile}},
                }
            }
        },
        "components": {
            "schemas": {
                hostile: {
                    "type": "object",
                    "properties": {hostile: {"type": "string", "enum": [hostile]}},
                    "description": hostile,
                }
            }
        },
    }
    page = docs.render_page(document)
    assert "<script" not in page and "<a>" not in page
    assert escape(hostile) in page
    assert not [tag for tag, _ in tags_of(page) if tag == "script"]
