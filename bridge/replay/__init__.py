"""Bounded replay / backfill: read a fixed offset range, fold each contact's state, send it once.

fold.py      per-contact folding of upserts and tag changes into one final state
state.py     the sqlite state file that makes a run resumable
budget.py    the key's rate budget and the ETA it implies
progress.py  progress bar on a terminal, periodic log lines otherwise
runner.py    the read phase and the send phase
command.py   `meisa-bridge replay`
"""

from __future__ import annotations

import argparse


def replay_command(args: argparse.Namespace) -> int:
    from bridge.replay.command import replay_command as run

    return run(args)
