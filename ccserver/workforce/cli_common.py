"""What the workforce commands share: `--format table|json` output, and the staffing
targets (`--sl`/`--asa`, `--aht`, `--target`, occupancy, shrinkage)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any


def jsonable(value: Any) -> Any:
    """JSON has no infinity: an infinite patience or ASA is written as the string "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def emit(args: argparse.Namespace, data: dict[str, Any], lines: Sequence[str]) -> int:
    if args.format == "json":
        print(json.dumps(jsonable(data), indent=2, default=str, allow_nan=False))
    else:
        for line in lines:
            print(line)
    return 0


def with_format(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--format", choices=["table", "json"], default="table")
    return p


def pct(x: float) -> str:
    return f"{x * 100:.2f} %"


def add_targets(p: argparse.ArgumentParser, require_aht: bool = True) -> None:
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--sl", type=float, default=0.8, help="service level goal (0.8)")
    goal.add_argument("--asa", type=float, help="ASA goal, s (instead of --sl)")
    if require_aht:
        p.add_argument("--aht", type=float, default=180.0, help="average handling time, s")
        p.add_argument("--target", type=float, default=20.0, help="answer target, s (20)")
    p.add_argument("--max-occupancy", type=float, help="cap on occupancy, e.g. 0.85")
    p.add_argument("--shrinkage", type=float, default=0.0, help="share off the phones (0)")
