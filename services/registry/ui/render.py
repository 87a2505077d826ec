"""HTML pages from the templates beside this module, escaped by default.

Every value a template shows may be tenant text (repository names, tags, labels, logs):
autoescaping is on for every template and nothing is marked safe.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from services.registry.ui.sessions import SignedIn

TEMPLATES = Path(__file__).parent / "templates"
signed_in_key = web.RequestKey("ui_signed_in", SignedIn)
templates_key = web.AppKey("ui_templates", jinja2.Environment)
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = human_size
    env.filters["moment"] = moment
    return env


def human_size(size: int) -> str:
    """Bytes as people read them: 1536 is 1.5 KiB."""
    if size < 1024:
        return f"{size} B"
    value, step = float(size) / 1024, 1
    while value >= 1024 and step < len(_UNITS) - 1:
        value, step = value / 1024, step + 1
    return f"{value:.1f} {_UNITS[step]}"


def moment(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """``template`` rendered for the signed-in caller (if any), with what every page needs."""
    signed_in = request.get(signed_in_key)
    html = (
        request.app[templates_key]
        .get_template(template)
        .render(
            username=None if signed_in is None else signed_in.principal.username,
            csrf_token=None if signed_in is None else signed_in.csrf_token,
            **context,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
