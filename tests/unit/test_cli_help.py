"""Every command and sub-command answers `--help`: exit 0 and a usage line naming it, never
a traceback (argparse %-formats help texts, so a bare `%` in one breaks its `--help`)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ccserver.cli import build_parser, main

CommandPath = tuple[str, ...]


def command_paths(parser: argparse.ArgumentParser, prefix: CommandPath = ()) -> list[CommandPath]:
    """This parser's path and, depth first, those of every sub-command below it."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, child in action.choices.items():
                if id(child) not in seen:  # an alias is the same parser again
                    seen.add(id(child))
                    paths += command_paths(child, (*prefix, name))
    return paths


PATHS = command_paths(build_parser())


def test_the_walk_finds_the_whole_tree() -> None:
    """The parametrization below is not vacuous: nested sub-commands are found too."""
    assert () in PATHS
    for path in [("license", "issue"), ("erlang", "c"), ("report",), ("loadtest",)]:
        assert path in PATHS
    assert len(PATHS) == len(set(PATHS))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(("ccserver", *p)))
def test_help_exits_0_with_a_usage_line_naming_the_command(
    path: CommandPath, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ccserver PATH --help`, parsed by the real parser, prints its usage and exits 0."""
    monkeypatch.setenv("NO_COLOR", "1")  # plain text whatever the terminal says
    with pytest.raises(SystemExit) as caught:
        main([*path, "--help"])
    out, err = capsys.readouterr()
    assert caught.value.code == 0, err
    assert out.startswith("usage: " + " ".join(("ccserver", *path)) + " "), out
    assert err == ""


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`ccserver staff --example 95598 | head -1`: the reader closes the pipe; the command
    ends quietly (141, as a shell reports SIGPIPE) instead of printing a BrokenPipeError."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccserver", "staff", "--example", "95598"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
