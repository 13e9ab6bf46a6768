"""Hypothesis profiles for the fuzz and property tests, and the settings they share.

Two profiles, registered here and chosen on the command line (`--hypothesis-profile`):

- `ci` (pyproject's addopts, so `make test`): reproducible. The seed is fixed
  (`--hypothesis-seed=0` in addopts: every run draws the same inputs), and every failing
  example `make fuzz` ever saved is replayed first from `tests/fuzz-examples/`, read-only.
  (Hypothesis's own `derandomize=True` would switch the example database off, so the
  profile fixes the seed instead.)
- `fuzz` (`make fuzz`): long random campaigns, `FUZZ_SCALE` times the examples, any seed;
  a failing example is saved into `tests/fuzz-examples/`. Commit that directory's new files
  together with the fix, and CI replays them from then on.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ReadOnlyDatabase

EXAMPLES = Path(__file__).resolve().parent / "fuzz-examples"
FUZZ_SCALE = 20


def register_profiles() -> None:
    """Make `ci` and `fuzz` known; tests/conftest.py calls this before Hypothesis's pytest
    plugin loads the profile named on the command line."""
    saved = DirectoryBasedExampleDatabase(EXAMPLES)
    settings.register_profile("ci", database=ReadOnlyDatabase(saved), print_blob=True)
    settings.register_profile("fuzz", database=saved, print_blob=True)


def scale() -> int:
    """How many times its base number of examples a test draws under the current profile."""
    return FUZZ_SCALE if settings.get_current_profile_name() == "fuzz" else 1


def fuzz(examples: int, *, live: bool = False) -> settings:
    """`examples` random inputs (times `scale()`), no deadline: the inputs are CPU-heavy
    and the box is shared. `live`: every health check off, for tests that send each input
    to a live stack."""
    checks = (
        list(HealthCheck) if live else [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
    )
    return settings(max_examples=examples * scale(), deadline=None, suppress_health_check=checks)
