"""plan on examples/ equals tests/golden/ byte for byte. UPDATE_GOLDEN=1 rewrites the files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden"


def _plan(*extra: str) -> str:
    cmd = [sys.executable, "-m", "bridge", "plan", "--rules", "examples/rules.yaml"]
    cmd += ["--events", "examples/events.jsonl", *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("plan_examples.jsonl", ()),
        ("plan_examples_coalesced.jsonl", ("--coalesce",)),
        ("plan_examples_table.txt", ("--format", "table")),
    ],
)
def test_plan_output_on_the_examples_matches_golden(name: str, flags: tuple[str, ...]) -> None:
    out = _plan(*flags)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(out, encoding="utf-8")
    assert out == path.read_text(encoding="utf-8")


def test_coalesce_merges_the_backlog_of_logins_into_one_upsert() -> None:
    plain = [line for line in _plan().splitlines() if '"rule":"login"' in line]
    merged = [line for line in _plan("--coalesce").splitlines() if '"rule":"login"' in line]
    assert len(merged) < len(plain)
    diego = [line for line in merged if '"usr_1002"' in line]
    assert len(diego) == 1
    assert '"coalesced_offsets":[2,9,10,11]' in diego[0]
    assert '"signin_count":6' in diego[0]
