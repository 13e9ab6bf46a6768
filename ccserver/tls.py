"""Optional TLS: the certificate Asterisk's SIP TLS transport and the controller's HTTPS
server present, and the SSL contexts of both ends.

The operator may give a certificate and key (`tls.cert_file`, `tls.key_file`). Otherwise
`stack up` makes a private CA and a server certificate into `<run dir>/tls/` with the
`cryptography` package: `ca.crt` is what softphones and HTTPS clients trust, `server.crt`
and `server.key` (mode 0600) are what Asterisk and the controller present. The CA's private
key is never written anywhere: nobody, us included, can mint another certificate that the
CA vouches for, so a stolen `ca.crt` is harmless. The pair is made again when it is missing,
near its end, or no longer names every address the stack answers on.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ccserver.config import Config
from ccserver.errors import ConfigError

DIR_NAME = "tls"
CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients such as Apple's still accept
RENEW_BEFORE = datetime.timedelta(days=30)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files in use: given by the operator, or generated into the run dir."""

    cert: Path
    key: Path
    ca: Path | None  # None: the system's trusted CAs vouch for `cert`


def files(config: Config) -> TlsFiles:
    tls, run_dir = config.tls, config.run_dir
    if tls.cert_file is not None and tls.key_file is not None:
        ca = run_dir / tls.ca_file.expanduser() if tls.ca_file else None
        return TlsFiles(
            run_dir / tls.cert_file.expanduser(), run_dir / tls.key_file.expanduser(), ca
        )
    directory = run_dir / DIR_NAME
    return TlsFiles(directory / "server.crt", directory / "server.key", directory / "ca.crt")


def ensure(config: Config, now: datetime.datetime | None = None) -> TlsFiles | None:
    """The files TLS needs, generated when ours are missing or stale; None when TLS is off.
    The operator's own files are only checked: they must exist and the key must be private."""
    if not config.tls.enabled:
        return None
    found = files(config)
    now = now or datetime.datetime.now(datetime.UTC)
    if config.tls.cert_file is not None:
        for path in (found.cert, found.key, *([found.ca] if found.ca else [])):
            if not path.is_file():
                raise ConfigError(f"tls: {path} does not exist; fix tls.cert_file/key_file/ca_file")
        if os.stat(found.key).st_mode & 0o077:
            raise ConfigError(f"tls: {found.key} is readable by others; chmod 600 it")
        return found
    hosts = subject_names(config)
    if not _still_good(found, hosts, now):
        _generate(found, hosts, now)
    return found


def subject_names(config: Config) -> list[str]:
    """Every name a client may use to reach the stack: loopback, the bind address unless it
    is a wildcard, and `tls.names`."""
    names = ["localhost", "127.0.0.1", "::1"]
    if not ipaddress.ip_address(config.stack.bind).is_unspecified:
        names.append(config.stack.bind)
    for name in config.tls.names:
        if name not in names:
            names.append(name)
    return names


def server_context(config: Config) -> ssl.SSLContext | None:
    """What the controller's HTTP server wraps its socket in; None when TLS is off."""
    found = ensure(config)
    if found is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(found.cert, found.key)
    return context


def client_context(config: Config) -> ssl.SSLContext | None:
    """What our own clients of the controller (stack health checks, CLI) verify against."""
    if not config.tls.enabled:
        return None
    found = files(config)
    context = ssl.create_default_context(cafile=str(found.ca) if found.ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def controller_url(config: Config, path: str) -> str:
    """The controller's URL for `path`, https when TLS is on; a wildcard bind is reached
    on loopback."""
    bind = config.stack.bind
    host = "127.0.0.1" if ipaddress.ip_address(bind).is_unspecified else bind
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if config.tls.enabled else "http"
    return f"{scheme}://{host}:{config.controller.http_port}{path}"


# --- generation -----------------------------------------------------------------------------
def _still_good(found: TlsFiles, hosts: list[str], now: datetime.datetime) -> bool:
    if found.ca is None or not all(p.is_file() for p in (found.cert, found.key, found.ca)):
        return False
    try:
        cert = x509.load_pem_x509_certificate(found.cert.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    named = {str(n) for n in sans.get_values_for_type(x509.IPAddress)}
    named |= set(sans.get_values_for_type(x509.DNSName))
    wanted = {str(_ip(h) or h) for h in hosts}
    return wanted <= named and cert.not_valid_after_utc - RENEW_BEFORE > now


def _generate(found: TlsFiles, hosts: list[str], now: datetime.datetime) -> None:
    assert found.ca is not None
    found.cert.parent.mkdir(parents=True, exist_ok=True)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccserver private CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key, now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alt = [x509.IPAddress(ip) if (ip := _ip(h)) else x509.DNSName(h) for h in hosts]
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[-1])])
    cert = (
        _builder(server_name, ca_name, key, now, SERVER_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(
        found.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(found.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(found.ca, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks differ a little
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with `mode`, so a key is never readable by
    others, not even for a moment, and a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
