"""What the record commands (`orders`, `campaigns`) share: who a change is recorded as,
how a value and a moment are printed, and a plain table."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
from typing import Any


def who(args: argparse.Namespace) -> str:
    """`--by`, or `cli:<login name>`."""
    return str(args.by or f"cli:{getpass.getuser()}")


def text(value: Any) -> str:
    """A value in a table cell: "-" for none, a list as words."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "-"
    return str(value)


def when(epoch: float) -> str:
    """A moment in the terminal's time zone, with its offset."""
    return dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def table(rows: list[list[str]]) -> None:
    """Print rows (the first is the header) in columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
