"""No secret leaks out of the files that must hold it: after a real stack has taken calls,
keypad PIN logins (right and wrong) and REST API requests (tokens right and wrong, a PIN in
a body), every secret of its secrets.json is looked for in every file of its run dir and in
every file git tracks (or would add). Only the files listed in HOLDERS may contain them, and
those are 0600.

Tokens and passwords are 32 random characters: any hit is a leak. PINs are 6 digits, which
the run dir's binary stores and timestamps contain by chance (a float's 6 decimals), so a PIN
is looked for where a leak would show: after a `pin` label anywhere, and as a whole number
in the controller's log and the API audit log (millisecond timestamps there).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccserver import secrets as secrets_mod
from ccserver.secrets import Secrets
from tests.integration.conftest import ONE_QUEUE, LiveStack, start_stack
from tests.unit.test_security import repo_files

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ACD = {
    **ONE_QUEUE,
    "agents": [
        {"id": "1001", "skills": {"general": 5}, "phone": "2001"},
        {"id": "1002", "skills": {"general": 5}, "phone": "2002", "auto_login": True},
    ],
}
HOLDERS = {
    "secrets.json": {"ari_password", "ami_secret", "agent_passwords", "agent_pins", "api_tokens"},
    "asterisk/etc/ari.conf": {"ari_password"},  # ARI's user, so the controller can log in
    "asterisk/etc/manager.conf": {"ami_secret"},  # AMI's user, likewise
    "asterisk/etc/pjsip.conf": {"agent_passwords"},  # the phones' digest credentials
}
"""Run-dir files allowed to hold secrets (paths relative to the run dir), and which."""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("leak"), {"answer": ["2001", "2002"]}, acd=ACD)


@pytest.fixture(scope="module")
def used(live: LiveStack) -> Secrets:
    """The stack after real use of every secret; its secrets."""
    sec = live.secrets()
    pin = sec.agent_pins["1001"]
    wrong = f"{(int(pin) + 1) % 10**6:06d}"
    live.press("2001", "*111001*" + wrong, [1500])  # a wrong PIN, dialled at once
    live.press("2001", "*11", [2500, "1001#", 2500, pin + "#", 1000])  # typed after prompts
    assert live.agent("1001")["state"] == "ready"
    live.place_calls(2, talk_ms=1000, rate=2.0)
    for name in sec.api_tokens.keys() - {
        secrets_mod.ALERTMANAGER_TOKEN_NAME
    }:  # that one: only the webhook's
        assert live.api("GET", "/whoami", token=name)[0] == 200
    state = "/agents/1001/state"
    assert live.api("POST", state, {"action": "logout"}, token="agent:1001")[0] == 200
    status, body = live.api("POST", state, {"action": "login", "pin": wrong}, token="agent:1001")
    assert (status, body["error"]) == (403, "pin-invalid")
    body = {"action": "login", "pin": pin, "phone": "2001"}
    assert live.api("POST", state, body, token="agent:1001")[0] == 200
    return sec


def _long_secrets(sec: Secrets) -> dict[str, str]:
    """Secret value → the secrets.json field it belongs to (tokens, passwords)."""
    found = {sec.ari_password: "ari_password", sec.ami_secret: "ami_secret"}
    found |= {v: "agent_passwords" for v in sec.agent_passwords.values()}
    found |= {v: "api_tokens" for v in sec.api_tokens.values()}
    assert all(len(v) >= 32 for v in found)
    return found


def _labelled_pin(pin: str) -> re.Pattern[bytes]:
    return re.compile(rb"(?i)pin[\"'\s:=]{1,4}" + pin.encode() + rb"(?![0-9])")


def _run_dir_files(run_dir: Path) -> list[Path]:
    """Every regular file under the run dir, not following the links into shared dirs
    (sounds, MOH, Asterisk's documentation)."""
    return [p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink()]


def test_secrets_stay_in_the_files_that_must_hold_them(live: LiveStack, used: Secrets) -> None:
    run_dir = live.config.run_dir
    long = _long_secrets(used)
    leaks = []
    files = _run_dir_files(run_dir)
    for path in files:
        data = path.read_bytes()
        allowed = HOLDERS.get(str(path.relative_to(run_dir)), set())
        leaks += [
            f"{path.relative_to(run_dir)}: {field}"
            for value, field in long.items()
            if field not in allowed and value.encode() in data
        ]
        if "agent_pins" not in allowed:
            leaks += [
                f"{path.relative_to(run_dir)}: PIN of {agent} after a label"
                for agent, pin in used.agent_pins.items()
                if _labelled_pin(pin).search(data)
            ]
    print(f"searched {len(files)} run-dir files for {len(long)} tokens/passwords")
    assert len(files) > 20 and leaks == []
    # The holders hold what they must (the list is not stale) and only their owner reads them.
    for name, fields in HOLDERS.items():
        holder = run_dir / name
        assert stat.S_IMODE(holder.stat().st_mode) == 0o600, name
        data = holder.read_bytes()
        held = {field for value, field in long.items() if value.encode() in data}
        assert held == fields - {"agent_pins"}, name


def test_no_pin_appears_in_the_controller_log_or_the_audit_log(
    live: LiveStack, used: Secrets
) -> None:
    log_dir = live.config.run_dir / "log"
    audit = log_dir / "api-audit.jsonl"
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    # Where a PIN would have been: the login bodies are audited, redacted.
    assert audit.read_text().count('"pin": "***"') == 2
    for name in ("controller.log", "api-audit.jsonl"):
        text = (log_dir / name).read_text()
        for agent, pin in used.agent_pins.items():
            assert not re.search(rf"(?<![0-9]){pin}(?![0-9])", text), (name, agent)
    assert (
        "event=agent.pin_wrong agent=1001 source=phone:2001"
        in (log_dir / "controller.log").read_text()
    )


def test_no_secret_of_this_stack_is_in_a_file_git_tracks_or_would_add(used: Secrets) -> None:
    """Catches a test or tool writing secrets into the repository (a recorded transcript,
    a doc example pasted from a live stack). The developer stack's var/secrets.json, when
    there is one, is searched for too: it lives longest, so it is the likeliest to leak."""
    files = repo_files()
    sets = [used]
    if secrets_mod.path_in(REPO / "var").is_file():
        sets.append(secrets_mod.load(REPO / "var"))
    leaks = []
    for path in files:
        data = path.read_bytes()
        for sec in sets:
            leaks += [f"{path}: {f}" for v, f in _long_secrets(sec).items() if v.encode() in data]
            leaks += [
                f"{path}: PIN of {agent} after a label"
                for agent, pin in sec.agent_pins.items()
                if _labelled_pin(pin).search(data)
            ]
    print(f"searched {len(files)} repository files for {len(sets)} stacks' secrets")
    assert len(files) > 100 and leaks == []
