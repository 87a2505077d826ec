"""The docker strategy's adapter, without an engine: how it logs what the engine streams."""

from __future__ import annotations

from services.builder.docker_engine import _Lines
from services.builder.redaction import Masker


def test_output_is_logged_in_whole_lines_so_a_split_secret_is_still_masked() -> None:
    secret = "hunter2-very-secret"
    masker = Masker([secret])
    logged: list[str] = []
    lines = _Lines(lambda line: logged.append(masker.mask(line)))
    for piece in ("Step 2/2 : RUN cat /app.conf\n", "password=hun", "ter2-very-", "secret\nend"):
        lines.add(piece)
    lines.add(None)
    lines.flush()
    assert logged == ["Step 2/2 : RUN cat /app.conf", "password=********", "end"]


def test_a_line_without_an_end_is_logged_once_it_is_long() -> None:
    logged: list[str] = []
    lines = _Lines(logged.append)
    lines.add("x" * (_Lines.LIMIT + 1))
    assert logged == ["x" * (_Lines.LIMIT + 1)]
    lines.flush()
    assert len(logged) == 1
