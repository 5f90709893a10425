"""Placeholder until its issue lands."""

from __future__ import annotations

import argparse
import sys


def validate_command(args: argparse.Namespace) -> int:
    print("not implemented yet", file=sys.stderr)
    return 2


def plan_command(args: argparse.Namespace) -> int:
    print("not implemented yet", file=sys.stderr)
    return 2


def schema_command(args: argparse.Namespace) -> int:
    print("not implemented yet", file=sys.stderr)
    return 2
