"""Replay scenarios: rules, a history generator, its expected final state, config and helpers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Protocol

import orjson
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

UPSERT = {
    "upsert": {
        "email": "{{ data.email }}",
        "external_id": "{{ data.user_id }}",
        "custom_fields": {"seq": "{{ data.seq }}", "tier": "{{ data.tier }}"},
    }
}
IDENT = {"external_id": "{{ data.user_id }}", "email": "{{ data.email }}"}
RULES: list[dict[str, Any]] = [
    {"name": "profile", "on": "user.updated", "do": [UPSERT]},
    {
        "name": "tag",
        "on": "user.tagged",
        "do": [{"add_tag": {**IDENT, "tag_name": "{{ data.tag }}"}}],
    },
    {
        "name": "untag",
        "on": "user.untagged",
        "do": [{"remove_tag": {**IDENT, "tag_name": "{{ data.tag }}"}}],
    },
    {
        "name": "otp",
        "on": "auth.otp",
        "do": [
            {
                "trigger": {
                    "trigger_key": "verification_code",
                    "to_email": "{{ data.email }}",
                    "variables": {"code": "{{ data.code }}"},
                }
            }
        ],
    },
    {
        "name": "signup",
        "on": "user.signed_up",
        "do": [{"enroll": {"email": "{{ data.email }}", "sequence_slug": "onboarding"}}],
    },
    {
        "name": "act",
        "on": "user.acted",
        "do": [{"track": {"external_id": "{{ data.user_id }}", "event_name": "acted"}}],
    },
]
TAGS = ["beta", "vip", "early"]


def history(users: int, events: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """Every user is created first; then a random mix dominated by profile updates."""
    rng = random.Random(seed)
    out = [_event("user.updated", u, u, tier="free") for u in range(users)]
    kinds = ["user.updated"] * 80 + ["user.tagged"] * 8 + ["user.untagged"] * 6
    kinds += ["auth.otp"] * 2 + ["user.signed_up"] * 2 + ["user.acted"] * 2
    for seq in range(users, events):
        kind = rng.choice(kinds)
        extra: dict[str, Any] = {"tier": rng.choice(["free", "pro", "team"])}
        if kind in ("user.tagged", "user.untagged"):
            extra = {"tag": rng.choice(TAGS)}
        elif kind == "auth.otp":
            extra = {"code": f"{rng.randrange(10**6):06d}"}
        out.append(_event(kind, rng.randrange(users), seq, **extra))
    return out


def _event(kind: str, user: int, seq: int, **data: Any) -> dict[str, Any]:
    return {
        "id": f"e{seq}",
        "type": kind,
        "data": {"user_id": f"usr_{user}", "email": f"user{user}@example.com", "seq": seq, **data},
    }


def expected_state(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One-by-one semantics, straight from the events: email -> custom_fields and tags."""
    state: dict[str, dict[str, Any]] = {}
    for ev in events:
        d = ev["data"]
        contact = state.setdefault(d["email"], {"custom_fields": {}, "tags": set()})
        if ev["type"] == "user.updated":
            contact["custom_fields"].update({"seq": d["seq"], "tier": d["tier"]})
        elif ev["type"] == "user.tagged":
            contact["tags"].add(d["tag"])
        elif ev["type"] == "user.untagged":
            contact["tags"].discard(d["tag"])
    return state


def actual_state(contacts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        c["email"]: {"custom_fields": c["custom_fields"], "tags": {t["name"] for t in c["tags"]}}
        for c in contacts
    }


def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000})
    for ev in events:
        producer.produce(topic, key=ev["data"]["user_id"].encode(), value=orjson.dumps(ev))
        producer.poll(0)
    assert producer.flush(60) == 0


def write_config(
    tmp: Path,
    *,
    bootstrap: str,
    topic: str,
    base_url: str,
    api_key: str,
    group: str,
    dlq: str | None = None,
    rules: list[dict[str, Any]] | None = None,
    meisa: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
) -> Path:
    """A replay config file; `meisa` adds settings to the meisa section (rate limits);
    `sections` adds or replaces top-level sections (ledger)."""
    doc: dict[str, Any] = {
        "kafka": {"bootstrap.servers": bootstrap, "group.id": group},
        "topics": [topic],
        "meisa": {"base_url": base_url, "api_key": api_key, **(meisa or {})},
        "codec": {"format": "json"},
        "suppression": {"enabled": False},
        "logging": {"level": "WARNING", "format": "text"},
        "rules": rules or RULES,
    }
    if dlq:
        doc["dead_letter_topic"] = dlq
    doc.update(sections or {})
    path = tmp / f"bridge-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class ConfigFactory(Protocol):
    """The `replay_config` fixture: `write_config` bound to the broker, the sandbox and tmp_path.

    The live group defaults to one per test and the key to the sandbox's unlimited one; any other
    `write_config` keyword (dlq, rules, meisa, api_key) overrides.
    """

    def __call__(self, topic: str, group: str | None = ..., **overrides: Any) -> Path: ...


def cli(
    *args: str | Path, timeout: float = 110, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def without_api_key() -> dict[str, str]:
    """This process's environment without MEISA_API_KEY (for configs saying ${MEISA_API_KEY})."""
    return {k: v for k, v in os.environ.items() if k != "MEISA_API_KEY"}


def requests_by_endpoint(sandbox: Any) -> dict[str, int]:
    """POSTs the sandbox answered, by the replay's call kind names."""
    counts: dict[str, int] = {}
    for req in sandbox.requests(method="POST", limit=100_000):
        path = req["path"]
        kind = next((k for k, p in PATHS.items() if path.endswith(p)), None)
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


PATHS = {
    "upsert": "/contacts/upsert/",
    "track": "/events/track/",
    "trigger": "/emails/trigger/",
    "add_tag": "/add_tag/",
    "remove_tag": "/remove_tag/",
    "enroll": "/sequences/enroll/",
}


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        c.close()


def commit_live_group(bootstrap: str, group: str, topic: str, offsets: list[int]) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p, o) for p, o in enumerate(offsets)]
        c.commit(offsets=tps, asynchronous=False)
    finally:
        c.close()
