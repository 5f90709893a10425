"""What `replay` prints: the dry-run plan and the end-of-run summary (text or JSON)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TextIO

from bridge.exitcodes import ExitCode
from bridge.meisa.calls import ENDPOINTS
from bridge.replay.budget import Budget, format_duration
from bridge.replay.state import StateStore

if TYPE_CHECKING:
    from bridge.replay.command import ReplayOptions


def _group(counters: dict[str, int], prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: v for k, v in sorted(counters.items()) if k.startswith(prefix)}


def _reading(store: StateStore) -> dict[str, Any]:
    counters = store.counters()
    return {
        "events": counters.get("events", 0),
        "decode_errors": counters.get("error.decode", 0),
        "mapping_errors": counters.get("error.map", 0),
        "contacts": store.contact_count(),
        "ranges": [
            {"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end}
            for r in store.ranges()
        ],
    }


def _table(counts: dict[str, int], out: TextIO) -> None:
    for kind, n in sorted(counts.items()):
        endpoint = ENDPOINTS.get(kind, kind)  # type: ignore[call-overload]
        print(f"  {endpoint:<34} {n:>10,}", file=out)
    print(f"  {'total':<34} {sum(counts.values()):>10,}", file=out)


def print_plan(
    store: StateStore, options: ReplayOptions, budget: Budget, *, out: TextIO, now: float
) -> None:
    planned, stale = store.planned_by_endpoint(now)
    total = sum(planned.values())
    seconds = budget.seconds_for(total)
    report = {
        "run": options.run_name,
        "dry_run": True,
        **_reading(store),
        "calls": planned,
        "stale": stale,
        "budget": budget.describe(),
        "seconds": seconds,
    }
    if options.output == "json":
        print(json.dumps(report), file=out)
        return
    _header(report, out)
    print("would send (nothing was sent):", file=out)
    _table(planned, out)
    if stale:
        print(f"not sent, older than their max_age: {stale:,}", file=out)
    print(f"rate budget {budget.describe()}: about {format_duration(seconds)}", file=out)


def _header(report: dict[str, Any], out: TextIO) -> None:
    print(f"replay {report['run']}", file=out)
    for r in report["ranges"]:
        print(f"  {r['topic']}[{r['partition']}] offsets {r['start']}..{r['end']}", file=out)
    print(
        f"events {report['events']:,} (decode errors {report['decode_errors']:,}, "
        f"mapping errors {report['mapping_errors']:,}), contacts {report['contacts']:,}",
        file=out,
    )


def print_summary(store: StateStore, options: ReplayOptions, *, out: TextIO) -> int:
    """The end-of-run summary; returns the exit code (1 when calls were rejected)."""
    counters = store.counters()
    report = {
        "run": options.run_name,
        "dry_run": False,
        **_reading(store),
        "calls": _group(counters, "sent."),
        "skipped": _group(counters, "skip."),
        "failed": _group(counters, "failed."),
    }
    if options.output == "json":
        print(json.dumps(report), file=out)
    else:
        _header(report, out)
        print("sent:", file=out)
        _table(report["calls"], out)
        for name in ("skipped", "failed"):
            if report[name]:
                parts = ", ".join(f"{k} {v:,}" for k, v in report[name].items())
                print(f"{name}: {parts}", file=out)
    return ExitCode.FAILED if report["failed"] else ExitCode.OK
