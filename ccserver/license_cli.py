"""The `license` commands: the vendor's (`keygen`, `issue`) and the center's (`show`,
`install`, `usage`).

    ccserver license keygen --private VENDOR.key --public VENDOR.pub
    ccserver license issue --key VENDOR.key --customer-id X --customer-name Y --seats 71 \\
        --ivr-channels 10 --days 365 [--not-before ISO] [--grace-pct 10 --grace-minutes 30] \\
        [--feature F ...] [--id ID] -o license.json
    ccserver license show | install FILE | usage      (these read --config)

The center-side commands talk to a running controller over its REST API with the admin
token from the run dir's secrets: `install` asks it to reload, `usage` asks what it counts.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from ccserver import config as config_mod
from ccserver import licensing, tls
from ccserver import secrets as secrets_mod
from ccserver.errors import CCServerError, ConfigError, InputError

API_LICENSE = "/api/v1/license"


class ControllerUnreachable(CCServerError):
    """No controller answers: the stack is down (or was never started)."""

    slug = "controller-unreachable"
    status = 503
    exit_code = 1


class ControllerRefused(CCServerError):
    """The controller answered with an error; its slug is kept when it sent one."""

    slug = "controller-error"
    status = 502
    exit_code = 1

    def __init__(self, message: str, *, code: int, slug: str | None = None) -> None:
        super().__init__(message, slug=slug)
        self.code = code


# --- talking to the controller --------------------------------------------------------------


def controller_request(config: config_mod.Config, method: str, path: str) -> dict[str, Any]:
    """One authenticated call to the local controller's REST API; its JSON answer."""
    try:
        token = secrets_mod.load(config.run_dir).api_tokens["admin"]
    except (ConfigError, KeyError):
        raise ControllerUnreachable(
            f"no admin token in {secrets_mod.path_in(config.run_dir)}: the stack was never "
            "started here (`ccserver stack up`)"
        ) from None
    url = tls.controller_url(config, path)
    body = b"" if method == "POST" else None  # an empty POST still says Content-Length: 0
    request = urllib.request.Request(
        url, method=method, headers={"Authorization": f"Bearer {token}"}, data=body
    )
    try:
        context = tls.client_context(config)
        with urllib.request.urlopen(request, timeout=5.0, context=context) as response:
            data: dict[str, Any] = json.loads(response.read() or b"{}")
            return data
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
            slug, detail = str(answer["error"]), str(answer["message"])
        except (ValueError, KeyError, TypeError):
            slug, detail = None, str(exc.reason)
        raise ControllerRefused(
            f"{method} {url} answered {exc.code}: {detail}", code=exc.code, slug=slug
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ControllerUnreachable(
            f"no controller answers at {url} ({exc}): start the stack with `ccserver stack up`"
        ) from None


def request_reload(config: config_mod.Config) -> str:
    """Ask a running controller to read the license file again; what happened, in words."""
    not_running = "controller not running: it will read the new license when it starts"
    try:
        controller_request(config, "POST", f"{API_LICENSE}/reload")
    except ControllerUnreachable:
        return not_running
    except ControllerRefused as exc:
        if exc.code == 404:  # a controller older than the reload route
            return not_running
        raise
    return "the running controller reloaded it (no restart, no call dropped)"


def fetch_usage(config: config_mod.Config) -> dict[str, Any]:
    """What the running controller counts against its license."""
    return controller_request(config, "GET", API_LICENSE)


# --- commands -------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    kid = licensing.generate_keypair(Path(args.private), Path(args.public))
    print(f"key {kid}: private {args.private} (0600, keep it off the product and out of git)")
    print(f"public {args.public}: ship it in ccserver/license_keys/ or list it in trusted_keys")
    return 0


def _utc(text: str) -> datetime:
    try:
        return licensing.utc_time(text)
    except ValueError as exc:
        raise InputError(f"--not-before: {exc}, e.g. 2026-07-01T00:00:00Z") from None


def cmd_issue(args: argparse.Namespace) -> int:
    if args.seats < 0 or args.ivr_channels < 0 or args.days <= 0:
        raise InputError("--seats and --ivr-channels ≥ 0 and --days > 0, please")
    if (args.grace_pct is None) != (args.grace_minutes is None):
        raise InputError("give both --grace-pct and --grace-minutes, or neither")
    grace = None
    if args.grace_pct is not None:
        if not 0 < args.grace_pct <= 100 or args.grace_minutes <= 0:
            raise InputError("--grace-pct in (0, 100] and --grace-minutes > 0, please")
        grace = licensing.Grace(args.grace_pct, args.grace_minutes)
    lic = licensing.new_license(
        customer_id=args.customer_id,
        customer_name=args.customer_name,
        seats=args.seats,
        ivr_channels=args.ivr_channels,
        days=args.days,
        now=time.time(),
        not_before=_utc(args.not_before) if args.not_before else None,
        grace=grace,
        features=args.feature,
        license_id=args.id,
    )
    data = licensing.sign(lic, licensing.load_private_key(Path(args.key)))
    Path(args.output).write_bytes(data)
    print(f"{lic.describe()}, until {lic.document()['expires_at']}")
    print(f"written to {args.output}")
    return 0


def _show_lines(lic: licensing.License, now: float) -> list[str]:
    if lic.evaluation:
        return [
            f"evaluation: {lic.seats} seats, {lic.ivr_channels} IVR channels, no grace, "
            "never expires"
        ]
    lines = [lic.describe(), f"key {lic.key_id}; features: {', '.join(lic.features) or '-'}"]
    if lic.not_before is not None:
        lines.append(f"valid from {licensing.iso(lic.not_before)}")
    days = lic.days_to_expiry(now)
    if lic.expires_at is not None and days is not None:
        when = licensing.iso(lic.expires_at)
        left = f"{math.floor(days)} day(s) left" if days > 0 else "EXPIRED"
        lines.append(f"expires {when} ({left})")
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config)
    path = config.license.resolved_path(config.run_dir)
    now = time.time()
    lic = licensing.load_configured(config, now=now)
    if lic.evaluation:
        print(f"no license installed at {path}")
    else:
        print(f"license file {path}")
    for line in _show_lines(lic, now):
        print(line)
    warning = licensing.expiry_warning(lic, now=now, days=config.license.expiry_warning_days)
    if warning:
        print(f"warning: {warning}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config)
    source = Path(args.file)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise licensing.LicenseError(
            f"{source}: cannot be read: {exc}", slug="license-unreadable"
        ) from None
    target = config.license.resolved_path(config.run_dir)
    keys = licensing.trusted_keys(config.license.trusted_keys)
    lic = licensing.install(
        data, target, keys, now=time.time(), customer_id=config.license.customer_id
    )
    print(f"installed {lic.describe()} at {target}")
    print(request_reload(config))
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    usage = fetch_usage(config_mod.load(args.config))
    width = max((len(k) for k in usage), default=0)
    for key in sorted(usage):
        value = usage[key]
        shown = json.dumps(value) if isinstance(value, dict | list) or value is None else value
        print(f"{key:<{width}}  {shown}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lic = sub.add_parser("license", help="seat licenses: issue (vendor), install, show, usage")
    actions = lic.add_subparsers(dest="license_command", metavar="ACTION", required=True)

    keygen = actions.add_parser("keygen", help="make a vendor signing key pair")
    keygen.add_argument("--private", required=True, metavar="FILE", help="written 0600")
    keygen.add_argument("--public", required=True, metavar="FILE")
    keygen.set_defaults(func=cmd_keygen)

    issue = actions.add_parser("issue", help="sign a license for a customer (vendor)")
    issue.add_argument("--key", required=True, metavar="PRIVATE", help="the vendor's key")
    issue.add_argument("--customer-id", required=True)
    issue.add_argument("--customer-name", required=True)
    issue.add_argument("--seats", type=int, required=True, help="concurrent agent logins")
    issue.add_argument("--ivr-channels", type=int, required=True)
    issue.add_argument("--days", type=float, required=True, help="valid from --not-before/now")
    issue.add_argument("--not-before", metavar="ISO", help="e.g. 2026-07-01T00:00:00Z")
    issue.add_argument("--grace-pct", type=float, help="extra seats allowed, %% of seats")
    issue.add_argument("--grace-minutes", type=float, help="for at most this long")
    issue.add_argument("--feature", action="append", default=[], metavar="F")
    issue.add_argument("--id", help="license id (default: <customer>-<date>-<random>)")
    issue.add_argument("-o", "--output", required=True, metavar="FILE")
    issue.set_defaults(func=cmd_issue)

    for name, func, text in (
        ("show", cmd_show, "the license in force (or the evaluation limits)"),
        ("install", cmd_install, "check a license file, put it in force, reload the controller"),
        ("usage", cmd_usage, "seats and IVR channels the running controller counts"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("--config", metavar="FILE", help="TOML file (default: ./ccserver.toml)")
        if name == "install":
            p.add_argument("file", metavar="FILE")
        p.set_defaults(func=func)
