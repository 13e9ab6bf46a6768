"""TLS, tested once on one real stack with `[tls] enabled = true, srtp = true`: SIP over TLS
(a digest-authenticated REGISTER, then INVITEs that prove SRTP is negotiated with SDES and
required), HTTPS-only REST API, /healthz and /metrics, and Prometheus scraping over HTTPS.

SIPp here has no TLS support, so the phone is a small Python SIP client over `ssl`, which
trusts only the CA that `stack up` generated into the run dir — exactly what a softphone
is told to trust in docs/security.md.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import secrets
import socket
import ssl
import stat
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ccserver import tls
from ccserver.stack.procs import wait_until
from tests.integration.conftest import LiveStack, free_port, start_stack

pytestmark = pytest.mark.integration
PHONE = "1001"
FEATURE = "*19"  # a feature code the controller answers (an unknown one: it changes nothing)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """One stack with TLS and SRTP on, and Prometheus (it scrapes over HTTPS); `stack up`
    waits for /healthz over HTTPS, verified against the generated CA."""
    yield from start_stack(
        tmp_path_factory.mktemp("tls"),
        {"answer": [PHONE]},
        prometheus=True,
        tls={"enabled": True, "sip_port": free_port(), "srtp": True},
    )


# --- a minimal SIP user agent over TLS --------------------------------------------------------
@dataclass
class Message:
    first: str
    headers: dict[str, list[str]]
    body: str

    @property
    def status(self) -> int:
        return int(self.first.split()[1]) if self.first.startswith("SIP/2.0") else 0

    def header(self, name: str) -> str:
        return self.headers[name.lower()][0]


@dataclass
class Dialog:
    to: str  # the To URI: the AOR registered, the number called
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    cseq: int = 0


class TlsPhone:
    """Agent phone `user` speaking SIP over one TLS connection (RFC 3261 just enough for
    REGISTER, INVITE with digest auth, ACK and BYE)."""

    def __init__(self, port: int, ca: Path, user: str, password: str) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.server = f"127.0.0.1:{port}"
        self.local = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.user, self.password = user, password
        self.buffer = b""
        self.requests: list[Message] = []  # what Asterisk asked of us (answered 200)

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, uri: str, dialog: Dialog, *, to_tag: str = "", **extra: str) -> str:
        """Send one request; returns its Via branch. `extra` headers: name_with_underscores."""
        branch = "z9hG4bK" + secrets.token_hex(8)
        body = extra.pop("body", "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/TLS {self.local};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@127.0.0.1>;tag={dialog.tag}",
            f"To: <{dialog.to}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {dialog.call_id}",
            f"CSeq: {dialog.cseq} {method}",
            f"Contact: <sip:{self.user}@{self.local};transport=tls>",
            "User-Agent: ccserver-tls-test",
            *(f"{k.replace('_', '-')}: {v}" for k, v in extra.items()),
            f"Content-Length: {len(body.encode())}",
            "",
            body,
        ]
        self.sock.sendall("\r\n".join(lines).encode())
        return branch

    def response(self, cseq: int, method: str, timeout: float = 20.0) -> Message:
        """The next final response to (cseq, method), answering Asterisk's own requests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._read(deadline)
            if message.status == 0:
                self.requests.append(message)
                self._ok(message)
            elif message.header("CSeq") == f"{cseq} {method}" and message.status >= 200:
                return message
        raise AssertionError(f"no final response to {method} (CSeq {cseq}) in {timeout} s")

    def authenticated(
        self, method: str, uri: str, dialog: Dialog, **extra: str
    ) -> tuple[Message, Message]:
        """Send, meet the 401 challenge with digest auth, send again: (401, final answer)."""
        dialog.cseq += 1
        self.send(method, uri, dialog, **extra)
        challenge = self.response(dialog.cseq, method)
        assert challenge.status == 401, challenge.first
        if method == "INVITE":  # a non-2xx final answer to an INVITE is acknowledged
            self.send("ACK", uri, dialog, to_tag=tag_of(challenge.header("To")))
        dialog.cseq += 1
        auth = digest(challenge.headers["www-authenticate"], method, uri, self.user, self.password)
        self.send(method, uri, dialog, Authorization=auth, **extra)
        return challenge, self.response(dialog.cseq, method)

    def _ok(self, request: Message) -> None:
        lines = ["SIP/2.0 200 OK"]
        for name in ("via", "from", "to", "call-id", "cseq"):
            lines += [f"{name.title()}: {v}" for v in request.headers[name]]
        self.sock.sendall("\r\n".join([*lines, "Content-Length: 0", "", ""]).encode())

    def _read(self, deadline: float) -> Message:
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        first, *lines = head.decode().split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(headers.get("content-length", ["0"])[0])
        while len(rest) < length:
            self.buffer = head + b"\r\n\r\n" + rest
            self._fill(deadline)
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        self.buffer = rest[length:]
        return Message(first, headers, rest[:length].decode())

    def _fill(self, deadline: float) -> None:
        self.sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError("Asterisk closed the TLS connection")
        self.buffer += chunk


