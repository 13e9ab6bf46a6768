"""Seat licensing: signed license documents, their checks, and the seat ledger that enforces
them — pure code (no network, no Asterisk), with the clock passed in.

A license file is `{"license": {...}, "key_id": "...", "signature": "<base64>"}`. The
signature is Ed25519 over the canonical JSON of the license object (sorted keys, separators
`,` and `:`, UTF-8), so what is verified is what was parsed, whatever the file's spacing.
`key_id` is the first 16 hex digits of the SHA-256 of the raw 32-byte public key; it picks
the key, the signature proves the document.

The product holds public keys only. Shipped vendor keys are `ccserver/license_keys/*.pub`,
each the base64 of the raw 32-byte public key on one line. `ccserver-vendor-2026.pub` was
made with `ccserver license keygen`; its private half is kept by the vendor outside the
repository (`~/.cache/ccserver/vendor/`, mode 0600) and signs with `ccserver license issue`.
Throw-away keys for tests and development are trusted through `license.trusted_keys`.
Private keys are unencrypted PKCS#8 PEM (`openssl pkey -in KEY -text` reads them).

Without a license file the center runs on the built-in evaluation license (`EVALUATION`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ccserver.config import Config
from ccserver.errors import CCServerError

SHIPPED_KEYS_DIR = Path(__file__).parent / "license_keys"
SECONDS_PER_DAY = 86_400
_FIELDS = {"id", "customer", "seats", "ivr_channels", "issued_at", "expires_at"}
_OPTIONAL = {"not_before", "grace", "features"}


class LicenseError(CCServerError):
    """A license that cannot be used, or a seat the license does not allow."""

    slug = "license-invalid"


Keys = Mapping[str, Ed25519PublicKey]


# --- the document ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Grace:
    """Up to `extra_seats_pct` % more seats (rounded down), for at most `max_minutes` from
    the moment the center first goes over its licensed seats."""

    extra_seats_pct: float
    max_minutes: float

    def extra_seats(self, seats: int) -> int:
        # Rounded down so the overshoot never exceeds the percentage the customer bought;
        # the epsilon keeps a float product like 2.9999999999999996 from losing a seat.
        return math.floor(seats * self.extra_seats_pct / 100 + 1e-9)


@dataclass(frozen=True)
class License:
    id: str
    customer_id: str
    customer_name: str
    seats: int
    """Concurrent agent logins."""
    ivr_channels: int
    """Concurrent self-service (IVR) channels."""
    issued_at: datetime | None
    expires_at: datetime | None
    """None only for the built-in evaluation license, which never expires."""
    not_before: datetime | None = None
    grace: Grace | None = None
    features: tuple[str, ...] = ()
    key_id: str | None = None
    """The key that signed it; None for the evaluation license."""

    @property
    def evaluation(self) -> bool:
        return self.key_id is None

    def document(self) -> dict[str, Any]:
        """The license object as signed (the evaluation license is never written)."""
        if self.issued_at is None or self.expires_at is None:
            raise LicenseError("the evaluation license cannot be signed", slug="license-malformed")
        doc: dict[str, Any] = {
            "id": self.id,
            "customer": {"id": self.customer_id, "name": self.customer_name},
            "seats": self.seats,
            "ivr_channels": self.ivr_channels,
            "issued_at": iso(self.issued_at),
            "expires_at": iso(self.expires_at),
            "features": list(self.features),
        }
        if self.not_before is not None:
            doc["not_before"] = iso(self.not_before)
        if self.grace is not None:
            doc["grace"] = {
                "extra_seats_pct": self.grace.extra_seats_pct,
                "max_minutes": self.grace.max_minutes,
            }
        return doc

    def days_to_expiry(self, now: float) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at.timestamp() - now) / SECONDS_PER_DAY

    def describe(self) -> str:
        grace = (
            f", grace +{self.grace.extra_seats_pct:g} % for {self.grace.max_minutes:g} min"
            if self.grace
            else ""
        )
        return (
            f"license {self.id} for {self.customer_name} ({self.customer_id}): "
            f"{self.seats} seats, {self.ivr_channels} IVR channels{grace}"
        )


EVALUATION = License(
    id="evaluation",
    customer_id="evaluation",
    customer_name="evaluation",
    seats=5,
    ivr_channels=2,
    issued_at=None,
    expires_at=None,
)
"""What runs when no license is installed: enough to try the product, not to run a center."""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(obj: Any) -> bytes:
    """The bytes a signature covers: one encoding per value, whatever the file's layout."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _malformed(message: str) -> LicenseError:
    return LicenseError(
        f"{message}; ask the vendor for a new license file", slug="license-malformed"
    )


