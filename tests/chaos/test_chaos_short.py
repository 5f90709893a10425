"""The short chaos profile end to end: its oracle must report `N passed, 0 failed`.

Skipped unless pytest runs with `--chaos` (`scripts/test.sh --chaos` adds it to `make test`).
It restarts the broker on KAFKA_PORT through scripts/kafka.sh, as `make chaos` does.
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
def test_short_chaos_profile_passes_the_oracle(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = kafka_bootstrap.rsplit(":", 1)[1]
    proc = subprocess.run(
        [sys.executable, "-m", "chaos", "--profile", "short", "--kafka-port", port],
        cwd=ROOT,
        env={**os.environ, "KAFKA_PORT": port},
        capture_output=True,
        text=True,
        check=False,
    )
    summary = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    print("\n".join(summary))
    assert proc.returncode == 0, "\n".join(line for line in summary if line.startswith("FAIL"))
    assert proc.stdout.rstrip().endswith(" 0 failed")