def tag_of(header: str) -> str:
    found = re.search(r";tag=([^;>\s]+)", header)
    assert found, header
    return found[1]


def digest(challenges: list[str], method: str, uri: str, user: str, password: str) -> str:
    """RFC 2617/8760 digest answer (qop=auth) to the first challenge we can compute."""
    for challenge in challenges:
        params = {
            m[0] or m[2]: m[1] or m[3]
            for m in re.findall(r'(\w+)="([^"]*)"|(\w+)=([^,\s"]+)', challenge)
        }
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in ("MD5", "SHA-256"):
            continue
        name = "md5" if algorithm == "MD5" else "sha256"
        realm, nonce = params["realm"], params["nonce"]
        ha1, ha2 = _hash(name, f"{user}:{realm}:{password}"), _hash(name, f"{method}:{uri}")
        fields = f'username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
        if "auth" in params.get("qop", "").split(","):
            cnonce, nc = secrets.token_hex(8), "00000001"
            answer = _hash(name, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            answer = _hash(name, f"{ha1}:{nonce}:{ha2}")
        if "opaque" in params:
            fields += f', opaque="{params["opaque"]}"'
        return f'Digest {fields}, response="{answer}", algorithm={algorithm}'
    raise AssertionError(f"no challenge with a digest algorithm we know: {challenges}")


def _hash(name: str, text: str) -> str:
    return hashlib.new(name, text.encode()).hexdigest()


def sdp(port: int, srtp: bool) -> str:
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} {'RTP/SAVP' if srtp else 'RTP/AVP'} 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
    ]
    if srtp:
        key = base64.b64encode(secrets.token_bytes(30)).decode()  # 16-byte key, 14-byte salt
        lines.append(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}")
    return "\r\n".join([*lines, "a=sendrecv", ""])


# --- the tests ------------------------------------------------------------------------------
@pytest.fixture
def phone(live: LiveStack) -> Iterator[TlsPhone]:
    found = tls.files(live.config)
    assert found.ca is not None
    password = live.secrets().agent_passwords[PHONE]
    softphone = TlsPhone(live.config.tls.sip_port, found.ca, PHONE, password)
    yield softphone
    softphone.close()


def test_the_generated_key_is_private_and_asterisk_listens_on_tls(live: LiveStack) -> None:
    found = tls.files(live.config)
    assert found.key.parent == live.config.run_dir / "tls"
    assert stat.S_IMODE(found.key.stat().st_mode) == 0o600
    transports = live.stack.asterisk_cli("pjsip show transports")
    assert "transport-tls" in transports and f":{live.config.tls.sip_port}" in transports


