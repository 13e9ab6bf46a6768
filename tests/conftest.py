"""Suite-wide checks and fixtures.

`make test` sets ACD_CORE_REQUIRE_EXTENSION=1: then the run fails at once if the compiled
router did not load, instead of silently testing the pure twin twice.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

import acd_core

TWINS = ["python", "cython"]


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("ACD_CORE_REQUIRE_EXTENSION") == "1" and acd_core.IMPLEMENTATION != "cython":
        raise pytest.UsageError(
            "ACD_CORE_REQUIRE_EXTENSION=1 but acd_core loaded the pure-Python twin: "
            "the Cython router was not built (see the pip install output)"
        )


def compiled_available() -> bool:
    return importlib.util.find_spec("acd_core._router") is not None


@pytest.fixture(params=TWINS)
def router_cls(request: pytest.FixtureRequest) -> type[acd_core.RouterAPI]:
    """Each acd_core test runs against both twins."""
    if request.param == "cython" and not compiled_available():
        pytest.skip("acd_core._router is not compiled here (make test requires it)")
    return acd_core.load(request.param)
