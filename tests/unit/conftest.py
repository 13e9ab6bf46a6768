"""Real helpers for unit tests that need them: a throwaway Redis and a prompt cache.

Redis listens on a unix socket only (`--port 0`): no TCP port to race for with the
integration stacks that may run on the same machine, and nothing persisted.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ccserver.prompts import Prompts


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


@pytest.fixture
async def redis(redis_socket: Path) -> AsyncIterator[Redis]:
    """A client of the session's Redis, emptied for each test."""
    client = Redis(unix_socket_path=str(redis_socket))
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Prompts:
    """One prompt cache for the session: each text is spoken by espeak-ng once."""
    return Prompts(tmp_path_factory.mktemp("prompts"))
