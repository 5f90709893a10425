"""The short chaos profile end to end: its oracle must report `N passed, 0 failed`.

Skipped unless pytest runs with `--chaos`, which `make test` (scripts/test.sh) passes; it runs
after every other test. It restarts the broker on KAFKA_PORT through scripts/kafka.sh, as
`make chaos` does. CHAOS_SEED picks another seeded history and schedule (default 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.chaos
@pytest.mark.timeout(1800)
def test_short_chaos_profile_passes_the_oracle(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = kafka_bootstrap.rsplit(":", 1)[1]
    seed = os.environ.get("CHAOS_SEED", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "chaos", "--profile", "short", "--kafka-port", port, "--seed", seed],
        cwd=ROOT,
        env={**os.environ, "KAFKA_PORT": port},
        capture_output=True,
        text=True,
        check=False,
    )
    summary = [
        line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", "info"))
    ]
    with capsys.disabled():  # the figures in make test's output, passed or not
        print("\n" + "\n".join(summary))
    print(proc.stdout[-20_000:], proc.stderr[-5_000:])  # shown when the test fails
    assert proc.returncode == 0, "\n".join(line for line in summary if line.startswith("FAIL"))
    assert proc.stdout.rstrip().endswith(" 0 failed")
