"""A JSON document a command line names: a file, or ``-`` for standard input, read up to a
size (what a command is handed is small; anything larger is a mistake)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class JsonFileError(Exception):
    """Why the document could not be read, in words that follow its name."""


def read_json_file(source: Path, max_bytes: int) -> Any:
    try:
        if str(source) == "-":
            raw = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with source.open("rb") as handle:
                raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise JsonFileError(f": {exc.strerror or exc}") from exc
    if len(raw) > max_bytes:
        raise JsonFileError(f" is larger than {max_bytes} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise JsonFileError(f" is not JSON: {exc}") from exc
