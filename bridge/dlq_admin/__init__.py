"""`meisa-bridge dlq list|show|redrive`: inspect the dead-letter topic and redrive records.

    records.py   DLQ headers decoded into a record model, filters, redrive markers, rendering
    redrive.py   one record through the current rules, re-dead-lettered if it fails again
    commands.py  the command: reads the topic through bridge.kafka.ranges, prints, redrives

The producer, the breaker and the header names belong to bridge.dlq.
"""

from __future__ import annotations

import argparse


def dlq_command(args: argparse.Namespace) -> int:
    from bridge.dlq_admin.commands import dlq_command as run

    return run(args)
