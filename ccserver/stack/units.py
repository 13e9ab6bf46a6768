"""systemd units for the stack (`ccserver install-service`): the same parts and command
lines as `ccserver stack up` (`Stack.commands`), run by systemd instead.

- `ccserver-prepare.service` (oneshot) renders the run dir (`ccserver stack prepare`);
  every part needs it. `ccserver.target` wants every part; enable and start that.
- One service per part: Redis, Asterisk, the controller (after both), Alertmanager and
  Prometheus when the configuration runs them. `Restart=on-failure` with a start limit,
  `LimitNOFILE` for the many sockets of a busy center, and hardening every part tolerates:
  `NoNewPrivileges`, `ProtectSystem=strict` with only the run dir writable, `PrivateTmp`,
  `ProtectKernelTunables`, `ProtectControlGroups`, `RestrictSUIDSGID`, `LockPersonality`.
- Every part runs as the unprivileged `user` (default `ccserver`): none needs root, since
  every port is above 1024 and the run dir is the user's.
"""

from __future__ import annotations

from pathlib import Path

from ccserver.stack import Stack

PREFIX = "ccserver"
LIMIT_NOFILE = 65536
DESCRIPTIONS = {
    "redis": "Redis (calls, agents and queues in progress)",
    "asterisk": "Asterisk (SIP and media)",
    "controller": "the call controller (ARI/AMI, routing, REST API)",
    "alertmanager": "Alertmanager (delivers alerts to the controller)",
    "prometheus": "Prometheus (metrics and alert rules)",
}
AFTER = {
    "redis": [],
    "asterisk": [],
    "controller": ["redis", "asterisk"],
    "alertmanager": ["controller"],
    "prometheus": ["controller", "alertmanager"],
}
"""Which parts a part starts after (as `stack up` orders them)."""


def render(stack: Stack, *, user: str, prepare: list[str], workdir: Path) -> dict[str, str]:
    """The unit files by name. `prepare` is the command line that renders the run dir
    (`ccserver stack prepare` with the configuration), run in `workdir`."""
    commands = stack.commands()
    writable = [stack.run_dir]
    units = {f"{PREFIX}-prepare.service": _prepare(stack, user, prepare, workdir, writable)}
    for part, argv in commands.items():
        after = [f"{PREFIX}-{p}.service" for p in AFTER[part] if p in commands]
        units[f"{PREFIX}-{part}.service"] = _service(part, argv, after, user, stack, writable)
    wants = " ".join(name for name in units)
    units[f"{PREFIX}.target"] = "\n".join(
        [
            "[Unit]",
            "Description=ccserver contact center (every part)",
            f"Wants={wants}",
            "After=network-online.target",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )
    return units


def _prepare(stack: Stack, user: str, argv: list[str], workdir: Path, writable: list[Path]) -> str:
    return "\n".join(
        [
            "[Unit]",
            "Description=ccserver: render the run dir (configuration, secrets, Asterisk files)",
            "PartOf=ccserver.target",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            f"User={user}",
            f"WorkingDirectory={workdir}",
            f"ExecStart={_command(argv)}",
            *_hardening(writable),
            "",
        ]
    )


def _service(
    part: str, argv: list[str], after: list[str], user: str, stack: Stack, writable: list[Path]
) -> str:
    needs = [f"{PREFIX}-prepare.service", *after]
    return "\n".join(
        [
            "[Unit]",
            f"Description=ccserver: {DESCRIPTIONS[part]}",
            f"Requires={PREFIX}-prepare.service",
            f"After={' '.join(needs)}",
            "PartOf=ccserver.target",
            "StartLimitIntervalSec=300",
            "StartLimitBurst=10",
            "",
            "[Service]",
            "Type=simple",
            f"User={user}",
            f"WorkingDirectory={stack.run_dir}",
            f"ExecStart={_command(argv)}",
            "Restart=on-failure",
            "RestartSec=2",
            f"LimitNOFILE={LIMIT_NOFILE}",
            *_hardening(writable),
            "",
        ]
    )


def _hardening(writable: list[Path]) -> list[str]:
    return [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={' '.join(str(p) for p in writable)}",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
    ]


def _command(argv: list[str]) -> str:
    """A command line as systemd reads it: each word quoted when it needs to be, `%` and
    `$` escaped (systemd would expand them)."""
    words = []
    for word in argv:
        escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
        escaped = escaped.replace("$", "$$")
        needs_quotes = not word or any(c in word for c in " \t\"'\\;")
        words.append(f'"{escaped}"' if needs_quotes else escaped)
    return " ".join(words)