def _get(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in obj:
        raise _malformed(f"field {where}{name} is missing")
    value = obj[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _malformed(f"field {where}{name} has the wrong type ({type(value).__name__})")
    return value


def utc_time(text: str) -> datetime:
    """An ISO 8601 time with its zone, in UTC; ValueError saying what is wrong otherwise
    (a license's times must not depend on the clock of the machine reading them)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone (Z for UTC)")
    return moment.astimezone(UTC)


def _time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise _malformed(f"field license.{name} must be an ISO 8601 UTC time string")
    try:
        return utc_time(value)
    except ValueError as exc:
        raise _malformed(f"field license.{name}: {exc}") from None


def _count(obj: Mapping[str, Any], name: str) -> int:
    value: int = _get(obj, name, int, "license.")
    if value < 0:
        raise _malformed(f"field license.{name} must not be negative")
    return value


def _parse_grace(raw: Any) -> Grace:
    if not isinstance(raw, dict):
        raise _malformed("field license.grace must be an object")
    pct = _number(_get(raw, "extra_seats_pct", (int, float), "license.grace."))
    minutes = _number(_get(raw, "max_minutes", (int, float), "license.grace."))
    if not 0 < pct <= 100 or not 0 < minutes < math.inf:
        raise _malformed("license.grace needs 0 < extra_seats_pct ≤ 100 and max_minutes > 0")
    return Grace(pct, minutes)


def _number(value: float) -> float:
    """A JSON number as a float; NaN for an integer too large for one (a signed file may
    still hold a 400-digit integer; `1e999` reads as infinity): the range checks refuse
    both."""
    try:
        return float(value)
    except OverflowError:
        return math.nan


def parse_license(doc: Mapping[str, Any], key_id: str) -> License:
    """The license object of a verified document, each field checked by name and type."""
    unknown = sorted(set(doc) - _FIELDS - _OPTIONAL)
    if unknown:
        raise _malformed(f"unknown field license.{unknown[0]} (a newer format?)")
    customer = _get(doc, "customer", dict, "license.")
    features = doc.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise _malformed("field license.features must be a list of strings")
    issued = _time(_get(doc, "issued_at", str, "license."), "issued_at")
    expires = _time(_get(doc, "expires_at", str, "license."), "expires_at")
    not_before = _time(doc["not_before"], "not_before") if "not_before" in doc else None
    if expires <= max(issued, not_before or issued):
        raise _malformed("field license.expires_at is not after issued_at and not_before")
    return License(
        id=_get(doc, "id", str, "license."),
        customer_id=_get(customer, "id", str, "license.customer."),
        customer_name=_get(customer, "name", str, "license.customer."),
        seats=_count(doc, "seats"),
        ivr_channels=_count(doc, "ivr_channels"),
        issued_at=issued,
        expires_at=expires,
        not_before=not_before,
        grace=_parse_grace(doc["grace"]) if "grace" in doc else None,
        features=tuple(features),
        key_id=key_id,
    )


# --- keys -----------------------------------------------------------------------------------


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except OSError as exc:
        raise LicenseError(f"{path}: cannot be read: {exc}", slug="license-key-invalid") from None
    except (ValueError, binascii.Error):
        raise LicenseError(
            f"{path}: not a public key (one line: base64 of the raw 32-byte Ed25519 key)",
            slug="license-key-invalid",
        ) from None


def trusted_keys(extra: Iterable[Path] = ()) -> dict[str, Ed25519PublicKey]:
    """The shipped vendor keys and the configured extra ones, by key id."""
    paths = [*sorted(SHIPPED_KEYS_DIR.glob("*.pub")), *(p.expanduser() for p in extra)]
    keys = [load_public_key(p) for p in paths]
    return {key_id(k): k for k in keys}


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise LicenseError(f"{path}: cannot be read: {exc}", slug="license-key-invalid") from None
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenseError(
            f"{path}: not an Ed25519 private key (PKCS#8 PEM from `ccserver license keygen`)",
            slug="license-key-invalid",
        )
    return key


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """A new vendor key pair; the private half 0600. Never overwrites: a lost private key
    cannot sign again, and an overwritten one orphans every license it signed."""
    for path in (private_path, public_path):
        if path.exists():
            raise LicenseError(
                f"{path} exists; keys are never overwritten — choose another file name",
                slug="license-key-exists",
            )
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_text(base64.b64encode(raw).decode("ascii") + "\n", encoding="ascii")
    return key_id(public)


# --- signing and verifying ------------------------------------------------------------------


def sign(lic: License, private: Ed25519PrivateKey) -> bytes:
    """The license file for `lic`, signed by `private`."""
    doc = lic.document()
    envelope = {
        "license": doc,
        "key_id": key_id(private.public_key()),
        "signature": base64.b64encode(private.sign(canonical(doc))).decode("ascii"),
    }
    return (json.dumps(envelope, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def new_license(
    *,
    customer_id: str,
    customer_name: str,
    seats: int,
    ivr_channels: int,
    days: float,
    now: float,
    not_before: datetime | None = None,
    grace: Grace | None = None,
    features: Iterable[str] = (),
    license_id: str | None = None,
) -> License:
    """A license valid for `days` from `not_before` (or from `now`)."""
    issued = datetime.fromtimestamp(int(now), UTC)
    start = max(issued, not_before) if not_before else issued
    return License(
        id=license_id or f"{customer_id}-{issued:%Y%m%d}-{secrets.token_hex(3)}",
        customer_id=customer_id,
        customer_name=customer_name,
        seats=seats,
        ivr_channels=ivr_channels,
        issued_at=issued,
        expires_at=start + timedelta(days=days),
        not_before=not_before,
        grace=grace,
        features=tuple(features),
    )


_PREFIX_TAIL = re.compile(r"t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|[-+0-9.eE]*")


def _truncated(text: str, err: json.JSONDecodeError) -> bool:
    """True when the text is a valid beginning of a JSON document that stops too early —
    an interrupted copy — rather than a document with something wrong inside."""
    if err.msg.startswith("Unterminated string"):
        return True
    return _PREFIX_TAIL.fullmatch(text[err.pos :].strip()) is not None


def _envelope(data: bytes) -> tuple[dict[str, Any], str, bytes]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            raise LicenseError(
                "the file ends in the middle of a character: copy it again",
                slug="license-truncated",
            ) from None
        raise _malformed(f"not UTF-8 text (byte {exc.start})") from None
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError as exc:
        if _truncated(text, exc):
            raise LicenseError(
                f"the file ends in the middle of the document ({len(data)} bytes): copy it "
                "again in full",
                slug="license-truncated",
            ) from None
        raise _malformed(f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise _malformed("the file must be a JSON object with license, key_id and signature")
    doc = _get(envelope, "license", dict, "")
    kid = _get(envelope, "key_id", str, "")
    try:
        signature = base64.b64decode(_get(envelope, "signature", str, ""), validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character in the text
        raise _malformed("field signature is not base64") from None
    return doc, kid, signature


def read_license(data: bytes, keys: Keys) -> License:
    """The license in a file's bytes, after its format, key and signature are checked (not
    its dates nor its customer: see `check_validity`)."""
    doc, kid, signature = _envelope(data)
    public = keys.get(kid)
    if public is None:
        raise LicenseError(
            f"signed with key {kid}, which this installation does not trust: the file is not "
            "from the vendor, or this ccserver is too old for the vendor's current key",
            slug="license-unknown-key",
        )
    try:
        public.verify(signature, canonical(doc))
    except InvalidSignature:
        raise LicenseError(
            "the signature does not match the content: the file was changed after it was "
            "signed; install the file exactly as the vendor sent it",
            slug="license-signature-invalid",
        ) from None
    return parse_license(doc, kid)


def check_validity(
    lic: License, *, now: float, customer_id: str | None, expiry: bool = True
) -> None:
    """Refuse a license that is not for this customer, not yet valid, or (`expiry`) over."""
    if customer_id is not None and lic.customer_id != customer_id:
        raise LicenseError(
            f"{lic.id} is for customer {lic.customer_id!r}, this center is {customer_id!r} "
            "(license.customer_id)",
            slug="license-wrong-customer",
        )
    if lic.not_before is not None and now < lic.not_before.timestamp():
        raise LicenseError(
            f"{lic.id} is valid from {iso(lic.not_before)}: install it then",
            slug="license-not-yet-valid",
        )
    if expiry and lic.expires_at is not None and now >= lic.expires_at.timestamp():
        raise LicenseError(
            f"{lic.id} expired at {iso(lic.expires_at)}: ask the vendor for a renewal",
            slug="license-expired",
        )


def verify(data: bytes, keys: Keys, *, now: float, customer_id: str | None) -> License:
    """Every check a license must pass to be installed."""
    lic = read_license(data, keys)
    check_validity(lic, now=now, customer_id=customer_id)
    return lic


# --- the file in force ----------------------------------------------------------------------


def load_installed(path: Path, keys: Keys, *, now: float, customer_id: str | None) -> License:
    """The license in force: the evaluation license when there is no file. An expired
    license still loads — it keeps the holders of seats and refuses new logins (the seat
    ledger says why), rather than silently shrinking the center to evaluation size."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return EVALUATION
    except OSError as exc:
        raise LicenseError(f"{path}: cannot be read: {exc}", slug="license-unreadable") from None
    try:
        lic = read_license(data, keys)
        check_validity(lic, now=now, customer_id=customer_id, expiry=False)
    except LicenseError as exc:
        raise LicenseError(f"{path}: {exc.message}", slug=exc.slug) from None
    return lic


def load_configured(config: Config, *, now: float) -> License:
    """`load_installed` with the path, keys and customer of the configuration."""
    section = config.license
    return load_installed(
        section.resolved_path(config.run_dir),
        trusted_keys(section.trusted_keys),
        now=now,
        customer_id=section.customer_id,
    )


def install(
    data: bytes, target: Path, keys: Keys, *, now: float, customer_id: str | None
) -> License:
    """Check `data` fully, then put it in place atomically: a bad file, a full disk or a
    crash mid-way leave the license in force exactly as it was."""
    lic = verify(data, keys, now=now, customer_id=customer_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
    return lic


def expiry_warning(lic: License, *, now: float, days: int) -> str | None:
    left = lic.days_to_expiry(now)
    if left is None or left > days or lic.expires_at is None:
        return None
    if left <= 0:
        return (
            f"license {lic.id} expired at {iso(lic.expires_at)}: new logins are refused; "
            "install a renewed license with `ccserver license install FILE`"
        )
    return (
        f"license {lic.id} expires in {math.ceil(left)} day(s), at {iso(lic.expires_at)}: "
        "install a renewed license with `ccserver license install FILE`"
    )
