"""How commands print: rich tables for people, plain JSON (``--json``) for scripts.

Tables go to stdout through one rich Console that falls back to plain text off a terminal, so
``faasbus list | grep`` works; JSON is printed with :func:`print_json` exactly as parsed (no
colours, one document). Errors never come through here: ``__main__`` prints them to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = [
    "console",
    "print_json",
    "print_pairs",
    "print_table",
    "read_stdin",
    "stdin_is_terminal",
    "write_bytes",
]


def console() -> Console:
    """A console on the current stdout (looked up per call: click's test runner swaps it)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def print_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(table)


def print_pairs(pairs: Mapping[str, object]) -> None:
    width = max((len(key) for key in pairs), default=0)
    out = console()
    for key, value in pairs.items():
        label = escape(f"{key + ':':<{width + 1}}")
        text = escape("" if value is None else str(value))
        out.print(f"[bold]{label}[/bold] {text}")


def stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def read_stdin() -> bytes:
    """All of stdin as bytes (empty when there is no stdin)."""
    if sys.stdin is None:
        return b""
    data: bytes = sys.stdin.buffer.read()
    return data


def write_bytes(data: bytes) -> None:
    """Raw bytes to stdout (function responses are not necessarily text)."""
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
