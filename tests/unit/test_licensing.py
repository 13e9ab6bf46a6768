"""Seat licensing: signed files are accepted exactly as signed, every kind of bad file is
refused with its own slug while the license in force stays untouched, and the seat ledger
refuses new logins — never existing ones — at the licensed limits and after grace.

Keys are throw-away pairs made in each test; the clock is a fake one that tests move.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ccserver import licensing
from ccserver import secrets as secrets_mod
from ccserver.cli import main
from ccserver.licensing import Grace, License, LicenseError
from ccserver.loadtest.privstack import free_port
from ccserver.seats import SeatLedger

NOW = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
DAY = 86_400.0


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def vendor(tmp_path: Path) -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    private_path, public_path = tmp_path / "keys" / "v.key", tmp_path / "keys" / "v.pub"
    licensing.generate_keypair(private_path, public_path)
    private = licensing.load_private_key(private_path)
    return private, {licensing.key_id(private.public_key()): licensing.load_public_key(public_path)}


def make(seats: int = 71, *, days: float = 365, now: float = NOW, **kw: Any) -> License:
    return licensing.new_license(
        customer_id="sgcc-95598",
        customer_name="95598 hotline",
        seats=seats,
        ivr_channels=kw.pop("ivr_channels", 10),
        days=days,
        now=now,
        **kw,
    )


def sign_raw(doc: dict[str, Any], private: Ed25519PrivateKey) -> bytes:
    """A correctly signed envelope around any license object, even a malformed one."""
    sig = private.sign(licensing.canonical(doc))
    envelope = {
        "license": doc,
        "key_id": licensing.key_id(private.public_key()),
        "signature": base64.b64encode(sig).decode(),
    }
    return json.dumps(envelope).encode()


# --- documents ------------------------------------------------------------------------------


def test_an_issued_license_verifies_to_the_same_license(vendor: Any) -> None:
    private, keys = vendor
    issued = make(grace=Grace(10, 30), features=["wallboard"], license_id="L-1")
    got = licensing.verify(licensing.sign(issued, private), keys, now=NOW, customer_id=None)
    assert got == dataclasses.replace(issued, key_id=next(iter(keys)))
    assert got.expires_at == datetime(2027, 6, 1, tzinfo=UTC)
    assert not got.evaluation


def test_the_signature_ignores_layout_but_not_content(vendor: Any) -> None:
    private, keys = vendor
    envelope = json.loads(licensing.sign(make(), private))
    relaid = json.dumps(envelope, indent=None, sort_keys=False).encode()
    assert licensing.verify(relaid, keys, now=NOW, customer_id=None).seats == 71


def test_the_shipped_vendor_key_is_trusted_and_is_a_public_key_only() -> None:
    shipped = sorted(licensing.SHIPPED_KEYS_DIR.iterdir())
    assert [p.name for p in shipped] == ["ccserver-vendor-2026.pub"]
    assert len(licensing.trusted_keys()) == 1


def _bad_files(private: Ed25519PrivateKey, good: bytes) -> dict[str, tuple[bytes, str, str]]:
    """Each bad file with the slug it must be refused with and a piece of the message (the
    wrong-customer case needs a configured customer: its own test)."""
    stranger = Ed25519PrivateKey.generate()
    doc = json.loads(good)["license"]
    flipped = good.replace(b'"seats": 71', b'"seats": 91')
    no_seats = {k: v for k, v in doc.items() if k != "seats"}
    return {
        "cut mid-document": (good[: len(good) // 2], "license-truncated", "copy it again"),
        "cut mid-literal": (b'{"license": {"x": tr', "license-truncated", "copy it again"),
        "empty": (b"", "license-truncated", "(0 bytes)"),
        "not JSON": (b"seats = 500\n", "license-malformed", "not JSON"),
        "no signature": (
            json.dumps({"license": doc, "key_id": "x"}).encode(),
            "license-malformed",
            "field signature is missing",
        ),
        "seats missing": (
            sign_raw(no_seats, private),
            "license-malformed",
            "field license.seats is missing",
        ),
        "seats a string": (
            sign_raw({**doc, "seats": "500"}, private),
            "license-malformed",
            "field license.seats has the wrong type (str)",
        ),
        "unknown key": (licensing.sign(make(), stranger), "license-unknown-key", "not trust"),
        "changed byte": (flipped, "license-signature-invalid", "changed after it was signed"),
        "expired": (
            licensing.sign(make(days=30, now=NOW - 40 * DAY), private),
            "license-expired",
            "expired at 2026-05-22T00:00:00Z",
        ),
        "not yet valid": (
            licensing.sign(make(not_before=datetime(2026, 7, 1, tzinfo=UTC)), private),
            "license-not-yet-valid",
            "valid from 2026-07-01T00:00:00Z",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "cut mid-document",
        "cut mid-literal",
        "empty",
        "not JSON",
        "no signature",
        "seats missing",
        "seats a string",
        "unknown key",
        "changed byte",
        "expired",
        "not yet valid",
    ],
)
def test_a_bad_file_is_refused_with_its_slug_and_the_license_in_force_stays(
    vendor: Any, tmp_path: Path, case: str
) -> None:
    private, keys = vendor
    good = licensing.sign(make(), private)
    target = tmp_path / "run" / "license.json"
    licensing.install(good, target, keys, now=NOW, customer_id=None)
    data, slug, fragment = _bad_files(private, good)[case]
    with pytest.raises(LicenseError) as caught:
        licensing.install(data, target, keys, now=NOW, customer_id=None)
    assert (caught.value.slug, caught.value.status) == (slug, 400)
    assert fragment in caught.value.message
    assert target.read_bytes() == good
    assert sorted(p.name for p in target.parent.iterdir()) == ["license.json"]


def test_every_cut_of_a_license_file_is_reported_as_truncated(vendor: Any) -> None:
    private, keys = vendor
    good = licensing.sign(make(grace=Grace(10, 30), features=["wallboard"]), private)
    slugs = set()
    for end in range(len(good.rstrip())):
        with pytest.raises(LicenseError) as caught:
            licensing.read_license(good[:end], keys)
        slugs.add(caught.value.slug)
    assert slugs == {"license-truncated"}


def test_a_license_for_another_customer_is_refused_and_the_one_in_force_stays(
    vendor: Any, tmp_path: Path
) -> None:
    private, keys = vendor
    target = tmp_path / "license.json"
    good = licensing.sign(make(), private)
    licensing.install(good, target, keys, now=NOW, customer_id="sgcc-95598")
    other = licensing.sign(dataclasses.replace(make(), customer_id="x"), private)
    with pytest.raises(LicenseError, match="is for customer 'x'") as caught:
        licensing.install(other, target, keys, now=NOW, customer_id="sgcc-95598")
    assert caught.value.slug == "license-wrong-customer"
    assert target.read_bytes() == good


def test_no_file_means_the_evaluation_license(tmp_path: Path) -> None:
    lic = licensing.load_installed(tmp_path / "none.json", {}, now=NOW, customer_id="c")
    assert lic is licensing.EVALUATION
    assert (lic.seats, lic.ivr_channels, lic.grace, lic.expires_at) == (5, 2, None, None)
    assert lic.customer_id == "evaluation"


def test_an_expired_installed_license_still_loads_and_refuses_new_logins(
    vendor: Any, tmp_path: Path
) -> None:
    private, keys = vendor
    target = tmp_path / "license.json"
    licensing.install(
        licensing.sign(make(days=30), private), target, keys, now=NOW, customer_id=None
    )
    later = NOW + 31 * DAY
    lic = licensing.load_installed(target, keys, now=later, customer_id=None)
    ledger = SeatLedger(lic, now=Clock(later))
    with pytest.raises(LicenseError) as caught:
        ledger.acquire_seat("1001")
    assert (caught.value.slug, caught.value.status) == ("license-expired", 409)
    assert "expired" in (ledger.expiry_warning() or "")


# --- the seat ledger ------------------------------------------------------------------------


def test_71_seats_refuse_the_72nd_and_a_160_seat_license_lets_72_to_160_in() -> None:
    ledger = SeatLedger(make(71), now=Clock())
    for n in range(71):
        assert not ledger.acquire_seat(f"a{n}").grace
    with pytest.raises(LicenseError) as caught:
        ledger.acquire_seat("a71")
    assert (caught.value.slug, caught.value.status) == ("license-seats-exhausted", 409)
    ledger.replace(make(160, ivr_channels=20))
    assert ledger.seats_in_use == 71
    for n in range(71, 160):
        ledger.acquire_seat(f"a{n}")
    with pytest.raises(LicenseError, match="all 160 licensed seats"):
        ledger.acquire_seat("a160")
    assert ledger.usage()["refusals"] == {"license-seats-exhausted": 2}


def test_acquiring_twice_is_idempotent_and_releasing_frees_the_seat() -> None:
    ledger = SeatLedger(make(1), now=Clock())
    first = ledger.acquire_seat("1001")
    assert ledger.acquire_seat("1001") is first
    assert ledger.seats_in_use == 1
    assert ledger.release_seat("1001") and not ledger.release_seat("1001")
    ledger.acquire_seat("1002")
    assert ledger.holds("1002") and not ledger.holds("1001")


def test_a_shrunk_license_keeps_every_holder_and_refuses_logins_until_under() -> None:
    ledger = SeatLedger(make(10), now=Clock())
    for n in range(10):
        ledger.acquire_seat(str(n))
    ledger.replace(make(5))
    assert ledger.seats_in_use == 10 and all(ledger.holds(str(n)) for n in range(10))
    for n in range(5):
        with pytest.raises(LicenseError):
            ledger.acquire_seat("new")
        ledger.release_seat(str(n))
    with pytest.raises(LicenseError):
        ledger.acquire_seat("new")
    ledger.release_seat("5")
    ledger.acquire_seat("new")


def test_grace_allows_10_percent_more_seats_at_once() -> None:
    ledger = SeatLedger(make(10, grace=Grace(10, 30)), now=Clock())
    for n in range(10):
        ledger.acquire_seat(str(n))
    assert ledger.acquire_seat("10").grace
    with pytest.raises(LicenseError) as caught:
        ledger.acquire_seat("11")
    assert caught.value.slug == "license-seats-exhausted"
    usage = ledger.usage()
    assert (usage["grace_seats"], usage["grace_in_use"], usage["grace_overshoots"]) == (1, 1, 1)


def test_grace_ends_max_minutes_after_going_over_without_logging_anyone_out() -> None:
    clock = Clock()
    ledger = SeatLedger(make(30, grace=Grace(10, 30)), now=clock)  # 3 grace seats
    for n in range(31):
        ledger.acquire_seat(str(n))
    assert ledger.usage()["grace_until"] == NOW + 30 * 60
    clock.t += 29 * 60
    assert ledger.acquire_seat("31").grace
    clock.t += 2 * 60
    with pytest.raises(LicenseError) as caught:
        ledger.acquire_seat("32")
    assert (caught.value.slug, caught.value.status) == ("license-grace-exhausted", 409)
    assert ledger.seats_in_use == 32 and ledger.holds("30") and ledger.holds("31")
    assert ledger.acquire_seat("31").grace  # an agent holding a seat is never refused


def test_the_grace_window_restarts_when_usage_falls_back_to_the_licensed_seats() -> None:
    clock = Clock()
    ledger = SeatLedger(make(20, grace=Grace(10, 30)), now=clock)
    for n in range(21):
        ledger.acquire_seat(str(n))
    clock.t += 60 * 60
    with pytest.raises(LicenseError, match="grace period is over"):
        ledger.acquire_seat("21")
    ledger.release_seat("0")  # 20 in use: back at the licensed seats
    assert ledger.usage()["grace_until"] is None
    ledger.release_seat("1")
    assert not ledger.acquire_seat("0").grace
    assert ledger.acquire_seat("21").grace  # a fresh window starts now
    assert ledger.usage()["grace_until"] == clock.t + 30 * 60


def test_ivr_channels_are_counted_and_a_full_set_says_no_without_raising() -> None:
    ledger = SeatLedger(make(ivr_channels=2), now=Clock())
    for _ in range(2):
        assert ledger.ivr_room()
        ledger.enter_ivr()
    assert not ledger.ivr_room()
    ledger.enter_ivr()  # back from an agent for the survey: counted, never refused
    assert ledger.usage()["ivr_in_use"] == 3
    ledger.release_ivr()
    ledger.release_ivr()
    assert ledger.ivr_room()
    usage = ledger.usage()
    assert (usage["ivr_channels"], usage["ivr_in_use"]) == (2, 1)
    assert usage["refusals"] == {"license-ivr-full": 1}


def test_after_a_restart_the_agents_logged_in_keep_their_seats_over_the_limit() -> None:
    ledger = SeatLedger(make(2), now=Clock())
    ledger.acquire_seat("gone")
    ledger.sync(["1", "2", "3"])
    assert (ledger.seats_in_use, ledger.holds("gone")) == (3, False)
    with pytest.raises(LicenseError) as refused:
        ledger.acquire_seat("4")
    assert refused.value.slug == "license-seats-exhausted"
    ledger.release_seat("3")
    ledger.release_seat("2")
    assert not ledger.acquire_seat("4").grace


def test_usage_and_expiry_warning_follow_the_clock() -> None:
    clock = Clock()
    ledger = SeatLedger(make(days=30), now=clock, expiry_warning_days=14)
    assert ledger.expiry_warning() is None
    assert ledger.usage()["days_to_expiry"] == pytest.approx(30)
    clock.t += 20 * DAY
    assert "expires in 10 day(s)" in (ledger.expiry_warning() or "")
    assert ledger.usage()["expires_at"] == NOW + 30 * DAY
    evaluation = SeatLedger(licensing.EVALUATION, now=clock).usage()
    assert (evaluation["expires_at"], evaluation["days_to_expiry"]) == (None, None)


# --- the command line -----------------------------------------------------------------------


def _write_config(tmp_path: Path, port: int) -> Path:
    """A config with its run dir in tmp_path, the test's vendor key trusted, and the
    controller looked for on `port` (never the machine's real stack)."""
    cfg = tmp_path / "ccserver.toml"
    cfg.write_text(
        f"[stack]\nrun_dir = '{tmp_path / 'run'}'\n"
        f"[controller]\nhttp_port = {port}\n"
        f"[license]\ntrusted_keys = ['{tmp_path / 'keys' / 'v.pub'}']\n"
    )
    return cfg


@pytest.fixture
def center(tmp_path: Path, vendor: Any) -> Path:
    """The config of a center whose controller is not running."""
    return _write_config(tmp_path, free_port())


def _issue(tmp_path: Path, out: str, *extra: str) -> Path:
    key = str(tmp_path / "keys" / "v.key")
    args = ["license", "issue", "--key", key, "--customer-id", "sgcc-95598"]
    args += ["--customer-name", "95598", "--seats", "71", "--ivr-channels", "10"]
    assert main([*args, "--days", "365", "-o", str(tmp_path / out), *extra]) == 0
    return tmp_path / out


def test_cli_keygen_writes_a_0600_private_key_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    priv, pub = tmp_path / "k" / "a.key", tmp_path / "k" / "a.pub"
    assert main(["license", "keygen", "--private", str(priv), "--public", str(pub)]) == 0
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    before = priv.read_bytes()
    assert main(["license", "keygen", "--private", str(priv), "--public", str(pub)]) == 2
    assert "error[license-key-exists]" in capsys.readouterr().err
    assert priv.read_bytes() == before


def test_cli_issue_install_show_and_a_tampered_install_is_refused(
    tmp_path: Path, center: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ["--config", str(center)]
    assert main(["license", "show", *config]) == 0
    assert "evaluation: 5 seats, 2 IVR channels" in capsys.readouterr().out

    good = _issue(tmp_path, "l.json", "--grace-pct", "10", "--grace-minutes", "30", "--id", "L7")
    assert main(["license", "install", str(good), *config]) == 0
    out = capsys.readouterr().out
    assert "installed license L7" in out and "controller not running" in out
    installed = tmp_path / "run" / "license.json"
    assert installed.read_bytes() == good.read_bytes()

    assert main(["license", "show", *config]) == 0
    out = capsys.readouterr().out
    assert "71 seats, 10 IVR channels, grace +10 % for 30 min" in out
    assert "364 day(s) left" in out

    tampered = tmp_path / "t.json"
    tampered.write_bytes(good.read_bytes().replace(b'"seats": 71', b'"seats": 72'))
    assert main(["license", "install", str(tampered), *config]) == 2
    assert capsys.readouterr().err.startswith("error[license-signature-invalid]: ")
    assert installed.read_bytes() == good.read_bytes()


def test_cli_issue_checks_its_arguments(
    tmp_path: Path, center: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = str(tmp_path / "keys" / "v.key")
    args = ["license", "issue", "--key", key, "--customer-id", "c", "--customer-name", "n"]
    args += ["--seats", "5", "--ivr-channels", "1", "--days", "1", "-o", str(tmp_path / "o")]
    assert main([*args, "--grace-pct", "10"]) == 2
    assert "both --grace-pct and --grace-minutes" in capsys.readouterr().err
    assert main([*args, "--not-before", "2026-07-01T00:00:00"]) == 2
    assert "needs a time zone" in capsys.readouterr().err


def test_cli_usage_without_a_running_controller_says_so(
    tmp_path: Path, center: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["license", "usage", "--config", str(center)]) == 1
    assert capsys.readouterr().err.startswith("error[controller-unreachable]: no admin token")
    secrets_mod.load_or_create(tmp_path / "run", ["1001"])
    assert main(["license", "usage", "--config", str(center)]) == 1
    assert "no controller answers at http://127.0.0.1:" in capsys.readouterr().err


@pytest.fixture
def fake_controller(tmp_path: Path) -> Iterator[tuple[int, list[tuple[str, str, str]]]]:
    """A stand-in for the controller's license routes: records (method, path, auth)."""
    seen: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            seen.append((self.command, self.path, self.headers.get("Authorization", "")))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(200, {"seats": 71, "seats_in_use": 3, "refusals": {}})

        def do_POST(self) -> None:
            self._answer(200, {"license_id": "L7"})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1]), seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_cli_install_reloads_a_running_controller_and_usage_prints_its_counts(
    tmp_path: Path,
    vendor: Any,
    fake_controller: tuple[int, list[tuple[str, str, str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, seen = fake_controller
    center = _write_config(tmp_path, port)
    token = secrets_mod.load_or_create(tmp_path / "run", ["1001"]).api_tokens["admin"]
    good = _issue(tmp_path, "l.json")
    assert main(["license", "install", str(good), "--config", str(center)]) == 0
    assert "the running controller reloaded it" in capsys.readouterr().out
    assert main(["license", "usage", "--config", str(center)]) == 0
    assert "seats_in_use  3" in capsys.readouterr().out
    assert seen == [
        ("POST", "/api/v1/license/reload", f"Bearer {token}"),
        ("GET", "/api/v1/license", f"Bearer {token}"),
    ]
