"""Optional TLS without the stack: the generated CA and certificate (files, modes, names,
renewal), the operator's own files, the config rules, what Asterisk's and Prometheus'
configs get, and a real TLS handshake between our server and client contexts."""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from ccserver import config, secrets, tls
from ccserver.errors import ConfigError
from ccserver.stack.render import AsteriskLayout, prometheus_conf, write_asterisk

NOW = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)


def _config(run_dir: Path, **tls_keys: Any) -> config.Config:
    return config.Config.model_validate(
        {
            "stack": {"run_dir": str(run_dir)},
            "phones": {"ids": ["1001", "1002"]},
            "tls": {"enabled": True, **tls_keys},
        }
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tls_is_off_by_default_and_then_nothing_is_generated(tmp_path: Path) -> None:
    cfg = config.Config.model_validate({"stack": {"run_dir": str(tmp_path)}})
    assert cfg.tls.enabled is False
    assert tls.ensure(cfg) is None
    assert tls.server_context(cfg) is None and tls.client_context(cfg) is None
    assert not (tmp_path / "tls").exists()
    assert (
        tls.controller_url(cfg, "/healthz")
        == f"http://127.0.0.1:{cfg.controller.http_port}/healthz"
    )


def test_a_private_ca_and_certificate_are_generated_with_a_private_key(tmp_path: Path) -> None:
    cfg = _config(tmp_path, names=["cc.example.test", "192.0.2.7"])
    found = tls.ensure(cfg, NOW)
    assert found is not None
    # Three files and no CA key: nobody can sign another certificate with this CA.
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == [
        "ca.crt",
        "server.crt",
        "server.key",
    ]
    assert _mode(found.key) == 0o600
    assert found.ca is not None
    ca = x509.load_pem_x509_certificate(found.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(found.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = {str(n) for n in sans.get_values_for_type(x509.IPAddress)}
    names |= set(sans.get_values_for_type(x509.DNSName))
    assert names == {"localhost", "127.0.0.1", "::1", "cc.example.test", "192.0.2.7"}
    assert cert.not_valid_after_utc - NOW == datetime.timedelta(days=tls.SERVER_DAYS)


def test_the_certificate_is_kept_until_it_nears_its_end_or_misses_a_name(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    found = tls.ensure(cfg, NOW)
    assert found is not None
    first = found.cert.read_bytes()
    assert tls.ensure(cfg, NOW + datetime.timedelta(days=100)) == found
    assert found.cert.read_bytes() == first  # kept: a phone that pinned it keeps working
    renewal = NOW + datetime.timedelta(days=tls.SERVER_DAYS) - tls.RENEW_BEFORE
    tls.ensure(cfg, renewal + datetime.timedelta(hours=1))
    second = found.cert.read_bytes()
    assert second != first
    tls.ensure(_config(tmp_path, names=["pbx.example.test"]), NOW)
    assert found.cert.read_bytes() != second
    assert _mode(found.key) == 0o600


def test_a_wildcard_bind_is_not_put_in_the_certificate(tmp_path: Path) -> None:
    cfg = config.Config.model_validate(
        {"stack": {"run_dir": str(tmp_path), "bind": "0.0.0.0"}, "tls": {"enabled": True}}
    )
    assert tls.subject_names(cfg) == ["localhost", "127.0.0.1", "::1"]
    url = tls.controller_url(cfg, "/metrics")
    assert url == f"https://127.0.0.1:{cfg.controller.http_port}/metrics"


def test_the_operators_own_files_are_checked_not_replaced(tmp_path: Path) -> None:
    own = tmp_path / "own"
    generated = tls.ensure(_config(own), NOW)
    assert generated is not None and generated.ca is not None
    cfg = _config(
        tmp_path / "run",
        cert_file=str(generated.cert),
        key_file=str(generated.key),
        ca_file=str(generated.ca),
    )
    found = tls.ensure(cfg)
    assert found == generated
    assert not (tmp_path / "run" / "tls").exists()
    generated.key.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others; chmod 600"):
        tls.ensure(cfg)
    generated.key.unlink()
    with pytest.raises(ConfigError, match=r"server\.key does not exist"):
        tls.ensure(cfg)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"enabled": False, "srtp": True}, "tls.srtp needs tls.enabled"),
        ({"enabled": True, "cert_file": "/x.crt"}, "both tls.cert_file and tls.key_file"),
        ({"enabled": True, "ca_file": "/ca.crt"}, "ca_file goes with your own"),
        ({"enabled": True, "sip_port": 5060}, "tls.sip_port and asterisk.sip_port are both 5060"),
    ],
)
def test_inconsistent_tls_settings_are_refused_by_key(
    tmp_path: Path, keys: dict[str, Any], message: str
) -> None:
    file = tmp_path / "ccserver.toml"
    lines = [
        f"{k} = {v!r}".replace("True", "true").replace("False", "false") for k, v in keys.items()
    ]
    file.write_text("[tls]\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=message):
        config.load(file, environ={})


def _render(cfg: config.Config) -> str:
    sec = secrets.load_or_create(cfg.run_dir, cfg.phones.ids)
    layout = AsteriskLayout(cfg.run_dir / "asterisk")
    tls.ensure(cfg, NOW)
    write_asterisk(cfg, sec, layout)
    return (layout.etc / "pjsip.conf").read_text()


def test_asterisk_gets_a_tls_transport_and_srtp_only_when_asked(tmp_path: Path) -> None:
    off = _render(config.Config.model_validate({"stack": {"run_dir": str(tmp_path / "off")}}))
    assert "protocol = tls" not in off and "media_encryption" not in off
    on = _render(_config(tmp_path / "on", sip_port=5161))
    files = tls.files(_config(tmp_path / "on"))
    transport = on[on.index("[transport-tls]") :].split("\n\n")[0]
    assert "protocol = tls" in transport and "bind = 127.0.0.1:5161" in transport
    assert f"cert_file = {files.cert}" in transport
    assert f"priv_key_file = {files.key}" in transport
    assert "media_encryption" not in on
    srtp = _render(_config(tmp_path / "srtp", srtp=True))
    assert srtp.count("media_encryption = sdes") == 2  # each agent endpoint, nothing else
    assert srtp.count("media_encryption_optimistic = no") == 2


def test_prometheus_scrapes_the_controller_over_https_against_our_ca(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    jobs = {j["job_name"]: j for j in yaml.safe_load(prometheus_conf(cfg))["scrape_configs"]}
    assert jobs["ccserver"]["scheme"] == "https"
    assert jobs["ccserver"]["tls_config"] == {"ca_file": str(tls.files(cfg).ca)}
    assert jobs["asterisk"]["scheme"] == "http"  # Asterisk's /metrics stays on loopback
    plain = config.Config.model_validate({"stack": {"run_dir": str(tmp_path)}})
    jobs = {j["job_name"]: j for j in yaml.safe_load(prometheus_conf(plain))["scrape_configs"]}
    assert jobs["ccserver"]["scheme"] == "http" and "tls_config" not in jobs["ccserver"]
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run `make setup`"
    tls.ensure(cfg, NOW)  # promtool checks that the CA file exists
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(prometheus_conf(cfg))
    check = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_our_client_verifies_our_server_and_refuses_a_stranger(tmp_path: Path) -> None:
    """One real handshake on loopback: the controller's server context, our clients'
    context; a client trusting only the system CAs is refused."""
    cfg = _config(tmp_path)
    server_ctx, client_ctx = tls.server_context(cfg), tls.client_context(cfg)
    assert server_ctx is not None and client_ctx is not None
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve(handshakes: int) -> None:
            for _ in range(handshakes):
                conn, _ = listener.accept()
                try:
                    with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                        tls_conn.sendall(b"hello")
                except (ssl.SSLError, OSError):
                    conn.close()

        thread = threading.Thread(target=serve, args=(2,), daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            assert conn.recv(5) == b"hello"
            assert conn.version() in ("TLSv1.2", "TLSv1.3")
        stranger = ssl.create_default_context()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            stranger.wrap_socket(raw, server_hostname="127.0.0.1")
        thread.join(timeout=10)
