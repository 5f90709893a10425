"""`meisa-bridge status --config FILE`: how far behind the bridge's consumer group is, who holds
which partition, the dead-letter topic's size, and (from a replica's /metrics) the rate budget and
when the lag will be gone.

    model.py    the values shown and the pure arithmetic: lag, pace, time to catch up
    scrape.py   reads a replica's /metrics (Prometheus text) into the budget figures
    render.py   the text and JSON output
    command.py  the command: reads the group and offsets through bridge.kafka, samples twice
"""

from __future__ import annotations

import argparse


def status_command(args: argparse.Namespace) -> int:
    from bridge.status.command import status_command as run

    return run(args)