def test_an_agent_phone_registers_over_tls_with_digest_auth(phone: TlsPhone) -> None:
    uri = f"sip:{phone.server}"
    dialog = Dialog(f"sip:{PHONE}@127.0.0.1")
    _, answer = phone.authenticated("REGISTER", uri, dialog, Expires="60")
    assert answer.status == 200, answer.first
    assert any(phone.local in c for c in answer.headers["contact"]), answer.headers["contact"]
    dialog.cseq += 1  # unregister: leave the AOR as we found it
    phone.send("REGISTER", uri, dialog, Expires="0")
    assert phone.response(dialog.cseq, "REGISTER").status in (200, 401)


def test_a_plain_rtp_offer_is_refused_since_agents_require_srtp(phone: TlsPhone) -> None:
    uri = f"sip:{FEATURE}@{phone.server}"
    dialog = Dialog(uri)
    body = sdp(free_port(), srtp=False)
    _, answer = phone.authenticated(
        "INVITE", uri, dialog, Content_Type="application/sdp", body=body
    )
    assert answer.status == 488, answer.first
    phone.send("ACK", uri, dialog, to_tag=tag_of(answer.header("To")))


def test_an_srtp_offer_is_answered_with_sdes_keys_then_acked_and_hung_up(
    phone: TlsPhone,
) -> None:
    uri = f"sip:{FEATURE}@{phone.server}"
    dialog = Dialog(uri)
    body = sdp(free_port(), srtp=True)
    _, answer = phone.authenticated(
        "INVITE", uri, dialog, Content_Type="application/sdp", body=body
    )
    assert answer.status == 200, answer.first
    media = re.search(r"^m=audio \d+ (\S+) ", answer.body, re.M)
    assert media and media[1] == "RTP/SAVP", answer.body
    crypto = re.search(r"^a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:(\S+)", answer.body, re.M)
    assert crypto, answer.body
    print(f"SRTP answer: {media[0].strip()} / a=crypto suite AES_CM_128_HMAC_SHA1_80")
    remote = re.search(r"<([^>]+)>", answer.header("Contact"))
    assert remote
    to_tag = tag_of(answer.header("To"))
    phone.send("ACK", remote[1], dialog, to_tag=to_tag)  # same CSeq as the INVITE
    dialog.cseq += 1
    phone.send("BYE", remote[1], dialog, to_tag=to_tag)
    bye = phone.response(dialog.cseq, "BYE")
    assert bye.status == 200, bye.first
    assert not [r for r in phone.requests if r.first.startswith("BYE")]  # we hung up first


def _https(live: LiveStack, path: str, context: ssl.SSLContext | None) -> tuple[int, Any]:
    url = tls.controller_url(live.config, path)
    token = live.secrets().api_tokens["admin"]
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        raw = response.read()
        kind = response.headers.get("Content-Type", "")
        return response.status, json.loads(raw) if "json" in kind else raw.decode()


def test_the_api_metrics_and_health_answer_https_verified_against_our_ca(
    live: LiveStack,
) -> None:
    found = tls.files(live.config)
    context = ssl.create_default_context(cafile=str(found.ca))
    status, body = _https(live, "/api/v1/whoami", context)
    assert (status, body["name"], body["role"]) == (200, "admin", "admin")
    status, health = _https(live, "/healthz", context)
    assert status == 200 and health["ari"] and health["ami"]
    status, metrics = _https(live, "/metrics", context)
    assert status == 200 and "ccserver_" in metrics


def test_plain_http_and_unverified_clients_get_nothing(live: LiveStack) -> None:
    port = live.config.controller.http_port
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/whoami", timeout=10)
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _https(live, "/api/v1/whoami", ssl.create_default_context())


def test_prometheus_scrapes_the_controller_over_https(live: LiveStack) -> None:
    def ccserver_target_up() -> bool:
        url = live.stack.prometheus_url + "/api/v1/targets"
        with urllib.request.urlopen(url, timeout=5) as response:
            targets = json.load(response)["data"]["activeTargets"]
        mine = [t for t in targets if t["labels"]["job"] == "ccserver"]
        return (
            bool(mine) and mine[0]["health"] == "up" and mine[0]["scrapeUrl"].startswith("https://")
        )

    assert wait_until(ccserver_target_up, 30, 1.0)
