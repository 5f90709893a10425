"""One person's events on three topics reach Meisa in causal order, also across kills and members.

A history of 20,000 events for 500 people: each person's sign-up and plan change on `users`,
36 feature usages on `product` (external_id only), two OTPs on `auth` (email only), keyed by the
user id on three topics of six partitions each, plus a few poison messages. The bridge starts on
the whole backlog against the sandbox. Expected: every person with the final plan and tag, every
track, each person's tracks first seen in event-time order, every OTP sent once, the DLQ holding
exactly the poison, no halt, and 404s under 1% of the calls.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from bridge_harness import bridge_process, committed, end_offsets, read_all, wait_for
from confluent_kafka import Producer

from bridge.sandbox.testing import SandboxHandle, SandboxPool

PEOPLE = 500
USAGES = 36  # per person; with a sign-up, a plan change and two OTPs: 40 events a person
PARTITIONS = 6
POISON = 6
KEY = "meisa_test_causalorder0000000000000000"
DRAIN_SECONDS = 420

RULES = [
    {
        "name": "signup",
        "on": "user.signed_up",
        "do": [
            {
                "upsert": {
                    "email": "{{ data.email }}",
                    "external_id": "{{ data.user_id }}",
                    "source": "signup",
                    "custom_fields": {"plan": "free"},
                }
            }
        ],
    },
    {
        "name": "plan",
        "on": "plan.changed",
        "do": [
            {
                "upsert": {
                    "email": "{{ data.email }}",
                    "external_id": "{{ data.user_id }}",
                    "custom_fields": {"plan": "{{ data.plan }}"},
                }
            },
            {"add_tag": {"external_id": "{{ data.user_id }}", "tag_name": "paying"}},
        ],
    },
    {
        "name": "usage",
        "on": "feature.used",
        "do": [
            {
                "track": {
                    "external_id": "{{ data.user_id }}",
                    "event_name": "feature_used",
                    "properties": {"seq": "{{ data.seq }}"},
                }
            }
        ],
    },
    {
        "name": "otp",
        "on": "auth.otp_requested",
        "do": [
            {
                "trigger": {
                    "trigger_key": "verification_code",
                    "to_email": "{{ data.email }}",
                    "variables": {"code": "{{ data.code }}"},
                    "idempotency_key": "otp-{{ id }}",
                },
                "max_age": "2h",
            }
        ],
    },
]


@dataclass(frozen=True)
class History:
    users: str
    product: str
    auth: str
    dlq: str
    poison: frozenset[tuple[str, int, int]]
    otps: int

    @property
    def topics(self) -> list[str]:
        return [self.users, self.product, self.auth]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _person_events(p: int, base: float) -> list[tuple[str, float, dict[str, Any]]]:
    """(topic role, event time, event) for one person, in event-time order per role."""
    t0 = base + p * 0.4
    user = {"user_id": f"usr_{p}", "email": f"Person{p}@Example.com"}
    out: list[tuple[str, float, dict[str, Any]]] = [
        ("users", t0, {"type": "user.signed_up", **user})
    ]
    for k in range(USAGES):
        out.append(
            ("product", t0 + 0.5 + k, {"type": "feature.used", "user_id": f"usr_{p}", "seq": k})
        )
    out.append(("users", t0 + 20.2, {"type": "plan.changed", **user, "plan": "pro"}))
    for n in range(2):
        otp = {"type": "auth.otp_requested", "email": user["email"], "code": f"{p:04d}{n}"}
        out.append(("auth", t0 + 5.3 + 25 * n, otp))
    return out


def _produce_history(bootstrap: str, topics: dict[str, str]) -> set[tuple[str, int, int]]:
    base = time.time() - 400.0
    poison: set[tuple[str, int, int]] = set()
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        if msg.value().startswith(b"{not json"):
            poison.add((msg.topic(), msg.partition(), msg.offset()))

    # Each topic in event-time order, as services publish; topics are produced one after another
    # so a reader that does not synchronise them sees usage long before the sign-ups.
    for role in ("product", "auth", "users"):
        events = sorted(
            (t, p, e) for p in range(PEOPLE) for r, t, e in _person_events(p, base) if r == role
        )
        for n, (t, p, data) in enumerate(events):
            kind = data.pop("type")
            body = {
                "id": f"{role}-{p}-{n}-{uuid.uuid4().hex[:6]}",
                "type": kind,
                "time": _iso(t),
                "data": data,
            }
            producer.produce(
                topics[role],
                key=f"usr_{p}".encode(),
                value=orjson.dumps(body),
                on_delivery=on_delivery,
            )
            if role == "product" and n % (len(events) // (POISON // 2)) == 7:
                producer.produce(
                    topics[role],
                    key=f"usr_{p}".encode(),
                    value=b"{not json",
                    on_delivery=on_delivery,
                )
            producer.poll(0)
    assert producer.flush(60) == 0
    return poison


@pytest.fixture(scope="module")
def history(kafka_bootstrap: str) -> Iterator[History]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"causal-{role}-{suffix}" for role in ("users", "product", "auth")}
    dlq = f"causal-dlq-{suffix}"
    new = [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names.values()]
    new.append(NewTopic(dlq, num_partitions=1, replication_factor=1))
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result(30)
    poison = _produce_history(kafka_bootstrap, names)
    yield History(
        names["users"], names["product"], names["auth"], dlq, frozenset(poison), 2 * PEOPLE
    )
    for future in admin.delete_topics([*names.values(), dlq], operation_timeout=30).values():
        future.result(30)


@pytest.fixture
def meisa(sandboxes: SandboxPool) -> SandboxHandle:
    """A sandbox with a key whose limit is raised so 20,000 calls fit in a test's time."""
    key = {
        "key": KEY,
        "name": "causal",
        "environment": "test",
        "scopes": ["contacts:read", "contacts:write", "events:track", "emails:trigger"],
        "rate_limit_per_minute": 30000,
        "rate_limit_per_hour": 1000000,
    }
    return sandboxes.get({"keys": [key]})


