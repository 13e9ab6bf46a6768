"""Workforce commands (placeholder until the workforce module lands)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    del sub
