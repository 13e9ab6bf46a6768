"""Secrets generated at first start and kept in the run dir — never defaults, never in git.

One JSON file, mode 0600, holding the ARI password, the AMI secret and one SIP password per
agent. New agents get a password when they first appear; existing secrets never change
behind a running stack's back.
"""

from __future__ import annotations

import json
import os
import secrets as _random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ccserver.errors import ConfigError

FILE_NAME = "secrets.json"


def _token() -> str:
    return _random.token_urlsafe(24)


@dataclass
class Secrets:
    ari_user: str = "ccserver"
    ari_password: str = field(default_factory=_token)
    ami_user: str = "ccserver"
    ami_secret: str = field(default_factory=_token)
    agent_passwords: dict[str, str] = field(default_factory=dict)

    def ensure_agents(self, agent_ids: list[str]) -> bool:
        """Give every listed agent a password; return True when something was added."""
        missing = [a for a in agent_ids if a not in self.agent_passwords]
        for agent_id in missing:
            self.agent_passwords[agent_id] = _token()
        return bool(missing)


def path_in(run_dir: Path) -> Path:
    return run_dir / FILE_NAME


def load(run_dir: Path) -> Secrets:
    """Read the run dir's secrets; a missing file is an error (the stack was never set up)."""
    file = path_in(run_dir)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return Secrets(**data)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no secrets yet; run `ccserver stack up` first") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{file}: unreadable secrets file ({exc}); move it away to regenerate"
        ) from None


def load_or_create(run_dir: Path, agent_ids: list[str]) -> Secrets:
    """Return the run dir's secrets, generating what is missing, and keep the file 0600."""
    file = path_in(run_dir)
    loaded = load(run_dir) if file.exists() else None
    current = loaded or Secrets()
    if current.ensure_agents(agent_ids) or loaded is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(current), out, indent=2, sort_keys=True)
        os.replace(tmp, file)
    os.chmod(file, 0o600)
    return current
