"""An IVR mix: the CSV of key sequences that load callers walk the IVR with.

One row a caller (load_caller.xml's injection file): `branch;queue;wait1;keys1;wait2;keys2;
wait3;keys3`, each wait in ms counted from the previous step (the answer, then the previous
keys' start), a step with empty keys skipped. The first line names SIPp's order (RANDOM or
SEQUENTIAL); lines starting with `#` are comments.

The harness needs to know how long a row keeps its caller in the IVR, to size a run: the
waits up to its last keys, the keys themselves (SIPp's play_dtmf: `KEY_LEAD_MS` of lead-in,
then one tone every `KEY_MS`), then the prompt the flow plays before the queue
(`AFTER_KEYS_S`, "connecting you"). A row without keys goes straight to a queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ccserver.errors import InputError

ORDERS = ("RANDOM", "SEQUENTIAL", "USER")
KEY_LEAD_MS = 400
KEY_MS = 400
AFTER_KEYS_S = 14.0
"""After a row's last keys, until the caller is in the queue: the 95598 flow's longest
"connecting you" prompt is 6.4 s, after a fault report's order number read back (about
4 s for a 3-digit number); the rest is room for the menu to take the keys."""
COLUMNS = 8


@dataclass(frozen=True)
class Row:
    branch: str
    queue: str
    steps: tuple[tuple[int, str], ...]
    """(wait ms, keys) of each step with keys."""

    @property
    def ivr_s(self) -> float:
        """How long this row keeps its caller in the IVR before it reaches a queue."""
        if not self.steps:
            return 0.0
        waits = sum(wait for wait, _ in self.steps)
        last = self.steps[-1][1]
        return (waits + KEY_LEAD_MS + KEY_MS * len(last)) / 1000 + AFTER_KEYS_S


@dataclass(frozen=True)
class Mix:
    path: Path
    order: str
    rows: tuple[Row, ...]

    @property
    def longest_ivr_s(self) -> float:
        return max((row.ivr_s for row in self.rows), default=0.0)

    @property
    def branches(self) -> list[str]:
        """The branches in the order they first appear."""
        return list(dict.fromkeys(row.branch for row in self.rows))


def read(path: Path) -> Mix:
    """Parse a mix; InputError naming the file, line and what is wrong."""
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        message = f"--mix {path}: cannot be read ({exc.strerror})"
        raise InputError(message, slug="loadtest-invalid") from None
    problems: list[str] = []
    order = lines[0].strip() if lines else ""
    if order not in ORDERS:
        problems.append(f"line 1: {order!r} is not one of {', '.join(ORDERS)}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        row = _row(line, number, problems)
        if row is not None:
            rows.append(row)
    if not rows and not problems:
        problems.append("no rows (one row a caller: branch;queue;wait1;keys1;…)")
    if problems:
        raise InputError(f"--mix {path}: " + "; ".join(problems), slug="loadtest-invalid")
    return Mix(path, order, tuple(rows))


def _row(line: str, number: int, problems: list[str]) -> Row | None:
    fields = line.split(";")
    if len(fields) < COLUMNS:
        problems.append(f"line {number}: {len(fields)} fields, want {COLUMNS}")
        return None
    steps = []
    for wait_text, keys in zip(fields[2:COLUMNS:2], fields[3:COLUMNS:2], strict=True):
        try:
            wait = int(wait_text)
        except ValueError:
            problems.append(f"line {number}: wait {wait_text!r} is not a number of ms")
            return None
        if keys:
            steps.append((wait, keys))
    return Row(fields[0], fields[1], tuple(steps))
