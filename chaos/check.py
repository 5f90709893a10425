"""The oracle: compares what Meisa holds, the DLQ and the committed offsets with the history.

    python -m chaos.check --run-dir var/chaos/last [--sandbox-url http://127.0.0.1:PORT]

Reads the run's `manifest.json` (the expected state, the poison offsets, the instances' exits,
the sandbox clock's jumps), the sandbox's record (`sandbox.json` saved by the runner, or a live
sandbox), the dead-letter topic and the group's committed offsets from the broker. Prints one line
per figure, each with its numbers, then `N passed, M failed`; exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.history import Expected

# Re-sent tracks after crashes, as a share of all tracks (a profile may set its own: the manifest's
# track_budget): each crash re-sends its calls on the wire and about 0.1 s of finished work.
TRACK_DUPLICATE_BUDGET = 0.005
EXIT_REFUSED = 2  # `meisa-bridge run` refused to start
MAX_AGE = 6 * 3600.0  # the OTP rule's max_age (chaos/rules.yaml)
SHUTDOWN_GRACE = 30.0  # pipeline.shutdown_grace_seconds, the default the runs use


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    text: str
    ok: bool | None  # None: a figure reported, not checked

    def line(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "info"}[self.ok]
        return f"{mark}  {self.name}: {self.text}"


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def check_people(expected: Expected, contacts: list[dict[str, Any]]) -> list[Figure]:
    by_email = {c["email"]: c for c in contacts}
    missing = [e for e in expected.people if e not in by_email]
    fields_off, tags_off = 0, 0
    examples: list[str] = []
    for email, want in expected.people.items():
        got = by_email.get(email)
        if got is None:
            continue
        have = {k: got.get(k) for k in ("external_id", "first_name", "last_name")}
        have_cf = {k: got.get("custom_fields", {}).get(k) for k in want["custom_fields"]}
        if have != {k: want[k] for k in have} or have_cf != want["custom_fields"]:
            fields_off += 1
            if len(examples) < 3:
                examples.append(
                    f"{email} version {have_cf.get('version')}"
                    f" != {want['custom_fields']['version']}"
                )
        tags = sorted(t["name"] for t in got.get("tags", []))
        if tags != want["tags"]:
            tags_off += 1
    extra = len(by_email) - (len(expected.people) - len(missing))
    n = len(expected.people)
    return [
        Figure(
            "people",
            f"{n} expected, {n - len(missing)} present, {len(missing)} missing, {extra} unexpected",
            not missing and extra == 0,
        ),
        Figure(
            "final fields",
            f"{n - fields_off - len(missing)} of {n} match, {fields_off} differ"
            + (f" (e.g. {'; '.join(examples)})" if examples else ""),
            fields_off == 0 and not missing,
        ),
        Figure(
            "final tags",
            f"{n - tags_off - len(missing)} of {n} match, {tags_off} differ",
            tags_off == 0 and not missing,
        ),
    ]


def check_tracks(
    expected: Expected,
    events: list[dict[str, Any]],
    outages: list[list[float]] | None = None,
    jumps: list[list[float]] | None = None,
    budget: float = TRACK_DUPLICATE_BUDGET,
) -> list[Figure]:
    seen: Counter[str] = Counter()
    first_at: dict[str, float] = {}
    order: dict[str, list[float]] = defaultdict(list)
    unknown = 0
    for ev in events:
        eid = str((ev.get("properties") or {}).get("eid"))
        if eid not in expected.tracks:
            unknown += 1
            continue
        seen[eid] += 1
        if "timestamp" in ev:
            at = _real_time(epoch(ev["timestamp"]), jumps or [])
            first_at[eid] = min(at, first_at.get(eid, at))
        if seen[eid] == 1:
            order[ev["email"]].append(expected.tracks[eid][1])
    missing = len(expected.tracks) - len(seen)
    people_out, inversions = 0, 0
    for times in order.values():
        bad = sum(1 for a, b in itertools.pairwise(times) if b < a)
        inversions += bad
        people_out += bad > 0
    n = len(expected.tracks)
    return [
        Figure(
            "tracks",
            f"{n} expected, {len(seen)} present, {missing} missing, {unknown} unexpected",
            missing == 0 and unknown == 0,
        ),
        _duplicates(seen, first_at, outages or [], n, budget),
        Figure(
            "track order",
            f"{people_out} of {len(order)} people got tracks out of event-time order "
            f"({inversions} inversions, first deliveries)",
            people_out == 0,
        ),
    ]


def _duplicates(
    seen: Counter[str],
    first_at: dict[str, float],
    outages: list[list[float]],
    n: int,
    budget: float,
) -> Figure:
    """Re-sent tracks, split by whether their first delivery fell in a broker outage: nothing can
    be committed then, so an instance that dies or stalls before the broker is back leaves all
    of that work to the next owner. The others are held to the budget."""
    again = {eid: c - 1 for eid, c in seen.items() if c > 1}
    in_outage = sum(
        c
        for eid, c in again.items()
        if eid in first_at and any(a <= first_at[eid] <= b for a, b in outages)
    )
    dups = sum(again.values())
    rest = dups - in_outage
    share = rest / n if n else 0.0
    return Figure(
        "track duplicates",
        f"{dups} ({dups / n if n else 0:.1%} of tracks): {in_outage} first delivered while the "
        f"broker was down, {rest} ({share:.1%}) otherwise; budget {budget:.1%} "
        "for the latter",
        share <= budget,
    )


def _real_time(virtual: float, jumps: list[list[float]]) -> float:
    """Undo the sandbox clock's offset: `jumps` are (real time, offset from then on)."""
    for real_at, offset in reversed(jumps):
        if virtual - offset >= real_at:
            return virtual - offset
    return virtual


