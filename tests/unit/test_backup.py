"""Backup and restore with the real parts: a history file written by `History`, the test
session's Redis (its snapshot by BGSAVE), generated secrets; the restored Redis state is
loaded by a real redis-server started on the restored run dir as the stack configures it.
A cut, edited or incomplete archive is refused with its reason and the target untouched."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ccserver import backup
from ccserver import secrets as secrets_mod
from ccserver.backup import BackupError
from ccserver.cli import main
from ccserver.config import Config
from ccserver.history import History


@pytest.fixture
def center(tmp_path: Path) -> Config:
    """A run dir as a center leaves it: history with two calls, secrets, a license file, a
    recording; and flows beside it."""
    config = Config.model_validate({"stack": {"run_dir": str(tmp_path / "run")}})
    run_dir = config.run_dir
    history = History(run_dir / "history.sqlite")
    for n in (1, 2):
        history.save_call({"id": f"c{n}", "caller": "138", "arrived_at": 1_800_000_000.0 + n})
    history.close()
    secrets_mod.load_or_create(run_dir, ["1001"])
    (run_dir / "license.json").write_text('{"license": "as issued"}')
    recordings = run_dir / "asterisk" / "spool" / "recording"
    recordings.mkdir(parents=True)
    (recordings / "call-c1.wav").write_bytes(b"RIFF" + bytes(range(256)) * 40)
    return config


@pytest.fixture
def client(redis_socket: Path) -> Iterator[redis.Redis]:
    client = redis.Redis(unix_socket_path=str(redis_socket))
    client.flushdb()
    client.hset("ccserver:agents", "1001", "ready")
    yield client
    client.flushdb()
    client.close()


def _redis_on(folder: Path) -> Iterator[redis.Redis]:
    """A redis-server on a restored run dir's redis/, configured as the stack's."""
    socket = folder / "redis.sock"
    argv = ["redis-server", "--port", "0", "--unixsocket", str(socket), "--dir", str(folder)]
    proc = subprocess.Popen([*argv, "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "redis did not start"
            time.sleep(0.02)
        with redis.Redis(unix_socket_path=str(socket)) as restored:
            yield restored
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_backup_restores_into_an_empty_run_dir_with_everything_in_its_place(
    center: Config, client: redis.Redis, tmp_path: Path
) -> None:
    archive = tmp_path / "backups" / "center.tar.gz"
    made = backup.backup(center, archive, client)
    assert set(made.files) >= {"history.sqlite", "redis/dump.rdb", "license.json", "secrets.json"}
    assert "recordings/call-c1.wav" in made.files and "flows/ivr/95598.yaml" in made.files
    assert "flows/outbound/followup.yaml" in made.files and not made.sealed_secrets
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the secrets
    assert backup.verify(archive).files == made.files

    target = tmp_path / "elsewhere" / "run"
    backup.restore(archive, target, center)
    restored = History(target / "history.sqlite")
    try:
        assert [c["call_id"] for c in restored.calls()] == ["c1", "c2"]
    finally:
        restored.close()
    assert secrets_mod.load(target) == secrets_mod.load(center.run_dir)
    assert (target / "license.json").read_text() == '{"license": "as issued"}'
    wav = target / "asterisk" / "spool" / "recording" / "call-c1.wav"
    assert (
        wav.read_bytes() == (center.run_dir / "asterisk/spool/recording/call-c1.wav").read_bytes()
    )
    assert (target / "restored" / "flows" / "ivr" / "95598.yaml").is_file()
    for restored_redis in _redis_on(target / "redis"):
        assert restored_redis.hget("ccserver:agents", "1001") == b"ready"


def test_secrets_under_a_passphrase_need_it_back(
    center: Config, client: redis.Redis, tmp_path: Path
) -> None:
    archive = tmp_path / "sealed.tar.gz"
    made = backup.backup(center, archive, client, passphrase="correct horse")
    assert made.sealed_secrets and "secrets.json" not in made.files
    with tarfile.open(archive) as tar:
        sealed = tar.extractfile("secrets.json.enc")
        assert sealed is not None and b"api_tokens" not in sealed.read()
    for passphrase, slug in ((None, "passphrase-required"), ("wrong", "passphrase-wrong")):
        with pytest.raises(BackupError) as refused:
            backup.restore(archive, tmp_path / "t", center, passphrase=passphrase)
        assert refused.value.slug == slug and not (tmp_path / "t").exists()
    backup.restore(archive, tmp_path / "t", center, passphrase="correct horse")
    assert secrets_mod.load(tmp_path / "t") == secrets_mod.load(center.run_dir)


def _rewrite(archive: Path, target: Path, change: dict[str, bytes | None]) -> None:
    """Copy an archive, replacing (or dropping, with None) some members' bytes."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            handle = source.extractfile(member)
            data = handle.read() if handle is not None else b""
            if member.name in change:
                if change[member.name] is None:
                    continue
                data = change[member.name] or b""
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))


@pytest.fixture
def archive(center: Config, client: redis.Redis, tmp_path: Path) -> Path:
    made = tmp_path / "good.tar.gz"
    backup.backup(center, made, client)
    return made


def test_a_cut_archive_is_refused_and_the_target_untouched(
    archive: Path, center: Config, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(BackupError, match="cannot be read to the end") as refused:
        backup.restore(cut, target, center)
    assert refused.value.slug == "archive-corrupt" and list(target.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "slug", "words"),
    [
        ({"license.json": b'{"license": "edited"}'}, "archive-corrupt", "license.json differs"),
        ({"recordings/call-c1.wav": None}, "archive-incomplete", "missing recordings/call-c1.wav"),
        ({"manifest.json": None}, "archive-incomplete", "no manifest.json"),
        ({"manifest.json": b"{"}, "archive-corrupt", "the manifest cannot be read"),
    ],
)
def test_an_edited_or_incomplete_archive_is_refused_with_its_reason(
    archive: Path,
    center: Config,
    tmp_path: Path,
    change: dict[str, bytes | None],
    slug: str,
    words: str,
) -> None:
    edited = tmp_path / "edited.tar.gz"
    _rewrite(archive, edited, change)
    for attempt in (
        lambda: backup.verify(edited),
        lambda: backup.restore(edited, tmp_path / "t", center),
    ):
        with pytest.raises(BackupError, match=words) as refused:
            attempt()
        assert refused.value.slug == slug
    assert not (tmp_path / "t").exists()


def test_an_archive_from_a_newer_schema_is_refused(archive: Path, tmp_path: Path) -> None:
    with tarfile.open(archive) as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        manifest = json.loads(handle.read())
    manifest["history_schema"] += 1
    newer = tmp_path / "newer.tar.gz"
    _rewrite(archive, newer, {"manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(BackupError, match="restore it with a newer ccserver") as refused:
        backup.verify(newer)
    assert refused.value.slug == "archive-newer"


def test_a_run_dir_in_use_is_not_restored_into(archive: Path, center: Config) -> None:
    before = sorted(p.name for p in center.run_dir.iterdir())
    with pytest.raises(BackupError, match="not empty") as refused:
        backup.restore(archive, center.run_dir, center)
    assert refused.value.slug == "restore-target-not-empty"
    assert sorted(p.name for p in center.run_dir.iterdir()) == before


def test_the_commands_verify_and_refuse_with_exit_2(
    archive: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CCSERVER_CONFIG", raising=False)
    assert main(["restore", str(archive), "--verify"]) == 0
    assert "is whole" in capsys.readouterr().out
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(gzip.compress(b"not a tar"))
    assert main(["restore", str(junk), "--verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error[archive-corrupt]: ") and "Traceback" not in err
