"""Rules engine throughput: examples/events.jsonl mapped through examples/rules.yaml on one core.

Prints events/s per CPU second (and wall) for map only (envelopes decoded once), for decode +
map, and for a baseline in which every expression, plain dotted paths included, goes through
JMESPath. The envelope context is rebuilt per event in every variant, as the pipeline does.

    .venv/bin/python bench/rules_engine.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from bridge.codecs import build_decoder
from bridge.config import load_rules
from bridge.errors import DecodeError, MappingError
from bridge.events import Envelope
from bridge.rules import expressions
from bridge.rules.engine import RuleSet
from bridge.settings import CodecSettings

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "examples" / "rules.yaml"
EVENTS = ROOT / "examples" / "events.jsonl"


def _messages() -> list[bytes]:
    return [line.encode() for line in EVENTS.read_text().splitlines() if line.strip()]


def _envelopes(messages: list[bytes]) -> list[Envelope]:
    decoder = build_decoder(CodecSettings(format="json"))
    out = []
    for i, value in enumerate(messages):
        try:
            out.append(_decode(decoder, i, value))
        except DecodeError:
            continue
    return out


def _decode(decoder: object, offset: int, value: bytes) -> Envelope:
    return decoder.decode(  # type: ignore[attr-defined, no-any-return]
        topic="events",
        partition=0,
        offset=offset,
        key=None,
        value=value,
        headers=None,
        timestamp=None,
    )


def _map_all(rules: RuleSet, envelopes: list[Envelope]) -> int:
    for env in envelopes:
        with contextlib.suppress(MappingError):
            rules.map(env)
    return len(envelopes)


def _rate(label: str, seconds: float, run: Callable[[], int]) -> float:
    """events/s of this process's CPU time (wall time too: it differs when the host is busy)."""
    run()  # warm up caches
    done, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        done += run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = done / cpu
    print(
        f"{label:<44} {rate:>10,.0f} events/s CPU  {1e6 / rate:6.1f} us/event"
        f"  ({done / wall:,.0f}/s wall)"
    )
    return rate


def _jmespath_only_rules() -> RuleSet:
    """The same rules with the dotted-path fast path disabled."""
    saved = expressions._PATH
    expressions._PATH = re.compile(r"(?!)")  # matches nothing: every path goes to JMESPath
    try:
        return load_rules(RULES)
    finally:
        expressions._PATH = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    messages = _messages()
    envelopes = _envelopes(messages)
    rules, baseline = load_rules(RULES), _jmespath_only_rules()
    decoder = build_decoder(CodecSettings(format="auto"))

    def decode_and_map() -> int:
        for i, value in enumerate(messages):
            with contextlib.suppress(DecodeError, MappingError):
                rules.map(_decode(decoder, i, value))
        return len(messages)

    print(f"{len(envelopes)} events, {len(rules)} rules, one core")
    fast = _rate(
        "map (dotted paths fast, JMESPath otherwise)",
        args.seconds,
        lambda: _map_all(rules, envelopes),
    )
    slow = _rate(
        "map (baseline: every path through JMESPath)",
        args.seconds,
        lambda: _map_all(baseline, envelopes),
    )
    _rate("decode (auto) + map", args.seconds, decode_and_map)
    print(f"fast path speed-up over the baseline: {fast / slow:.2f}x (target >= 50,000 events/s)")


if __name__ == "__main__":
    main()
