"""The command line as a user meets it: help texts, bad input files, closed pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("run", "validate", "plan", "test", "schema", "sandbox", "replay", "dlq")
RULES = "rules:\n  - name: r\n    on: x\n    do:\n      - track: {email: a@b.c, event_name: e}\n"


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "bridge", *args]
    return subprocess.run(cmd, cwd=ROOT, input=stdin, capture_output=True, check=False, timeout=60)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_describes_it_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert not description.startswith(("options:", "positional")), text
    assert f"meisa-bridge {command}" in text.split("examples:")[1], text


def test_plan_reports_a_line_that_is_not_utf8_and_goes_on(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"type":"x","data":{}}\n{"type":"x","note":"\xff"}\n{"type":"x"}\n')
    done = _cli("plan", "--rules", str(rules), "--events", str(events))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 3
    assert '"outcome":"decode_error"' in lines[1]
    assert '"offset":1' in lines[1]
    assert "line 2" in lines[1]
    assert b"Traceback" not in done.stderr


def test_output_into_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    events = b'{"type":"x","data":{}}\n' * 20000
    cmd = [sys.executable, "-m", "bridge", "plan", "--rules", str(rules), "--events", "-"]
    with subprocess.Popen(
        cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdin.write(events)
        proc.stdin.close()
        proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read()
        proc.wait(timeout=60)
    assert b"Traceback" not in err
    assert proc.returncode != 0


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("run", ["0 stopped", "2 refused to start", "3 halted"]),
        ("plan", ["0 planned", "2 bad rules or files"]),
        ("validate", ["0 all files ok", "1 errors were listed"]),
        ("replay", ["0 done", "1 some calls rejected", "2 usage or config error", "3 halted"]),
    ],
)
def test_help_numbers_exit_codes_as_the_shared_table_does(
    command: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for item in expected:
        assert item in text, text
