"""Suite-wide checks and fixtures.

`make test` sets ACD_CORE_REQUIRE_EXTENSION=1: then the run fails at once if the compiled
router did not load, instead of silently testing the pure twin twice.

`redis_socket` is a throwaway Redis for unit and property tests: it listens on a unix socket
only (`--port 0`), so there is no TCP port to race for with the integration stacks that may
run on the same machine, and nothing is persisted.

Hypothesis's profiles (`ci` for `make test`, `fuzz` for `make fuzz`) are registered here
from `tests/fuzzing.py`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import acd_core
from tests import fuzzing

TWINS = ["python", "cython"]
fuzzing.register_profiles()


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


@pytest.fixture(scope="session")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A redis-server of its own for the test session; its unix socket's path."""
    workdir = tmp_path_factory.mktemp("redis")
    socket = workdir / "redis.sock"
    argv = ["redis-server", "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"redis-server did not start (exit {proc.poll()})")
        time.sleep(0.02)
    yield socket
    proc.terminate()
    proc.wait(timeout=10)