def _twice(
    sends: list[dict[str, Any]], key: Any, outages: list[list[float]], jumps: Any
) -> tuple[int, int]:
    """Groups of sends sharing `key(send)` that went out more than once: (all, in the window).

    In the ledger's documented window: the first send fell in a broker outage, so its ledger
    write could not be acknowledged before the instance that made it stalled or died."""
    groups: dict[str, list[float]] = defaultdict(list)
    for s in sends:
        groups[key(s)].append(_real_time(epoch(s["timestamp"]), jumps))
    twice = [sorted(times) for times in groups.values() if len(times) > 1]
    explained = sum(1 for t in twice if any(a <= t[0] <= b for a, b in outages))
    return len(twice), explained


def check_triggers(
    expected: Expected,
    sends: list[dict[str, Any]],
    jumps: list[list[float]],
    outages: list[list[float]] | None = None,
) -> list[Figure]:
    by_key: Counter[str] = Counter(s.get("idempotency_key") or "" for s in sends)
    outages = outages or []
    twice_key, window_key = _twice(sends, lambda s: s.get("idempotency_key") or "", outages, jumps)
    twice_content, window_content = _twice(
        sends,
        lambda s: json.dumps([s["to_email"], s["trigger_key"], s.get("variables")], sort_keys=True),
        outages,
        jumps,
    )
    sent = [k for k in expected.triggers if by_key[k]]
    stale_sent = [k for k in expected.stale if by_key[k]]
    late = 0
    for s in sends:
        want = expected.triggers.get(s.get("idempotency_key") or "")
        if want is not None and _real_time(epoch(s["timestamp"]), jumps) - want["time"] > MAX_AGE:
            late += 1
    deduplicated = sum(int(s.get("duplicates", 0)) for s in sends)
    n = len(expected.triggers)
    window = "first sent during a broker outage, inside the ledger's documented window"
    return [
        Figure(
            "triggers sent",
            f"{n} expected, {len(sent)} sent, {n - len(sent)} missing",
            len(sent) == n,
        ),
        Figure(
            "triggers twice (idempotency key)",
            f"{twice_key - window_key} keys sent more than once (and {window_key} {window})",
            twice_key == window_key,
        ),
        Figure(
            "triggers twice (recipient+template+variables)",
            f"{twice_content - window_content} sent more than once (and {window_content} {window})",
            twice_content == window_content,
        ),
        Figure(
            "stale triggers",
            f"{len(stale_sent)} of {len(expected.stale)} stale OTPs sent, "
            f"{late} sends past max_age",
            not stale_sent and late == 0,
        ),
        Figure(
            "re-sent triggers Meisa deduplicated",
            f"{deduplicated} (within its one-hour window)",
            None,
        ),
    ]


def check_dlq(expected: Expected, records: list[dict[str, Any]]) -> list[Figure]:
    origin = Counter(
        (
            r["headers"].get("meisa-bridge.topic"),
            int(r["headers"].get("meisa-bridge.partition", -1)),
            int(r["headers"].get("meisa-bridge.offset", -1)),
        )
        for r in records
        if "meisa-bridge.topic" in r["headers"]
    )
    poison = {(p["topic"], p["partition"], p["offset"]) for p in expected.poison}
    missing = poison - set(origin)
    extra = set(origin) - poison
    dups = sum(c - 1 for c in origin.values())
    classes = Counter(
        r["headers"].get("meisa-bridge.error.class") for r in records if tuple_of(r) in extra
    )
    extra_text = f" (extra by class: {dict(classes)})" if extra else ""
    return [
        Figure(
            "DLQ = poison",
            f"{len(poison)} poison, {len(records)} records, {len(missing)} poison missing, "
            f"{len(extra)} other messages{extra_text}",
            not missing and not extra,
        ),
        Figure("DLQ duplicates", f"{dups} records beyond one per origin offset", dups == 0),
    ]


def tuple_of(record: dict[str, Any]) -> tuple[Any, int, int]:
    h = record["headers"]
    return (
        h.get("meisa-bridge.topic"),
        int(h.get("meisa-bridge.partition", -1)),
        int(h.get("meisa-bridge.offset", -1)),
    )


