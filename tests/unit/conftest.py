"""Real helpers for unit tests that need them: a client of the throwaway Redis
(`redis_socket`, tests/conftest.py), a prompt cache and a history file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ccserver.history import History
from ccserver.prompts import Prompts


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


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    """A history store in a file of the test's own."""
    store = History(tmp_path / "history.sqlite")
    yield store
    store.close()
