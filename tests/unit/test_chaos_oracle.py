"""The chaos suite's pure parts: the seeded schedule, the history's model, and the oracle."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_config
from chaos.check import (
    Figure,
    check_outcomes,
    check_tracks,
    check_triggers,
    epoch,
    run_checks,
)
from chaos.history import TOPICS, build, iso
from chaos.runner import OUTCOMES_TOPIC, bridge_config
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
            "email_send_id": f"es_{n}",
            "idempotency_key": key,
            "to_email": send["to_email"],
            "trigger_key": "verification_code",
            "variables": send["variables"],
            "timestamp": iso(send["time"] + 60),
            "duplicates": 0,
        }
        for n, (key, send) in enumerate(expected.triggers.items())
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
        "and 1 first sent during a broker outage or by an instance killed"
        in by_name["triggers twice (idempotency key)"].text
    )
    assert _failed(check_triggers(expected, record["sends"], [], [])) == {
        "triggers twice (idempotency key)",
        "triggers twice (recipient+template+variables)",
    }


def test_a_send_never_recorded_by_a_killed_instance_and_repeated_past_the_hour_is_excused() -> None:
    _, expected = build(3, 12, NOW, poison=0)
    record = _perfect_record(expected)
    first = record["sends"][0]
    key, sent_at = first["idempotency_key"], epoch(first["timestamp"])
    jump = [[sent_at + 30, 3700.0]]  # the sandbox's clock jumps an hour 30 s later
    record["sends"].append({**first, "timestamp": iso(sent_at + 60 + 3700)})
    both = {"triggers twice (idempotency key)", "triggers twice (recipient+template+variables)"}
    again_only = {key: [sent_at + 60]}  # the ledger holds the second send's record only
    kill = [sent_at + 2]

    def failed(recorded: dict[str, list[float]] | None, kills: list[float]) -> set[str]:
        sends = record["sends"]
        return _failed(check_triggers(expected, sends, jump, [], kills=kills, recorded=recorded))

    assert failed(again_only, kill) == set()
    assert failed({key: [sent_at + 0.01, sent_at + 60]}, kill) == both  # recorded: the ledger's bug
    assert failed(again_only, []) == both  # nobody died: the record should have gone out
    assert failed(None, kill) == both  # no ledger in the run
    no_jump = [*record["sends"][:-1], {**first, "timestamp": iso(sent_at + 20)}]
    assert _failed(check_triggers(expected, no_jump, jump, [], kills=kill, recorded={})) == both


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


def _outcomes(expected: Any, record: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The outcome records a faultless run writes for `record`, one event per offset (partition 0
    of each topic), and the source partitions' end offsets; poison is placed where it is."""
    out: list[dict[str, Any]] = []
    ends: Counter[str] = Counter()

    def add(topic: str, key: str, **fields: Any) -> None:
        offset = ends[f"{topic}/0"]
        ends[f"{topic}/0"] += 1
        doc = {"topic": topic, "partition": 0, "offset": offset, "rule": "r", "action": 0}
        doc.update({"outcome": "sent", **fields})
        partition = sum(key.encode()) % 3  # one partition per key, as a partitioner does
        out.append({"key": key, "partition": partition, "offset": len(out), "value": doc})

    people = {c["email"]: c for c in record["contacts"]}
    for c in record["contacts"]:
        add(
            "app.users",
            c["external_id"],
            kind="upsert",
            email=c["email"],
            external_id=c["external_id"],
        )
        if any(t["name"] == "paying" for t in c["tags"]):
            add("app.users", c["external_id"], kind="add_tag", external_id=c["external_id"])
    for ev in record["events"]:
        external_id = people[ev["email"]]["external_id"]
        add(
            "app.product",
            external_id,
            kind="track",
            event_id=ev["properties"]["eid"],
            external_id=external_id,
        )
    for s in record["sends"]:
        add(
            "app.auth",
            s["to_email"],
            kind="trigger",
            email=s["to_email"],
            idempotency_key=s["idempotency_key"],
            email_send_id=s["email_send_id"],
        )
    for key, email in expected.stale.items():
        add(
            "app.auth",
            email,
            kind="trigger",
            email=email,
            idempotency_key=key,
            outcome="skipped",
            reason="stale",
        )
    expected.poison = []
    for n, call in enumerate((True, False)):
        where = {"topic": "app.users", "partition": 0, "offset": ends["app.users/0"]}
        expected.poison.append({**where, "call": call})
        if call:
            add(
                "app.users",
                f"usr_rejected_{n}",
                kind="upsert",
                external_id=f"usr_rejected_{n}",
                outcome="dead_lettered",
            )
        else:
            ends["app.users/0"] += 1  # undecodable: no call, no record
    return out, dict(ends)


OUTCOME_FIGURES = {
    "outcome records: tracks",
    "outcome records: triggers",
    "outcome records: contacts",
    "outcome records: events",
    "outcome records: poison",
    "outcome records keyed by person",
}


def _outcome_case() -> tuple[Any, dict[str, Any], list[dict[str, Any]], dict[str, int]]:
    _, expected = build(3, 12, NOW, poison=0)
    assert expected.stale, "the history has a stale OTP, recorded as skipped"
    record = _perfect_record(expected)
    outcomes, ends = _outcomes(expected, record)
    return expected, record, outcomes, ends


def _by_kind(outcomes: list[dict[str, Any]], kind: str, outcome: str = "sent") -> dict[str, Any]:
    return next(
        r for r in outcomes if r["value"]["kind"] == kind and r["value"]["outcome"] == outcome
    )


