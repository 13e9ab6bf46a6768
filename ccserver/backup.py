"""Backup and restore of a center: one archive, made while the center runs.

An archive (`.tar.gz`) holds:
- `history.sqlite` — the history store, through SQLite's online backup API (a consistent
  copy while the controller writes);
- `redis/dump.rdb` — Redis (queues, agents, calls in progress), a consistent RDB from
  `BGSAVE`;
- `recordings/…` — the call recordings (one being written at that moment is cut there);
- `license.json` — the license in force; `secrets.json` — the generated secrets, or
  `secrets.json.enc` when a passphrase is given (AES-256-GCM, key from scrypt);
- `config/ccserver.toml` and `flows/ivr/…`, `flows/outbound/…` — the configuration file
  and the flows, for the operator to put back (they are not placed by a restore);
- `manifest.json`, last: the format, when, the history's schema version, and every other
  file's size and SHA-256.

Invariants: `verify` reads the whole archive and refuses it — with the reason — when it
cannot be read to the end, lacks its manifest, or any file is missing, extra, or differs
from the manifest. `restore` verifies first, decrypts the secrets in memory, and builds the
run dir beside the target before renaming it into place: a refused restore leaves the
target untouched, and it only restores into a run dir that is empty or absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ccserver import secrets as secrets_mod
from ccserver.config import Config
from ccserver.errors import CCServerError
from ccserver.history import SCHEMA_VERSION

FORMAT = 1
MANIFEST = "manifest.json"
HISTORY = "history.sqlite"
REDIS_RDB = "redis/dump.rdb"
LICENSE = "license.json"
SECRETS = "secrets.json"
SECRETS_SEALED = "secrets.json.enc"
SEAL_MAGIC = b"CCSB1"
BGSAVE_TIMEOUT_S = 120.0
AOF_BASE = "appendonly.aof.1.base.rdb"
"""How Redis 7 names the base of its multi-part append-only file: a restored RDB becomes
that base, since a Redis with `appendonly yes` ignores a bare dump.rdb at start."""


class BackupError(CCServerError):
    """An archive that cannot be trusted, or a backup or restore that cannot be done."""

    slug = "archive-corrupt"
    status = 400


@dataclass(frozen=True)
class Manifest:
    format: int
    created_at: float
    history_schema: int
    sealed_secrets: bool
    files: dict[str, dict[str, Any]]  # archive path -> {"size", "sha256"}

    def to_json(self) -> bytes:
        data = {
            "format": self.format,
            "created_at": self.created_at,
            "history_schema": self.history_schema,
            "sealed_secrets": self.sealed_secrets,
            "files": self.files,
        }
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @property
    def total_bytes(self) -> int:
        return sum(int(f["size"]) for f in self.files.values())


# --- backup --------------------------------------------------------------------------------
def backup(
    config: Config,
    dest: Path,
    client: redis.Redis,
    *,
    passphrase: str | None = None,
    config_file: Path | None = None,
) -> Manifest:
    """Write the center's archive to `dest` (via a temporary file: a failed backup leaves
    no half archive). `client` reaches the center's Redis, which must be up."""
    run_dir = config.run_dir
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".backup-") as staging:
        stage = Path(staging)
        history = run_dir / config.controller.history_db
        if history.exists():
            _copy_history(history, stage / HISTORY)
        _redis_snapshot(client, stage / REDIS_RDB)
        recordings = run_dir / "asterisk" / "spool" / "recording"
        for wav in sorted(recordings.glob("*")) if recordings.is_dir() else []:
            if wav.is_file():
                _copy(wav, stage / "recordings" / wav.name)
        license_file = config.license.resolved_path(run_dir)
        if license_file.is_file():
            _copy(license_file, stage / LICENSE)
        secrets_file = secrets_mod.path_in(run_dir)
        if secrets_file.is_file():
            plain = secrets_file.read_bytes()
            if passphrase is None:
                _write(stage / SECRETS, plain)
            else:
                _write(stage / SECRETS_SEALED, seal(plain, passphrase))
        if config_file is not None and config_file.is_file():
            _copy(config_file, stage / "config" / "ccserver.toml")
        for kind, folder in (
            ("ivr", config.ivr.resolved_flows_dir()),
            ("outbound", config.outbound.resolved_flows_dir()),
        ):
            for flow in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
                _copy(flow, stage / "flows" / kind / flow.name)
        files = {
            path.relative_to(stage).as_posix(): {"size": path.stat().st_size, "sha256": _sum(path)}
            for path in sorted(stage.rglob("*"))
            if path.is_file()
        }
        manifest = Manifest(FORMAT, time.time(), SCHEMA_VERSION, SECRETS_SEALED in files, files)
        partial = dest.with_name(dest.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for name in files:
                tar.add(stage / name, arcname=name, recursive=False)
            info = tarfile.TarInfo(MANIFEST)
            body = manifest.to_json()
            info.size, info.mtime, info.mode = len(body), int(manifest.created_at), 0o600
            tar.addfile(info, io.BytesIO(body))
        os.chmod(partial, 0o600)  # it holds the secrets
        os.replace(partial, dest)
    return manifest


def _copy_history(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    except sqlite3.Error as exc:
        raise BackupError(
            f"{source}: the history cannot be copied: {exc}", slug="backup-failed"
        ) from None
    finally:
        dst.close()
        src.close()


def _redis_snapshot(client: redis.Redis, target: Path) -> None:
    """A consistent RDB of the center's Redis: BGSAVE (scheduled after an append-only
    rewrite that is running), wait until Redis counts one more snapshot, copy its file."""
    try:
        saves = int(client.info("persistence")["rdb_saves"])
        client.bgsave(schedule=True)
        deadline = time.monotonic() + BGSAVE_TIMEOUT_S
        while True:
            info = client.info("persistence")
            if int(info["rdb_saves"]) > saves and not info["rdb_bgsave_in_progress"]:
                break
            if time.monotonic() > deadline:
                raise BackupError("Redis did not finish its snapshot in time", slug="backup-failed")
            time.sleep(0.05)
        if info["rdb_last_bgsave_status"] != "ok":
            raise BackupError("Redis could not write its snapshot", slug="backup-failed")
        folder = str(client.config_get("dir")["dir"])
        name = str(client.config_get("dbfilename")["dbfilename"])
    except redis.RedisError as exc:
        raise BackupError(
            f"Redis cannot be reached for its snapshot ({exc}): is the stack up?",
            slug="redis-unavailable",
        ) from None
    _copy(Path(folder) / name, target)


# --- verify --------------------------------------------------------------------------------
def verify(archive: Path) -> Manifest:
    """Read the whole archive and check it against its manifest; the manifest, or
    BackupError with the reason."""
    found, body = _scan(archive)
    if body is None:
        raise BackupError(
            f"{archive}: no {MANIFEST} (the archive is incomplete: cut short?)",
            slug="archive-incomplete",
        )
    manifest = _parse_manifest(archive, body)
    expected, present = set(manifest.files), set(found)
    if expected - present:
        missing = ", ".join(sorted(expected - present))
        raise BackupError(f"{archive}: missing {missing}", slug="archive-incomplete")
    if present - expected:
        extra = ", ".join(sorted(present - expected))
        raise BackupError(f"{archive}: files the manifest does not list: {extra}")
    for name in sorted(expected):
        want = manifest.files[name]
        if found[name] != (want["size"], want["sha256"]):
            raise BackupError(f"{archive}: {name} differs from the manifest (size or SHA-256)")
    return manifest


def _scan(archive: Path) -> tuple[dict[str, tuple[int, str]], bytes | None]:
    """One pass over the archive: every file but the manifest as (size, SHA-256), and the
    manifest's bytes (None when it has none)."""
    found: dict[str, tuple[int, str]] = {}
    manifest: bytes | None = None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = _safe_name(archive, member)
                if not member.isfile():
                    raise BackupError(f"{archive}: {name} is not a regular file")
                if name in found or (name == MANIFEST and manifest is not None):
                    raise BackupError(f"{archive}: {name} is in it twice")
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file
                if name == MANIFEST:
                    manifest = handle.read()
                    continue
                digest, size = hashlib.sha256(), 0
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                found[name] = (size, digest.hexdigest())
    except FileNotFoundError:
        raise BackupError(f"{archive}: no such file", slug="archive-unknown") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(
            f"{archive}: cannot be read to the end ({exc}): corrupt or cut short"
        ) from None
    return found, manifest


def _parse_manifest(archive: Path, body: bytes) -> Manifest:
    try:
        data = json.loads(body)
        files = {
            str(name): {"size": int(entry["size"]), "sha256": str(entry["sha256"])}
            for name, entry in data["files"].items()
        }
        manifest = Manifest(
            int(data["format"]),
            float(data["created_at"]),
            int(data["history_schema"]),
            bool(data["sealed_secrets"]),
            files,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"{archive}: the manifest cannot be read ({exc!r})") from None
    if manifest.format != FORMAT:
        raise BackupError(f"{archive}: format {manifest.format}; this ccserver reads {FORMAT}")
    if manifest.history_schema > SCHEMA_VERSION:
        raise BackupError(
            f"{archive}: its history has schema {manifest.history_schema}, newer than this "
            f"ccserver's {SCHEMA_VERSION}: restore it with a newer ccserver",
            slug="archive-newer",
        )
    return manifest


def _safe_name(archive: Path, member: tarfile.TarInfo) -> str:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"{archive}: unsafe path {member.name!r} in it")
    return path.as_posix()


# --- restore -------------------------------------------------------------------------------
def restore(
    archive: Path, run_dir: Path, config: Config, *, passphrase: str | None = None
) -> Manifest:
    """Bring an archive back into `run_dir` (empty or absent): the history, Redis (as the
    base of its append-only file), recordings, license and secrets where the stack looks
    for them; the configuration file and flows under `restored/` for the operator."""
    manifest = verify(archive)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise BackupError(
            f"{run_dir} is not empty: restore into an empty or new run dir",
            slug="restore-target-not-empty",
        )
    places = _places(config, run_dir)
    sealed = SECRETS_SEALED in manifest.files
    if sealed and passphrase is None:
        raise BackupError(
            f"{archive}: its secrets are encrypted: give the passphrase",
            slug="passphrase-required",
        )
    building = run_dir.with_name(f".{run_dir.name}.restoring")
    shutil.rmtree(building, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = _safe_name(archive, member)
                if name == MANIFEST:
                    continue
                handle = tar.extractfile(member)
                assert handle is not None  # verified: regular files only
                data = handle.read()
                if name == SECRETS_SEALED:
                    name, data = SECRETS, unseal(data, passphrase or "")
                target = building / _place(places, name).relative_to(run_dir)
                _write(target, data, private=name in (SECRETS, LICENSE))
        aof = building / places[REDIS_RDB].relative_to(run_dir).parent
        if (aof / AOF_BASE).exists():
            _write(aof / "appendonly.aof.manifest", f"file {AOF_BASE} seq 1 type b\n".encode())
        if run_dir.exists():
            run_dir.rmdir()  # empty, checked above
        building.rename(run_dir)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{archive}: restoring failed ({exc}); {run_dir} is untouched") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return manifest


def _places(config: Config, run_dir: Path) -> dict[str, Path]:
    """Where each fixed member of an archive goes under `run_dir`."""
    return {
        HISTORY: run_dir / config.controller.history_db.name,
        REDIS_RDB: run_dir / "redis" / "appendonlydir" / AOF_BASE,
        LICENSE: run_dir / "license.json",
        SECRETS: secrets_mod.path_in(run_dir),
    }


def _place(places: dict[str, Path], name: str) -> Path:
    run_dir = places[LICENSE].parent
    if name in places:
        return places[name]
    if name.startswith("recordings/"):
        return run_dir / "asterisk" / "spool" / "recording" / PurePosixPath(name).name
    return run_dir / "restored" / name  # config/…, flows/…


# --- secrets under a passphrase ------------------------------------------------------------
def seal(plain: bytes, passphrase: str) -> bytes:
    """AES-256-GCM under a key from scrypt(passphrase, a random salt)."""
    salt, nonce = os.urandom(16), os.urandom(12)
    return SEAL_MAGIC + salt + nonce + AESGCM(_key(passphrase, salt)).encrypt(nonce, plain, None)


def unseal(sealed: bytes, passphrase: str) -> bytes:
    if not sealed.startswith(SEAL_MAGIC) or len(sealed) < len(SEAL_MAGIC) + 28:
        raise BackupError("the encrypted secrets are not in a format this ccserver reads")
    body = sealed[len(SEAL_MAGIC) :]
    salt, nonce, cipher = body[:16], body[16:28], body[28:]
    try:
        return AESGCM(_key(passphrase, salt)).decrypt(nonce, cipher, None)
    except InvalidTag:
        raise BackupError(
            "the passphrase does not open the archive's secrets", slug="passphrase-wrong"
        ) from None


def _key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


# --- files ---------------------------------------------------------------------------------
def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _write(target: Path, data: bytes, *, private: bool = True) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    if private:
        os.chmod(target, 0o600)


def _sum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