def _config(tmp: Path, bootstrap: str, sb: SandboxHandle, h: History, group: str) -> Path:
    doc = {
        "kafka": {"bootstrap.servers": bootstrap, "group.id": group},
        "topics": h.topics,
        "dead_letter_topic": h.dlq,
        "meisa": {"base_url": sb.base_url, "api_key": KEY},
        "pipeline": {"commit_interval_seconds": 0.5},
        "server": {"host": "127.0.0.1", "port": 0},
        "suppression": {"enabled": False},
        "logging": {"level": "INFO", "format": "text"},
        "rules": RULES,
    }
    path = tmp / f"{group}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _drained(bootstrap: str, group: str, h: History) -> bool:
    return all(
        committed(bootstrap, group, topic, PARTITIONS) == end_offsets(bootstrap, topic, PARTITIONS)
        for topic in h.topics
    )


def _tracks_seen(sb: SandboxHandle) -> int:
    return len(sb.events())


def _check(sb: SandboxHandle, bootstrap: str, h: History, logs: list[Path]) -> None:
    contacts = {c["external_id"]: c for c in sb.contacts()}
    assert len(contacts) == PEOPLE
    assert all(c["custom_fields"].get("plan") == "pro" for c in contacts.values())
    assert all("paying" in {t["name"] for t in c["tags"]} for c in contacts.values())

    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for e in sb.events():
        who, seq = e["contact_id"], int(e["properties"]["seq"])
        if (who, seq) not in seen:
            seen.add((who, seq))
            first_seen[who].append(seq)
    assert len(seen) == PEOPLE * USAGES, "every track reached Meisa"
    out_of_order = [who for who, seqs in first_seen.items() if seqs != sorted(seqs)]
    assert out_of_order == [], "each person's tracks in event-time order"

    sends = sb.sends()
    assert Counter(s["status"] for s in sends) == {"sent": h.otps}
    assert len({s["idempotency_key"] for s in sends}) == h.otps

    letters = read_all(bootstrap, h.dlq, expect=len(h.poison), timeout=10)
    origins = {
        (
            dict(m.headers())["meisa-bridge.topic"].decode(),
            int(dict(m.headers())["meisa-bridge.partition"]),
            int(dict(m.headers())["meisa-bridge.offset"]),
        )
        for m in letters
    }
    assert origins == set(h.poison), "the DLQ holds exactly the poison"

    requests = sb.requests()
    not_found = sum(1 for r in requests if r["status"] == 404)
    assert not_found < 0.01 * len(requests), f"{not_found} 404s in {len(requests)} calls"
    for log in logs:
        assert "halted" not in log.read_text()


def _run_until_drained(
    procs: list[subprocess.Popen[bytes]], bootstrap: str, group: str, h: History
) -> None:
    try:
        wait_for(lambda: _drained(bootstrap, group, h), DRAIN_SECONDS, "every partition committed")
        assert all(p.poll() is None for p in procs), "no instance exited on its own"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(60) == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_backlog_on_three_topics_reaches_meisa_in_causal_order(
    kafka_bootstrap: str, history: History, meisa: SandboxHandle, tmp_path: Path
) -> None:
    group = f"causal-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "bridge.log"
    proc = bridge_process(_config(tmp_path, kafka_bootstrap, meisa, history, group), log)
    _run_until_drained([proc], kafka_bootstrap, group, history)
    _check(meisa, kafka_bootstrap, history, [log])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_causal_order_holds_when_the_bridge_is_killed_twice_mid_way(
    kafka_bootstrap: str, history: History, meisa: SandboxHandle, tmp_path: Path
) -> None:
    group = f"causal-kill-{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path, kafka_bootstrap, meisa, history, group)
    log = tmp_path / "bridge.log"
    total = PEOPLE * USAGES
    proc = bridge_process(config, log)
    for fraction in (0.2, 0.5):
        wait_for(lambda f=fraction: _tracks_seen(meisa) >= f * total, DRAIN_SECONDS, "progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc = bridge_process(config, log)
    _run_until_drained([proc], kafka_bootstrap, group, history)
    _check(meisa, kafka_bootstrap, history, [log])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_causal_order_holds_with_two_instances_in_one_group(
    kafka_bootstrap: str, history: History, meisa: SandboxHandle, tmp_path: Path
) -> None:
    group = f"causal-two-{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path, kafka_bootstrap, meisa, history, group)
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    procs = [bridge_process(config, log) for log in logs]
    _run_until_drained(procs, kafka_bootstrap, group, history)
    _check(meisa, kafka_bootstrap, history, logs)
