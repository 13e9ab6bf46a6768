"""Secrets generated at first start and kept in the run dir — never defaults, never in git.

One JSON file, mode 0600, holding the ARI password, the AMI secret, one SIP password per
phone and per agent's browser desk (`web<id>`), one login PIN per agent (6 digits, typed
on a phone keypad after `*11`) and the REST API's bearer tokens (`admin`, `supervisor`,
`alertmanager` for the stack's Alertmanager posting to the alert webhook, and `agent:<id>`
for each agent). New phones and agents get theirs when they first appear, as does a token
this version adds to an older file; existing secrets never change behind a running stack's
back.
"""

from __future__ import annotations

import json
import os
import secrets as _random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ccserver.config import SUPERVISOR_TOKENS, browser_phone, supervisor_phone
from ccserver.errors import ConfigError

FILE_NAME = "secrets.json"
ALERTMANAGER_TOKEN_NAME = "alertmanager"
"""The name (a key of `api_tokens`, not a secret) of the token the stack's Alertmanager
presents to the controller's alert webhook; the token itself is generated at set-up."""


def _token() -> str:
    return _random.token_urlsafe(24)


@dataclass
class Secrets:
    ari_user: str = "ccserver"
    ari_password: str = field(default_factory=_token)
    ami_user: str = "ccserver"
    ami_secret: str = field(default_factory=_token)
    agent_passwords: dict[str, str] = field(default_factory=dict)
    """SIP password per phone (PJSIP endpoint) id."""
    agent_pins: dict[str, str] = field(default_factory=dict)
    api_tokens: dict[str, str] = field(default_factory=dict)
    """Token name (`admin`, `supervisor`, `alertmanager`, `agent:<id>`) → bearer token."""

    def ensure_agents(self, phone_ids: list[str], agent_ids: list[str] | None = None) -> bool:
        """Give every listed phone, every agent's browser desk and every supervisor token's
        browser phone a SIP password, every agent a PIN and an API token, and make the
        admin, supervisor and alertmanager tokens; return True when something was added."""
        agents = phone_ids if agent_ids is None else agent_ids
        browsers = [browser_phone(a) for a in agents]
        browsers += [supervisor_phone(name) for name in SUPERVISOR_TOKENS]
        added = _fill(self.agent_passwords, [*phone_ids, *browsers], _token)
        added |= _fill(self.agent_pins, agents, _pin)
        names = ["admin", "supervisor", ALERTMANAGER_TOKEN_NAME, *(f"agent:{a}" for a in agents)]
        added |= _fill(self.api_tokens, names, _token)
        return added


def _pin() -> str:
    return f"{_random.randbelow(10**6):06d}"


def _fill(table: dict[str, str], keys: list[str], make: Callable[[], str]) -> bool:
    missing = [k for k in keys if k not in table]
    for key in missing:
        table[key] = make()
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


def load_or_create(
    run_dir: Path, phone_ids: list[str], agent_ids: list[str] | None = None
) -> Secrets:
    """Return the run dir's secrets, generating what is missing, and keep the file 0600."""
    file = path_in(run_dir)
    loaded = load(run_dir) if file.exists() else None
    current = loaded or Secrets()
    if current.ensure_agents(phone_ids, agent_ids) or loaded is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(current), out, indent=2, sort_keys=True)
        os.replace(tmp, file)
    os.chmod(file, 0o600)
    return current
