"""What the record commands (`orders`, `campaigns`) share: their common options, the
history file they open, who a change is recorded as, how a value and a moment are
printed, and a plain table."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
from pathlib import Path
from typing import Any

from ccserver import config as config_mod
from ccserver.history import History


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, about: str, by: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The command `name` with --config, --db and --by (`by` says what it records); its
    actions are added to what this returns."""
    p = sub.add_parser(name, help=about)
    p.add_argument("--config", metavar="FILE", help="TOML file (default: ./ccserver.toml)")
    p.add_argument("--db", metavar="PATH", help="history store (default: the configured one)")
    p.add_argument("--by", metavar="NAME", help=f"{by} (cli:<login name>)")
    return p.add_subparsers(dest="action", metavar="ACTION", required=True)


def history(args: argparse.Namespace, config: config_mod.Config) -> History:
    """The history store of `--db`, else the configured one."""
    return History(Path(args.db) if args.db else config.run_dir / config.controller.history_db)


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
