"""The `ccserver` command line: one sub-command per concern, each registered by its module.

A module that adds commands exposes `register(subparsers)`, adding parsers whose default
`func(args) -> int` does the work. User errors (`CCServerError`) are printed as
`error[slug]: message` with the error's exit code, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ccserver import backup_cli, campaigns_cli, license_cli, orders_cli, report_cli
from ccserver import config as config_mod
from ccserver.errors import CCServerError, InputError
from ccserver.ivr import billing_demo
from ccserver.loadtest import cli as loadtest_cli
from ccserver.workforce import cli as workforce_cli


def _load(args: argparse.Namespace) -> config_mod.Config:
    return config_mod.load(args.config)


def cmd_check_config(args: argparse.Namespace) -> int:
    """The configuration and the QA scoring form, then every IVR flow against the
    configured queues: all flow problems at once, each with its file and line, exit 2 when
    there is any."""
    from ccserver.ivr.loader import validate_dir, validate_outbound_dir
    from ccserver.records.qa import load_form

    config = _load(args)
    load_form(config.qa.form)  # qa-form-invalid, with the file and what is wrong
    source = args.config or "defaults, ccserver.toml if present, CCSERVER_* environment"
    flows_dir = config.ivr.resolved_flows_dir()
    flows, issues = validate_dir(flows_dir, {q.name for q in config.acd.queues})
    outbound_dir = config.outbound.resolved_flows_dir()
    outbound, outbound_issues = validate_outbound_dir(outbound_dir)
    issues += outbound_issues
    for issue in issues:
        print(f"error[flow-invalid]: {issue}", file=sys.stderr)
    if issues:
        return 2
    for line in bind_warnings(config):
        print(line, file=sys.stderr)
    print(
        f"config ok ({source}); {len(flows)} flow(s) ok in {flows_dir}, "
        f"{len(outbound)} outbound flow(s) ok in {outbound_dir}"
    )
    return 0


def bind_warnings(config: config_mod.Config) -> list[str]:
    """What check-config says about a bind beyond loopback: loudly, but with exit 0, since
    a center whose phones are on other machines binds so on purpose (docs/security.md)."""
    if config.is_loopback_only():
        return []
    bind = config.stack.bind
    lines = [
        f"WARNING: stack.bind = {bind} is not a loopback address: the stack will be "
        "reachable from other machines.",
        f"WARNING: Redis (no password), AMI, ARI and Prometheus listen on {bind} too, in "
        "plain text: firewall every port but SIP, RTP and the REST API.",
    ]
    if not config.tls.enabled:
        lines.append(
            "WARNING: tls.enabled is false: API bearer tokens and SIP signalling cross the "
            "network in clear text; set [tls] enabled = true."
        )
    elif not config.tls.srtp:
        lines.append(
            "WARNING: tls.srtp is false: agents' call audio crosses the network unencrypted."
        )
    return lines


def cmd_serve(args: argparse.Namespace) -> int:
    from ccserver import logs
    from ccserver.controller import serve

    config = config_mod.load_effective(args.effective) if args.effective else _load(args)
    logs.setup(config.controller.log_format)
    return serve(config)


def _print_status(parts: Sequence[object]) -> None:
    for part in parts:
        print(part.line())  # type: ignore[attr-defined]


def cmd_stack(args: argparse.Namespace) -> int:
    from ccserver.stack import Stack

    stack = Stack(_load(args))
    if args.action == "up":
        _print_status(stack.up())
        print(f"run dir: {stack.run_dir} (logs in {stack.run_dir / 'log'})")
        return 0
    if args.action == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.action == "prepare":
        commands = stack.prepare()
        print(f"run dir {stack.run_dir} ready for: {', '.join(commands)}")
        return 0
    parts = stack.status()
    _print_status(parts)
    return 0 if all(p.healthy for p in parts) else 3


def cmd_install_service(args: argparse.Namespace) -> int:
    """Write the stack's systemd units (`ccserver.stack.units`) and say what is left to do
    as root: the user, the run dir's owner, enabling the target."""
    from ccserver.stack import Stack, units

    config = _load(args)
    stack = Stack(config)
    prepare = [sys.executable, "-m", "ccserver", "stack", "prepare"]
    if args.config:
        prepare += ["--config", str(Path(args.config).resolve())]
    written = units.render(stack, user=args.user, prepare=prepare, workdir=Path.cwd())
    args.dest.mkdir(parents=True, exist_ok=True)
    for name, text in written.items():
        (args.dest / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(written)} unit(s) to {args.dest}: {', '.join(written)}")
    print("then, as root:")
    print(f"  id {args.user} || useradd --system --home-dir {stack.run_dir} {args.user}")
    print(f"  mkdir -p {stack.run_dir} && chown -R {args.user}: {stack.run_dir}")
    print(f"  systemctl daemon-reload && systemctl enable --now {units.PREFIX}.target")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ccserver import demo

    if args.calls < 1 or args.rate <= 0 or args.talk < 0.5:
        raise InputError("--calls ≥ 1, --rate > 0 and --talk ≥ 0.5 seconds, please")
    return demo.run(_load(args), args.calls, args.rate, int(args.talk * 1000))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccserver", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config",
            metavar="FILE",
            help="TOML file (default: ./ccserver.toml if present, or $CCSERVER_CONFIG)",
        )
        return p

    check = with_config(sub.add_parser("check-config", help="validate the configuration"))
    check.set_defaults(func=cmd_check_config)
    serve = with_config(sub.add_parser("serve", help="run the controller (the stack does this)"))
    serve.add_argument(
        "--effective",
        metavar="FILE",
        help="the run dir's config.json written by `stack up` (used by the stack)",
    )
    serve.set_defaults(func=cmd_serve)
    stack = with_config(sub.add_parser("stack", help="start, stop or inspect the runtime stack"))
    stack.add_argument("action", choices=["up", "down", "status", "prepare"])
    stack.set_defaults(func=cmd_stack)
    service = with_config(
        sub.add_parser("install-service", help="write systemd units for the stack")
    )
    service.add_argument(
        "--dest", type=Path, default=Path("/etc/systemd/system"), help="(/etc/systemd/system)"
    )
    service.add_argument("--user", default="ccserver", help="who runs the parts (ccserver)")
    service.set_defaults(func=cmd_install_service)
    demo = with_config(sub.add_parser("demo", help="start the stack and place real SIPp calls"))
    demo.add_argument("--calls", type=int, default=8, help="calls to place (default 8)")
    demo.add_argument("--rate", type=float, default=2.0, help="calls per second (default 2)")
    demo.add_argument("--talk", type=float, default=3.0, help="agent talk time, s (default 3)")
    demo.set_defaults(func=cmd_demo)
    workforce_cli.register(sub)
    license_cli.register(sub)
    report_cli.register(sub)
    orders_cli.register(sub)
    campaigns_cli.register(sub)
    backup_cli.register(sub)
    billing_demo.register(sub)
    loadtest_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, where a reader who left is caught below, not at exit
        return code
    except CCServerError as exc:
        print(f"error[{exc.slug}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`ccserver report … | head`)
        # Point stdout at /dev/null so that flushing it at exit raises nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
