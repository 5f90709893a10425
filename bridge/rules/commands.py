"""`validate`, `plan` and `schema`: the rules commands of the CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import orjson

from bridge.errors import ConfigError, ConfigErrors
from bridge.exitcodes import ExitCode


def _load(path: str) -> Any:
    from bridge.config import load_config

    return load_config(path, strict_env=False)


def _errors(exc: ConfigError) -> list[ConfigError]:
    return exc.errors if isinstance(exc, ConfigErrors) else [exc]


def validate_command(args: argparse.Namespace) -> int:
    """OK with `FILE: ok: N rules` per file, or FAILED listing every error of every file."""
    failed = False
    for path in args.rules:
        try:
            config = _load(path)
        except ConfigError as exc:
            failed = True
            for err in _errors(exc):
                print(err.format(), file=sys.stderr)
            continue
        if not config.rules and not _declares_rules(path):
            failed = True
            print(
                f"{path}:1: rules: no rules (add a `rules:` list or `rules_file:`)", file=sys.stderr
            )
            continue
        print(f"{path}: ok: {len(config.rules)} rules")
    return ExitCode.FAILED if failed else ExitCode.OK


def _declares_rules(path: str) -> bool:
    """An explicit `rules: []` is a choice; an empty file or a config without rules is a slip."""
    from bridge.yamlio import load_yaml

    doc, _ = load_yaml(path, strict_env=False)
    return isinstance(doc, list) or (
        isinstance(doc, dict) and bool({"rules", "rules_file"} & doc.keys())
    )


def schema_command(args: argparse.Namespace) -> int:
    from bridge.rules.schema import config_schema

    sys.stdout.write(orjson.dumps(config_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _lines(path: str) -> Iterable[str]:
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    # Bytes that are not UTF-8 stay in the line (as surrogates), so that line alone is
    # reported as a decode_error and the others are planned.
    return data.decode("utf-8", errors="surrogateescape").splitlines()


def plan_command(args: argparse.Namespace) -> int:
    """Print the calls; exit 0 even when events fail to decode or map (they are reported)."""
    from bridge.codecs import build_decoder
    from bridge.rules.plan import coalesce_rows, plan_lines, row_json
    from bridge.rules.table import write_table

    try:
        config = _load(args.rules)
        decoder = build_decoder(config.codec)
        lines = _lines(args.events)
    except ConfigError as exc:
        for err in _errors(exc):
            print(err.format(), file=sys.stderr)
        return ExitCode.REFUSED
    except OSError as exc:
        print(f"{args.events}: cannot read: {exc.strerror}", file=sys.stderr)
        return ExitCode.REFUSED
    rows = list(plan_lines(lines, config.rules, decoder, topic=getattr(args, "topic", "events")))
    if args.coalesce:
        rows = coalesce_rows(rows)
    out: TextIO = sys.stdout
    objects = [row_json(row) for row in rows]
    if args.format == "table":
        write_table(objects, out)
    else:
        for obj in objects:
            out.write(orjson.dumps(obj).decode() + "\n")
    return ExitCode.OK
