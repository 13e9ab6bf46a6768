"""The security promises that need no stack (docs/security.md): check-config is loud about a
bind beyond loopback; every API route has a least role and every lower role's refusal is
exercised by tests/unit/test_api.py; the keypad PIN guard locks a phone out; and no file in
git looks like it holds a real secret."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ccserver import config
from ccserver.acd import LOCKOUT_S, AcdError, PinGuard
from ccserver.api.auth import Role
from ccserver.api.routes import ROUTES
from ccserver.cli import bind_warnings
from tests.unit import test_api

REPO = Path(__file__).resolve().parents[2]


# --- check-config and the bind address -----------------------------------------------------
def _check_config(tmp_path: Path, toml: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "ccserver.toml").write_text(toml)
    return subprocess.run(
        [sys.executable, "-m", "ccserver", "check-config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_a_loopback_bind_draws_no_warning(tmp_path: Path) -> None:
    result = _check_config(tmp_path, "[stack]\nbind = '127.0.0.1'\n")
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr


def test_a_public_bind_is_warned_about_loudly_on_stderr_but_exits_0(tmp_path: Path) -> None:
    """Exit 0 on purpose: a center whose phones sit on other machines binds so by design,
    and a check that always fails would teach operators to ignore it. The warning names what
    becomes reachable and what still crosses the network in clear text."""
    result = _check_config(tmp_path, "[stack]\nbind = '10.1.2.3'\n")
    assert result.returncode == 0
    assert "config ok" in result.stdout and "WARNING" not in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING: ")]
    assert len(warnings) == 3, result.stderr
    assert "10.1.2.3 is not a loopback address" in warnings[0]
    assert "Redis (no password), AMI, ARI and Prometheus" in warnings[1]
    assert "tls.enabled is false" in warnings[2]


def test_with_tls_on_the_warning_turns_to_unencrypted_media_then_goes() -> None:
    def lines(**tls: bool) -> list[str]:
        cfg = config.Config.model_validate({"stack": {"bind": "10.1.2.3"}, "tls": tls})
        return bind_warnings(cfg)

    assert "tls.srtp is false" in lines(enabled=True)[-1]
    assert len(lines(enabled=True, srtp=True)) == 2  # only the reachability warnings remain


# --- roles on every endpoint -----------------------------------------------------------------
PUBLIC = {("GET", "/openapi.json"), ("POST", "/desk/session")}
"""The only routes without a token: the API's own description, which holds nothing secret,
and the desk's login, which takes the agent's id and PIN instead (rate-limited)."""


def test_every_route_but_the_openapi_document_needs_a_role() -> None:
    assert {(r.method, r.path) for r in ROUTES if r.role is None} == PUBLIC


def test_test_api_refuses_every_lower_role_on_every_route() -> None:
    """tests/unit/test_api.py runs each case with every caller; here: its cases cover every
    route with the route table's own least role, and its callers include no token, a bad
    token and a token of each role, so every refusal (401 and each lower role's 403) is
    really exercised, and an agent of another agent's resource too."""
    least = {(m, t): role for m, t, _, _, role, _ in test_api.CASES}
    assert least == {(r.method, r.path): r.role.label for r in ROUTES if r.role is not None}
    callers = set(test_api.CALLERS)
    assert {"none", "bad"} <= callers
    roles = {c.split(":")[0] for c in callers} - {"none", "bad"}
    assert roles == {role.label for role in Role}
    owned = {(m, t): owner for m, t, _, _, _, owner in test_api.CASES if owner is not None}
    assert set(owned) >= {(r.method, r.path) for r in ROUTES if r.own_agent}  # + own calls
    agents = {c for c in callers if c.startswith("agent:")}
    for owner in owned.values():  # the owner, and another agent who must be refused
        assert f"agent:{owner}" in agents and len(agents) >= 2


# --- the keypad PIN guard --------------------------------------------------------------------
def test_the_pin_guard_locks_a_phone_out_after_the_limit_even_for_the_right_pin() -> None:
    guard = PinGuard(limit=3)
    for n in range(3):
        guard.check("phone:2001", now=100.0 + n)  # allowed: under the limit
        guard.failed("phone:2001", now=100.0 + n)
    with pytest.raises(AcdError) as refused:
        guard.check("phone:2001", now=103.0)  # checked before the PIN is compared
    assert (refused.value.slug, refused.value.status) == ("rate-limited", 429)
    guard.check("phone:2002", now=103.0)  # another phone is not locked out
    guard.check("phone:2001", now=102.0 + LOCKOUT_S)  # the oldest failures have aged out


def test_a_right_pin_clears_the_phones_failures() -> None:
    guard = PinGuard(limit=3)
    guard.failed("phone:2001", now=0.0)
    guard.failed("phone:2001", now=1.0)
    guard.passed("phone:2001")
    guard.failed("phone:2001", now=2.0)
    guard.check("phone:2001", now=3.0)


# --- no secret in git ------------------------------------------------------------------------
SECRET_WORD = re.compile(
    r"(?i)(?:password|passwd|secret|token|api[_-]?key|pin)[\w-]*[\"']?\s*[:=]\s*[\"']?"
    r"([A-Za-z0-9_+/=:-]{16,})"
    r"|(?i:authorization):\s*(?i:basic|bearer)\s+([A-Za-z0-9_+/=-]{16,})"  # recorded HTTP
    r"|://[\w.-]+:([A-Za-z0-9_+/=-]{16,})@"  # credentials in a URL
)
"""`key = "value"`, `"key": "value"`, `key=value` (ARI's `api_key=user:password`), HTTP
Authorization headers and URL credentials: the shapes a secret takes in a config, a log, a
recorded transcript or a doc."""


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_generated(value: str) -> bool:
    """A value like `secrets.token_urlsafe(24)` (4.3+ bits/char, mixed classes), not a
    placeholder (`admin-token-aaaa…`, ~2 bits/char), a word or a path."""
    classes = sum(bool(re.search(p, value)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return len(value) >= 20 and entropy(value) >= 4.0 and classes >= 2


def repo_files() -> list[Path]:
    """Tracked files and the untracked ones git would add (so a new file is checked before
    its first commit)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name and (REPO / name).is_file()]


def test_the_heuristic_flags_generated_secrets_and_spares_placeholders() -> None:
    import secrets

    for _ in range(20):
        value = secrets.token_urlsafe(24)
        for leak in [
            f'ari_password = "{value}"',
            f'"api_tokens": {{"admin": "x"}}, "ami_secret": "{value}"',
            f"GET /ari/events?app=ccserver&api_key=ccserver:{value}",
            f"Authorization: Bearer {value}",
            f"http://ccserver:{value}@127.0.0.1:8088/ari",
        ]:
            match = SECRET_WORD.search(leak)
            assert match and value in match[0], leak
        assert looks_generated(value), value
    for harmless in [
        *test_api.TOKENS.values(),
        "CCSERVER_ASTERISK__SIP_PORT",
        "/usr/share/asterisk/sounds/en",
        "{{ari_password}}",
    ]:
        assert not looks_generated(harmless), harmless


def test_no_file_in_git_holds_a_generated_looking_secret_or_a_private_key() -> None:
    found = []
    files = repo_files()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary (pcaps, images): no `key = "value"` lines to read
        if re.search(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----", text):
            found.append(f"{path.relative_to(REPO)}: a PEM private key")
        for match in SECRET_WORD.finditer(text):
            value = next(group for group in match.groups() if group)
            if looks_generated(value.rpartition(":")[2]):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(REPO)}:{line}: {match[0][:40]}…")
    assert len(files) > 100  # the listing really saw the repository
    assert found == []
