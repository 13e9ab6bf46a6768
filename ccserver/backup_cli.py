"""The `backup` and `restore` commands (docs/operations.md).

    ccserver backup /backups/ccserver-$(date +%F).tar.gz [--passphrase-file FILE]
    ccserver restore ARCHIVE --verify            # check an archive, change nothing
    ccserver restore ARCHIVE [--run-dir DIR] [--passphrase-file FILE]

`backup` runs beside the live center (Redis must be up: its snapshot comes from it);
`restore` fills an empty or new run dir, to be started with `ccserver stack up`. A
passphrase is read from a file (or $CCSERVER_BACKUP_PASSPHRASE), never from the command
line, where `ps` would show it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import redis

from ccserver import backup
from ccserver import config as config_mod
from ccserver.errors import InputError

PASSPHRASE_ENV = "CCSERVER_BACKUP_PASSPHRASE"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backup` and `restore` to the `ccserver` command line."""
    b = sub.add_parser("backup", help="archive the center while it runs (docs/operations.md)")
    b.add_argument("dest", metavar="ARCHIVE", type=Path, help="the .tar.gz to write")
    b.add_argument("--config", metavar="FILE", help="TOML file (default: ./ccserver.toml)")
    b.add_argument("--passphrase-file", metavar="FILE", type=Path, help="encrypt the secrets")
    b.set_defaults(func=_backup)

    r = sub.add_parser("restore", help="check an archive, or restore it into an empty run dir")
    r.add_argument("archive", metavar="ARCHIVE", type=Path)
    r.add_argument("--config", metavar="FILE", help="TOML file (default: ./ccserver.toml)")
    r.add_argument("--run-dir", metavar="DIR", type=Path, help="default: the configured one")
    r.add_argument("--verify", action="store_true", help="only check the archive")
    r.add_argument("--passphrase-file", metavar="FILE", type=Path, help="opens the secrets")
    r.set_defaults(func=_restore)


def _passphrase(args: argparse.Namespace) -> str | None:
    file: Path | None = args.passphrase_file
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{file}: cannot be read ({exc})") from None
        if not text:
            raise InputError(f"{file}: is empty")
        return text
    return os.environ.get(PASSPHRASE_ENV) or None


def _config_file(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("CCSERVER_CONFIG") or config_mod.DEFAULT_FILE)


def _backup(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config)
    client = redis.Redis(host=config.stack.bind, port=config.redis.port, socket_timeout=10)
    try:
        manifest = backup.backup(
            config,
            args.dest,
            client,
            passphrase=_passphrase(args),
            config_file=_config_file(args),
        )
    finally:
        client.close()
    sealed = " (secrets encrypted)" if manifest.sealed_secrets else ""
    print(
        f"backup {args.dest}: {len(manifest.files)} file(s), "
        f"{manifest.total_bytes} bytes before compression{sealed}"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    if args.verify:
        manifest = backup.verify(args.archive)
        print(f"archive {args.archive} is whole: {len(manifest.files)} file(s) match its manifest")
        return 0
    config = config_mod.load(args.config)
    run_dir = (args.run_dir or config.run_dir).expanduser().resolve()
    manifest = backup.restore(args.archive, run_dir, config, passphrase=_passphrase(args))
    print(
        f"restored {len(manifest.files)} file(s) into {run_dir}; the configuration and flows "
        f"are in {run_dir / 'restored'}; start it with `ccserver stack up`"
    )
    return 0
