"""The oracle: compares what Meisa holds, the DLQ, the outcome topic and the committed offsets
with the history.

    python -m chaos.check --run-dir var/chaos/last [--sandbox-url http://127.0.0.1:PORT]

Reads the run's `manifest.json` (the expected state, the poison offsets, the instances' exits,
the sandbox clock's jumps), the sandbox's record (`sandbox.json` saved by the runner, or a live
sandbox), the dead-letter topic, the outcome topic when the profile turned it on, and the group's
committed offsets from the broker. Prints one line per figure, each with its numbers, then
`N passed, M failed`; exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.history import Expected

# Re-sent tracks after crashes, as a share of all tracks (a profile may set its own: the manifest's
# track_budget): each crash re-sends its calls on the wire and a few hundredths of a second of
# finished work.
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
    sends: list[dict[str, Any]],
    key: Any,
    *,
    outages: list[list[float]],
    jumps: Any,
    kills: Sequence[float] = (),
    recorded: Mapping[str, list[float]] | None = None,
) -> tuple[int, int]:
    """Groups of sends sharing `key(send)` that went out more than once: (all, in the window).

    In the ledger's documented window (docs/email-ledger.md, "the remaining window", case 1): the
    first send's ledger record never reached the broker and the partition was read again past
    Meisa's hour. Either the first send fell in a broker outage (no record can be written then),
    or `recorded` (the ledger topic: idempotency key -> each record's `sent_at`) holds no record
    of it, an instance was SIGKILLed between the two sends (the one that sent it, before its
    record went out) and the sandbox's clock jumped an hour between them."""
    groups: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for s in sends:
        when = _real_time(epoch(s["timestamp"]), jumps)
        groups[key(s)].append((when, s.get("idempotency_key") or ""))
    twice = [sorted(sent) for sent in groups.values() if len(sent) > 1]

    def in_window(sent: list[tuple[float, str]]) -> bool:
        (first, idem), (again, _) = sent[0], sent[1]
        if any(a <= first <= b for a, b in outages):
            return True
        if recorded is None:
            return False
        # The first send's record would carry a sent_at between it and the second send.
        never_recorded = not any(first - 1 <= at < again - 1 for at in recorded.get(idem, []))
        killed = any(first <= k <= again for k in kills)
        jumped = any(first < real_at <= again for real_at, _ in jumps)
        return never_recorded and killed and jumped

    return len(twice), sum(1 for sent in twice if in_window(sent))


def check_triggers(
    expected: Expected,
    sends: list[dict[str, Any]],
    jumps: list[list[float]],
    outages: list[list[float]] | None = None,
    *,
    kills: list[float] | None = None,
    recorded: Mapping[str, list[float]] | None = None,
) -> list[Figure]:
    """`recorded`: the sent-email ledger's records (None: the run had no ledger)."""
    by_key: Counter[str] = Counter(s.get("idempotency_key") or "" for s in sends)
    outages, kills = outages or [], kills or []
    seen = {"outages": outages, "jumps": jumps, "kills": kills, "recorded": recorded}
    twice_key, window_key = _twice(sends, lambda s: s.get("idempotency_key") or "", **seen)
    twice_content, window_content = _twice(
        sends,
        lambda s: json.dumps([s["to_email"], s["trigger_key"], s.get("variables")], sort_keys=True),
        **seen,
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
    window = (
        "first sent during a broker outage or by an instance killed before its ledger record "
        "went out, and again after Meisa's hour: inside the ledger's documented window"
    )
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


# Outcome records (docs/operations.md, "The outcome topic"): what each kind of finished call says.
ACCEPTED = ("sent", "scheduled")
FINISHED = ("sent", "scheduled", "skipped")


def _contact_key(doc: dict[str, Any]) -> str:
    """The key a record must carry: the call's external_id, else its lower-cased email."""
    if doc.get("external_id") not in (None, ""):
        return str(doc["external_id"])
    return str(doc.get("email") or "").strip().lower()


def check_outcomes(
    expected: Expected,
    sandbox: dict[str, Any],
    records: list[dict[str, Any]],
    ends: dict[str, int],
    *,
    outages: list[list[float]] | None = None,
    jumps: list[list[float]] | None = None,
) -> list[Figure]:
    """The outcome topic against what Meisa received and what was consumed.

    Every call Meisa holds has a record naming it (a track by its event id, a trigger's send by
    its idempotency key and email_send_id, a contact by its email and external_id, a tag by its
    person); every consumed offset has a finished record; poison has only `dead_lettered` records,
    at least one when it made a call; each record is keyed by its person, and each key's records
    are in one partition. A message's commit waits for its records' acknowledgement, so no
    missing record is allowed for; the one gap the design leaves (a record unacknowledged for
    5 s, docs/chaos.md) fails too, and the text says how many of the missing calls Meisa received
    during a broker outage, the only time that gap opens."""
    docs = [r["value"] for r in records]
    window = _in_outage(outages or [], jumps or [])
    return [
        _outcome_tracks(sandbox["events"], docs, window),
        _outcome_sends(sandbox["sends"], docs, window),
        _outcome_contacts(sandbox["contacts"], docs),
        _outcome_offsets(expected, docs, ends),
        _outcome_poison(expected, docs),
        _outcome_keys(records),
        _outcome_repeats(docs),
    ]


Test = Callable[[dict[str, Any]], bool]


def _in_outage(outages: list[list[float]], jumps: list[list[float]]) -> Test:
    def during(item: dict[str, Any]) -> bool:
        if "timestamp" not in item:
            return False
        at = _real_time(epoch(item["timestamp"]), jumps)
        return any(a <= at <= b for a, b in outages)

    return during


def _missing_text(
    missing: list[dict[str, Any]], during: Test, name: Callable[[dict[str, Any]], object]
) -> str:
    if not missing:
        return ""
    in_outage = sum(1 for m in missing if during(m))
    examples = ", ".join(str(name(m)) for m in missing[:3])
    return f" (e.g. {examples}; {in_outage} of them received during a broker outage)"


def _eid(event: dict[str, Any]) -> str:
    return str((event.get("properties") or {}).get("eid"))


def _outcome_tracks(
    events: list[dict[str, Any]], docs: list[dict[str, Any]], during: Test
) -> Figure:
    recorded = {
        str(d.get("event_id"))
        for d in docs
        if d.get("kind") == "track" and d.get("outcome") in ACCEPTED
    }
    missing = [ev for ev in events if _eid(ev) not in recorded]
    return Figure(
        "outcome records: tracks",
        f"{len(events) - len(missing)} of {len(events)} tracks Meisa received have a `sent` "
        f"record with their event id, {len(missing)} missing"
        + _missing_text(missing, during, _eid),
        not missing,
    )


def _outcome_sends(sends: list[dict[str, Any]], docs: list[dict[str, Any]], during: Test) -> Figure:
    """A send's record carries its email_send_id. A trigger whose record a crash cut off before
    its commit, or whose answer a revoke cancelled on the wire, is delivered again and skipped
    by the sent-email ledger (`already_sent`, no id) or replayed by Meisa (the same id)."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in docs:
        if d.get("kind") == "trigger":
            by_key[str(d.get("idempotency_key"))].append(d)

    missing, by_ledger = [], 0
    for send in sends:
        found = by_key.get(str(send.get("idempotency_key")), [])
        if any(
            d.get("outcome") in ACCEPTED and d.get("email_send_id") == send["email_send_id"]
            for d in found
        ):
            continue
        if any(d.get("outcome") == "skipped" and d.get("reason") == "already_sent" for d in found):
            by_ledger += 1
        else:
            missing.append(send)
    return Figure(
        "outcome records: triggers",
        f"{len(sends) - len(missing)} of {len(sends)} sends Meisa holds have a record under "
        f"their idempotency key ({by_ledger} only as already_sent), {len(missing)} missing"
        + _missing_text(missing, during, lambda s: s.get("idempotency_key")),
        not missing,
    )


def _outcome_contacts(contacts: list[dict[str, Any]], docs: list[dict[str, Any]]) -> Figure:
    """Each contact has an accepted upsert record with its email and external_id, and each of its
    tags other than the upsert's own (`signup`) an accepted add_tag record."""
    upserted = {
        (str(d.get("email") or "").lower(), d.get("external_id"))
        for d in docs
        if d.get("kind") == "upsert" and d.get("outcome") in ACCEPTED
    }
    tagged = {
        d.get("external_id")
        for d in docs
        if d.get("kind") == "add_tag" and d.get("outcome") in ACCEPTED
    }
    no_upsert = [
        c["email"]
        for c in contacts
        if (str(c["email"]).lower(), c.get("external_id")) not in upserted
    ]
    no_tag = [
        c["email"]
        for c in contacts
        if any(t["name"] != "signup" for t in c.get("tags", []))
        and c.get("external_id") not in tagged
    ]
    examples = ", ".join((no_upsert + no_tag)[:3])
    return Figure(
        "outcome records: contacts",
        f"{len(contacts) - len(no_upsert)} of {len(contacts)} contacts have an upsert record, "
        f"{len(no_upsert)} missing; {len(no_tag)} tagged contacts without an add_tag record"
        + (f" (e.g. {examples})" if examples else ""),
        not no_upsert and not no_tag,
    )


def _outcome_offsets(
    expected: Expected, docs: list[dict[str, Any]], ends: dict[str, int]
) -> Figure:
    """Every consumed offset but the poison has a finished (sent, scheduled, skipped) record;
    `ends` are the source partitions' end offsets ("topic/partition": end), all read from 0."""
    poison = {(p["topic"], p["partition"], p["offset"]) for p in expected.poison}
    finished = {
        (d.get("topic"), d.get("partition"), d.get("offset"))
        for d in docs
        if d.get("outcome") in FINISHED
    }
    total, missing = 0, []
    for tp, end in sorted(ends.items()):
        topic, partition = tp.rsplit("/", 1)
        for offset in range(end):
            where = (topic, int(partition), offset)
            if where in poison:
                continue
            total += 1
            if where not in finished:
                missing.append(where)
    examples = ", ".join(f"{t}/{p}@{o}" for t, p, o in missing[:3])
    return Figure(
        "outcome records: events",
        f"{total - len(missing)} of {total} consumed events (poison aside) have a finished "
        f"record, {len(missing)} missing" + (f" (e.g. {examples})" if examples else ""),
        not missing,
    )


def _outcome_poison(expected: Expected, docs: list[dict[str, Any]]) -> Figure:
    """Poison has only `dead_lettered` records, and at least one when it made a call (a message
    that cannot be decoded or mapped makes no call: the topic records finished calls, so it has
    none); nothing else is dead-lettered."""
    poison = {
        (p["topic"], p["partition"], p["offset"]): bool(p.get("call")) for p in expected.poison
    }
    at: dict[tuple[Any, Any, Any], set[str]] = defaultdict(set)
    for d in docs:
        at[d.get("topic"), d.get("partition"), d.get("offset")].add(str(d.get("outcome")))
    calls = [w for w, call in poison.items() if call]
    recorded = [w for w in calls if "dead_lettered" in at.get(w, set())]
    wrong = [w for w in poison if at.get(w, set()) - {"dead_lettered"}]
    stray = [w for w, outcomes in at.items() if "dead_lettered" in outcomes and w not in poison]
    no_call = len(poison) - len(calls)
    no_call_recorded = sum(1 for w, call in poison.items() if not call and w in at)
    return Figure(
        "outcome records: poison",
        f"{len(recorded)} of {len(calls)} poison messages making a call have a dead_lettered "
        f"record; {no_call_recorded} of {no_call} that make none (undecodable, unmappable) have "
        f"one; {len(wrong)} poison with another outcome, {len(stray)} other messages "
        "dead-lettered",
        len(recorded) == len(calls) and not wrong and not stray,
    )


def _outcome_keys(records: list[dict[str, Any]]) -> Figure:
    wrong = [r for r in records if r.get("key") != _contact_key(r["value"])]
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in records:
        partitions[str(r.get("key"))].add(int(r["partition"]))
    split = [k for k, ps in partitions.items() if len(ps) > 1]
    examples = [f"key {r.get('key')!r} for {_contact_key(r['value'])!r}" for r in wrong[:2]]
    examples += [f"{k!r} in partitions {sorted(partitions[k])}" for k in split[:2]]
    return Figure(
        "outcome records keyed by person",
        f"{len(records) - len(wrong)} of {len(records)} records keyed by their person, "
        f"{len(split)} of {len(partitions)} keys in more than one partition"
        + (f" (e.g. {'; '.join(examples)})" if examples else ""),
        not wrong and not split,
    )


def _outcome_repeats(docs: list[dict[str, Any]]) -> Figure:
    seen = Counter(
        (d.get("topic"), d.get("partition"), d.get("offset"), d.get("rule"), d.get("action"))
        for d in docs
    )
    again = sum(c - 1 for c in seen.values())
    return Figure(
        "outcome records again",
        f"{again} records beyond one per event and action (at least once: re-sent calls are "
        f"recorded again), {len(docs)} in all",
        None,
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
    *,
    outcomes: list[dict[str, Any]] | None = None,
    ledger: Mapping[str, list[float]] | None = None,
) -> list[Figure]:
    """Every check; the outcome topic's only when `outcomes` were read (the profile's topic);
    `ledger`: the sent-email ledger's records, key -> sent_at (None: the run had none)."""
    expected = Expected.from_json(manifest["expected"])
    figures = [
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
            kills=[h["t"] for h in manifest["instances"] if h.get("cause") == "kill"],
            recorded=ledger,
        ),
        *check_dlq(expected, dlq),
        *check_run(manifest, committed, ends),
    ]
    if outcomes is not None:
        figures += check_outcomes(
            expected,
            sandbox,
            outcomes,
            ends,
            outages=manifest.get("broker_outages", []),
            jumps=manifest.get("clock_jumps", []),
        )
    return figures


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
    outcomes_topic = manifest.get("outcomes_topic")
    outcomes = (
        kafka_io.read_topic(bootstrap, outcomes_topic, values=True) if outcomes_topic else None
    )
    ledger_topic = manifest.get("ledger_topic")
    ledger: dict[str, list[float]] | None = None
    if ledger_topic:
        ledger = defaultdict(list)
        for row in kafka_io.read_topic(bootstrap, ledger_topic, values=True):
            if row["key"] is not None and isinstance(row["value"], dict):
                ledger[row["key"]].append(float(row["value"].get("sent_at", 0)))
    return report(
        run_checks(manifest, sandbox, dlq, committed, ends, outcomes=outcomes, ledger=ledger)
    )


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
