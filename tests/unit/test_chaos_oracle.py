"""The chaos suite's pure parts: the seeded schedule, the history's model, and the oracle."""

from __future__ import annotations

import copy
from typing import Any

from chaos.check import Figure, check_tracks, check_triggers, epoch, run_checks
from chaos.history import TOPICS, build, iso
from chaos.schedule import PROFILES, SANDBOX_FAULTS, make_schedule

NOW = 1_800_000_000.0


def test_a_seed_gives_the_same_schedule_and_the_short_profile_has_every_fault() -> None:
    short = PROFILES["short"]
    first = make_schedule(short, 7, stop_seconds=50)
    assert first == make_schedule(short, 7, stop_seconds=50)
    assert first != make_schedule(short, 8, stop_seconds=50)
    kinds = {f.kind for f in first}
    assert kinds >= {"kill", "zombie", "term", "broker", "scale-out", "scale-in", "outage"}
    assert kinds >= set(SANDBOX_FAULTS)


def test_the_long_history_has_50000_events_on_three_topics_in_time_order() -> None:
    long = PROFILES["long"]
    messages, expected = build(1, long.people, NOW, poison=long.poison)
    assert len(messages) >= 50_000
    assert len(expected.people) == 2000
    assert {m.topic for m in messages} == set(TOPICS)
    assert sum(m.kind == "poison" for m in messages) == long.poison
    for topic in TOPICS:
        times = [m.time for m in messages if m.topic == topic]
        assert times == sorted(times)


def _perfect_record(expected: Any, now: float = NOW) -> dict[str, Any]:
    contacts = [
        {
            "email": email,
            "external_id": want["external_id"],
            "first_name": want["first_name"],
            "last_name": want["last_name"],
            "custom_fields": dict(want["custom_fields"]),
            "tags": [{"name": t} for t in want["tags"]],
        }
        for email, want in expected.people.items()
    ]
    tracks = sorted(expected.tracks.items(), key=lambda kv: kv[1][1])
    events = [{"email": email, "properties": {"eid": eid}} for eid, (email, _t) in tracks]
    sends = [
        {
            "idempotency_key": key,
            "to_email": send["to_email"],
            "trigger_key": "verification_code",
            "variables": send["variables"],
            "timestamp": iso(send["time"] + 60),
            "duplicates": 0,
        }
        for key, send in expected.triggers.items()
    ]
    return {"contacts": contacts, "events": events, "sends": sends}


def _checks(expected: Any, record: dict[str, Any], dlq: list[dict[str, Any]]) -> list[Figure]:
    manifest = {
        "expected": expected.to_json(),
        "instances": [
            {"t": 10.0, "instance": "b1", "event": "SIGTERM"},
            {"t": 12.0, "instance": "b1", "event": "exit", "code": 0, "cause": "term"},
        ],
        "clock_jumps": [],
    }
    return run_checks(manifest, record, dlq, {"app.users/0": 5}, {"app.users/0": 5})


def _dlq_for(poison: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "headers": {
                "meisa-bridge.topic": p["topic"],
                "meisa-bridge.partition": str(p["partition"]),
                "meisa-bridge.offset": str(p["offset"]),
            }
        }
        for p in poison
    ]


def _failed(figures: list[Figure]) -> set[str]:
    return {f.name for f in figures if f.ok is False}


def test_the_oracle_passes_a_perfect_record_and_names_each_fault_in_a_broken_one() -> None:
    _, expected = build(3, 12, NOW, poison=2)
    expected.poison = [{"topic": "app.users", "partition": 0, "offset": n} for n in (3, 9)]
    record = _perfect_record(expected)
    dlq = _dlq_for(expected.poison)
    assert _failed(_checks(expected, record, dlq)) == set()

    broken = copy.deepcopy(record)
    broken["sends"].append(dict(broken["sends"][0]))  # one email twice
    broken["events"].reverse()  # tracks against event-time order
    broken["events"].pop()  # and one missing
    broken["contacts"][0]["custom_fields"]["version"] = -5
    assert _failed(_checks(expected, broken, dlq + dlq[:1])) == {
        "tracks",
        "track order",
        "triggers twice (idempotency key)",
        "triggers twice (recipient+template+variables)",
        "final fields",
        "DLQ duplicates",
    }


def test_a_stale_trigger_sent_fails_the_oracle() -> None:
    _, expected = build(5, 30, NOW, poison=0)
    assert expected.stale, "the history has stale OTPs"
    record = _perfect_record(expected)
    key, email = next(iter(expected.stale.items()))
    record["sends"].append(
        {
            "idempotency_key": key,
            "to_email": email,
            "trigger_key": "verification_code",
            "variables": {"code": "000000"},
            "timestamp": iso(NOW),
        }
    )
    assert _failed(_checks(expected, record, [])) == {"stale triggers"}


def test_a_trigger_first_sent_during_a_broker_outage_is_counted_in_the_ledger_window() -> None:
    _, expected = build(3, 12, NOW, poison=0)
    record = _perfect_record(expected)
    first = record["sends"][0]
    record["sends"].append({**first, "timestamp": iso(NOW + 4000)})
    sent_at = epoch(first["timestamp"])
    figures = check_triggers(expected, record["sends"], [], [[sent_at - 5, sent_at + 5]])
    by_name = {f.name: f for f in figures}
    assert by_name["triggers twice (idempotency key)"].ok is True
    assert (
        "and 1 first sent during a broker outage"
        in by_name["triggers twice (idempotency key)"].text
    )
    assert _failed(check_triggers(expected, record["sends"], [], [])) == {
        "triggers twice (idempotency key)",
        "triggers twice (recipient+template+variables)",
    }


def test_tracks_resent_after_a_broker_outage_are_outside_the_duplicate_budget() -> None:
    _, expected = build(3, 40, NOW, poison=0)
    record = _perfect_record(expected)
    events = [{**e, "timestamp": iso(NOW + i)} for i, e in enumerate(record["events"])]
    again = [{**e, "timestamp": iso(NOW + 1000)} for e in events]  # every track twice
    figures = check_tracks(expected, events + again, [[NOW - 1, NOW + len(events)]], [])
    by_name = {f.name: f for f in figures}
    assert by_name["track duplicates"].ok is True
    assert f"{len(events)} first delivered while the broker was down" in (
        by_name["track duplicates"].text
    )
    assert _failed(check_tracks(expected, events + again, [], [])) == {"track duplicates"}
