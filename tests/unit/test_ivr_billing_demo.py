"""The demo billing backend answers over real HTTP, and `ccserver billing-demo` serves it
on the port it is given, bound to 127.0.0.1."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.request

from aiohttp.test_utils import TestClient, TestServer

from ccserver.ivr import billing_demo
from ccserver.loadtest.privstack import free_port


async def test_accounts_unknown_accounts_and_bad_numbers() -> None:
    async with TestClient(TestServer(billing_demo.make_app(), host="127.0.0.1")) as client:
        resp = await client.get("/accounts/1000000001")
        assert resp.status == 200
        assert await resp.json() == {
            "account": "1000000001",
            "name": "张伟",
            "balance": 123.45,
            "due_date": "2025-08-15",
        }
        resp = await client.get("/accounts/1234567890")
        assert (resp.status, await resp.json()) == (404, {"error": "account-unknown"})
        resp = await client.get("/accounts/12")
        assert (resp.status, await resp.json()) == (400, {"error": "account-invalid"})


def test_the_command_line_defaults_to_loopback_and_port_8095() -> None:
    parser = argparse.ArgumentParser()
    billing_demo.register(parser.add_subparsers())
    args = parser.parse_args(["billing-demo"])
    assert (args.host, args.port, args.delay) == ("127.0.0.1", 8095, 0.0)


def test_the_command_serves_until_terminated() -> None:
    port = free_port()
    code = (
        "import argparse, sys; from ccserver.ivr.billing_demo import register; "
        "p = argparse.ArgumentParser(); register(p.add_subparsers()); "
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    argv = [sys.executable, "-c", code, "billing-demo", "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert f"billing demo on http://127.0.0.1:{port} (5 accounts)" in out