def test_the_outcome_checks_pass_a_faultless_run_and_only_run_when_the_topic_was_read() -> None:
    expected, record, outcomes, ends = _outcome_case()
    figures = check_outcomes(expected, record, outcomes, ends)
    assert {f.name for f in figures if f.ok is True} == OUTCOME_FIGURES
    assert _failed(figures) == set()
    texts = {f.name: f.text for f in figures}
    assert texts["outcome records: poison"].startswith(
        "1 of 1 poison messages making a call have a dead_lettered record; 0 of 1 that make none"
    )
    manifest = {"expected": expected.to_json(), "instances": [], "clock_jumps": []}
    without = run_checks(manifest, record, [], ends, ends)
    assert not {f.name for f in without} & OUTCOME_FIGURES
    with_topic = run_checks(manifest, record, [], ends, ends, outcomes=outcomes)
    assert {f.name for f in with_topic} >= OUTCOME_FIGURES


def test_a_trigger_recorded_only_as_already_sent_after_a_crash_has_its_record() -> None:
    expected, record, outcomes, ends = _outcome_case()
    sent = _by_kind(outcomes, "trigger")
    sent["value"].update(outcome="skipped", reason="already_sent", email_send_id=None)
    figures = {f.name: f for f in check_outcomes(expected, record, outcomes, ends)}
    assert figures["outcome records: triggers"].ok is True
    assert "(1 only as already_sent)" in figures["outcome records: triggers"].text


def _drop_track(outcomes: list[dict[str, Any]]) -> None:
    outcomes.remove(_by_kind(outcomes, "track"))


def _other_send_id(outcomes: list[dict[str, Any]]) -> None:
    _by_kind(outcomes, "trigger")["value"]["email_send_id"] = "es_someone_else"


def _drop_upsert(outcomes: list[dict[str, Any]]) -> None:
    outcomes.remove(_by_kind(outcomes, "upsert"))


def _drop_add_tag(outcomes: list[dict[str, Any]]) -> None:
    _by_kind(outcomes, "add_tag")["value"]["kind"] = "remove_tag"


def _wrong_key(outcomes: list[dict[str, Any]]) -> None:
    _by_kind(outcomes, "track")["key"] = "person00000@example.test"


def _split_person(outcomes: list[dict[str, Any]]) -> None:
    record = _by_kind(outcomes, "track")
    record["partition"] = (record["partition"] + 1) % 3


def _no_dead_letter(outcomes: list[dict[str, Any]]) -> None:
    outcomes.remove(_by_kind(outcomes, "upsert", "dead_lettered"))


def _poison_sent(outcomes: list[dict[str, Any]]) -> None:
    _by_kind(outcomes, "upsert", "dead_lettered")["value"]["outcome"] = "sent"


def _event_dead_lettered(outcomes: list[dict[str, Any]]) -> None:
    _by_kind(outcomes, "trigger", "skipped")["value"]["outcome"] = "dead_lettered"


@pytest.mark.parametrize(
    ("break_it", "failing"),
    [
        (_drop_track, {"outcome records: tracks", "outcome records: events"}),
        (_other_send_id, {"outcome records: triggers"}),
        (_drop_upsert, {"outcome records: contacts", "outcome records: events"}),
        (_drop_add_tag, {"outcome records: contacts"}),
        (_wrong_key, {"outcome records keyed by person"}),
        (_split_person, {"outcome records keyed by person"}),
        (_no_dead_letter, {"outcome records: poison"}),
        (_poison_sent, {"outcome records: poison"}),
        (_event_dead_lettered, {"outcome records: poison", "outcome records: events"}),
    ],
)
def test_each_missing_or_wrong_outcome_record_fails_its_check(
    break_it: Any, failing: set[str]
) -> None:
    expected, record, outcomes, ends = _outcome_case()
    break_it(outcomes)
    assert _failed(check_outcomes(expected, record, outcomes, ends)) == failing


def test_a_missing_record_says_whether_meisa_got_the_call_in_a_broker_outage_and_still_fails() -> (
    None
):
    expected, record, outcomes, ends = _outcome_case()
    record["events"] = [{**e, "timestamp": iso(NOW + i)} for i, e in enumerate(record["events"])]
    _drop_track(outcomes)
    outage = [[NOW - 1, NOW + len(record["events"])]]
    figures = {f.name: f for f in check_outcomes(expected, record, outcomes, ends, outages=outage)}
    tracks = figures["outcome records: tracks"]
    assert tracks.ok is False
    assert "1 missing" in tracks.text
    assert "1 of them received during a broker outage" in tracks.text


def test_only_the_short_profile_turns_the_outcome_topic_on_and_its_config_loads(
    tmp_path: Path,
) -> None:
    assert {name for name, p in PROFILES.items() if p.outcomes} == {"short"}
    messages, _ = build(3, 12, NOW, poison=4, rejected=PROFILES["short"].rejected)
    assert sum(m.kind == "rejected" for m in messages) == 2
    args = {"bootstrap": "127.0.0.1:9", "group": "g", "base_url": "http://127.0.0.1:9"}
    on = bridge_config(tmp_path, **args, ledger=None, outcomes=OUTCOMES_TOPIC)
    assert load_config(on, strict_env=False).outcomes.topic == OUTCOMES_TOPIC
    off = bridge_config(tmp_path, **args, ledger=None)
    assert not load_config(off, strict_env=False).outcomes.topic
