"""Placeholder until its issue lands."""

from __future__ import annotations

import argparse
import sys


def run_command(args: argparse.Namespace) -> int:
    print("not implemented yet", file=sys.stderr)
    return 2