def check_run(
    manifest: dict[str, Any], committed: dict[str, int], ends: dict[str, int]
) -> list[Figure]:
    exits = [h for h in manifest["instances"] if h["event"] == "exit"]
    own = [h for h in exits if h.get("cause") is None]
    halts = [h for h in own if h["code"] != EXIT_REFUSED]
    refused = [h for h in own if h["code"] == EXIT_REFUSED]
    termed = [h for h in exits if h.get("cause") == "term"]
    unclean = [h for h in termed if h["code"] != 0]
    behind = {
        tp: ends[tp] - committed.get(tp, 0) for tp in ends if committed.get(tp, 0) != ends[tp]
    }
    codes = Counter(str(h["code"]) for h in exits)
    figures = [
        Figure(
            "halts",
            f"{len(halts)} of {len(exits)} exits neither caused by the run nor a refused start "
            f"(exit codes of all exits {dict(codes)})",
            not halts,
        ),
        Figure(
            "refused start-ups",
            f"{len(refused)} instances exited 2 (refused to start, e.g. Meisa unreachable)",
            None,
        ),
        Figure(
            "SIGTERM exits",
            f"{len(termed) - len(unclean)} of {len(termed)} SIGTERMs ended with exit code 0 "
            f"({len(unclean)} died of the signal, e.g. during start-up)",
            not unclean,
        ),
        Figure(
            "committed offsets",
            f"{len(ends) - len(behind)} of {len(ends)} partitions at their end, "
            f"lag {sum(behind.values())}",
            not behind,
        ),
    ]
    figures.append(_term_times(manifest["instances"]))
    progress = manifest.get("progress") or {}
    if progress:
        figures.append(
            Figure(
                "progress under faults",
                f"{progress.get('committed_in_window', 0)} of {progress.get('total', 0)} "
                f"messages committed during the {progress.get('window', 0):.0f}s fault window",
                None,
            )
        )
        figures.append(
            Figure(
                "drain",
                f"{progress.get('drain_seconds', 0):.0f}s after the last fault until every "
                "offset was committed",
                None,
            )
        )
    return figures


def _term_times(history: list[dict[str, Any]]) -> Figure:
    """Seconds from an instance's first SIGTERM to its exit (as the runner saw it, within about
    a second): the shutdown grace is 30 s, so much longer means a stop that stalled."""
    termed: dict[str, float] = {}
    took: dict[str, float] = {}
    for h in history:
        if h["event"] == "SIGTERM":
            termed.setdefault(h["instance"], h["t"])
        elif h["event"] == "exit" and h["instance"] in termed and h["instance"] not in took:
            took[h["instance"]] = h["t"] - termed[h["instance"]]
    if not took:
        return Figure("SIGTERM exit times", "no SIGTERM", None)
    slowest = max(took, key=took.__getitem__)
    over = sum(1 for t in took.values() if t > SHUTDOWN_GRACE + 10)
    return Figure(
        "SIGTERM exit times",
        f"slowest {took[slowest]:.0f}s ({slowest}); {over} of {len(took)} over "
        f"{SHUTDOWN_GRACE + 10:.0f}s (the shutdown grace plus 10 s)",
        None,
    )


def run_checks(
    manifest: dict[str, Any],
    sandbox: dict[str, Any],
    dlq: list[dict[str, Any]],
    committed: dict[str, int],
    ends: dict[str, int],
) -> list[Figure]:
    expected = Expected.from_json(manifest["expected"])
    return [
        *check_people(expected, sandbox["contacts"]),
        *check_tracks(
            expected,
            sandbox["events"],
            manifest.get("broker_outages", []),
            manifest.get("clock_jumps", []),
            manifest.get("track_budget", TRACK_DUPLICATE_BUDGET),
        ),
        *check_triggers(
            expected,
            sandbox["sends"],
            manifest.get("clock_jumps", []),
            manifest.get("broker_outages", []),
        ),
        *check_dlq(expected, dlq),
        *check_run(manifest, committed, ends),
    ]


def report(figures: list[Figure]) -> int:
    for figure in figures:
        print(figure.line())
    passed = sum(1 for f in figures if f.ok is True)
    failed = sum(1 for f in figures if f.ok is False)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def sandbox_record(url: str) -> dict[str, Any]:
    from bridge.sandbox.testing import SandboxHandle

    handle = SandboxHandle(url)
    return {"contacts": handle.contacts(), "events": handle.events(), "sends": handle.sends()}


def check_dir(run_dir: Path, sandbox_url: str | None = None) -> int:
    from chaos import kafka_io

    manifest = json.loads((run_dir / "manifest.json").read_text())
    if sandbox_url:
        sandbox = sandbox_record(sandbox_url)
    else:
        sandbox = json.loads((run_dir / "sandbox.json").read_text())
    bootstrap, topics = manifest["bootstrap"], manifest["topics"]
    dlq = kafka_io.read_topic(bootstrap, manifest["dlq_topic"])
    committed = kafka_io.committed(bootstrap, manifest["group"], topics)
    ends = kafka_io.end_offsets(bootstrap, topics)
    return report(run_checks(manifest, sandbox, dlq, committed, ends))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos.check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--run-dir", type=Path, default=Path("var/chaos/last"))
    parser.add_argument(
        "--sandbox-url", default=None, help="read a live sandbox instead of sandbox.json"
    )
    args = parser.parse_args(argv)
    return check_dir(args.run_dir, args.sandbox_url)


if __name__ == "__main__":
    sys.exit(main())
