"""The planning commands' PNG plots: one figure with one set of axes, drawn without a
display (matplotlib's Agg canvas, imported when a plot is made: the commands that draw
none do not load it), written where the user asked or refused with a clear error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ccserver.errors import InputError


@contextlib.contextmanager
def png(path: Path, width_in: float) -> Iterator[Any]:
    """Axes to draw on (4 in tall); the figure is written to `path` when the block ends."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, 4), layout="constrained")
    FigureCanvasAgg(fig)
    yield fig.add_subplot()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the plot ({exc.strerror})") from None
