"""A seeded event history and the Meisa state it must produce (the oracle's model).

People sign up (`app.users`, plain JSON), update their profile and plan (`app.users`), use
features (`app.product`, CloudEvents in binary and structured mode) and ask for one-time
passwords (`app.auth`, Avro single-object encoding). Each person's events are spread over the
last two hours in event time, interleaved across the three topics. A few OTPs are eight hours
old (stale: their rule's max_age is six hours, so every other OTP stays fresh for four hours
whatever the faults) and a few messages are poison.

`build(seed, people, now)` returns the messages to produce and the `Expected` state: final fields
and tags per person, every track, every trigger that must be sent once and every one that must
never be sent.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import orjson

from bridge.codecs.avro import single_object_header

TOPICS = {"app.users": 6, "app.product": 6, "app.auth": 3}
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
SPAN = 2 * 3600.0  # event times cover the last two hours
STALE_AGE = 8 * 3600.0  # older than the OTP rule's max_age (6 h); the rest stays younger for 4 h
PLANS = ("free", "pro", "team")
COUNTRIES = ("DE", "FR", "US", "JP", "BR", "IN")
NAMES = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Ken", "Frances", "Tony", "Radia", "Leslie")
FEATURES = ("export", "search", "share", "invite", "report")
# Per person beyond the signup: (kind, weight). About 25 events per person on average.
MIX = (("update", 4), ("usage", 18), ("otp", 2))
EVENTS_PER_PERSON = 25


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    time: float
    kind: str  # signup | update | usage | otp | poison | rejected (poison making a call)


@dataclass
class Expected:
    """What Meisa must hold once every message is processed."""

    people: dict[str, dict[str, Any]] = field(default_factory=dict)  # email -> final state
    tracks: dict[str, tuple[str, float]] = field(default_factory=dict)  # event id -> (email, t)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key -> send
    stale: dict[str, str] = field(default_factory=dict)  # idempotency key -> email
    poison: list[dict[str, Any]] = field(default_factory=list)  # filled in when produced

    def to_json(self) -> dict[str, Any]:
        return {
            "people": self.people,
            "tracks": self.tracks,
            "triggers": self.triggers,
            "stale": self.stale,
            "poison": self.poison,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Expected:
        tracks = {k: (v[0], float(v[1])) for k, v in doc["tracks"].items()}
        return cls(doc["people"], tracks, doc["triggers"], doc["stale"], doc["poison"])


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _otp_schema() -> Any:
    raw = json.loads((SCHEMAS_DIR / "auth.otp_requested.avsc").read_text())
    return fastavro.parse_schema(raw)


class _Writer:
    """Encodes one event in its topic's encoding."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.schema = _otp_schema()
        self.header = single_object_header(self.schema)

    def json(self, eid: str, kind: str, t: float, data: dict[str, Any]) -> bytes:
        doc = {"id": eid, "type": kind, "time": iso(t), "source": "chaos/users", "data": data}
        return orjson.dumps(doc)

    def cloudevent(
        self, eid: str, kind: str, t: float, data: dict[str, Any]
    ) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
        if self.rng.random() < 0.5:  # binary mode: attributes in headers, the value is the data
            headers = (
                ("ce_specversion", b"1.0"),
                ("ce_id", eid.encode()),
                ("ce_type", kind.encode()),
                ("ce_source", b"chaos/product"),
                ("ce_time", iso(t).encode()),
                ("content-type", b"application/json"),
            )
            return orjson.dumps(data), headers
        doc = {
            "specversion": "1.0",
            "id": eid,
            "type": kind,
            "source": "chaos/product",
            "time": iso(t),
            "datacontenttype": "application/json",
            "data": data,
        }
        return orjson.dumps(doc), (("content-type", b"application/cloudevents+json"),)

    def avro(self, eid: str, t: float, data: dict[str, Any]) -> bytes:
        record: dict[str, Any] = {"type": "auth.otp_requested", "id": eid, "time": iso(t)}
        record.update(source=None, data=data)
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self.schema, record)
        return self.header + out.getvalue()


def _person(n: int) -> dict[str, str]:
    return {"user_id": f"usr_{n:05d}", "email": f"person{n:05d}@example.test"}


def _times(rng: random.Random, count: int, now: float) -> list[float]:
    start = now - SPAN + rng.random() * 600
    return sorted(start + rng.random() * (SPAN - 900) for _ in range(count))


class _Builder:
    def __init__(self, seed: int, now: float) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.writer = _Writer(self.rng)
        self.messages: list[Message] = []
        self.expected = Expected()

    def person(self, n: int) -> None:
        who = _person(n)
        count = max(3, int(self.rng.gauss(EVENTS_PER_PERSON, 4)))
        times = _times(self.rng, count + 1, self.now)
        state = self._signup(n, who, times[0])
        kinds = [k for k, w in MIX for _ in range(w)]
        for i, t in enumerate(times[1:], start=1):
            kind = self.rng.choice(kinds)
            if kind == "update":
                self._update(n, who, t, state, version=i)
            elif kind == "usage":
                self._usage(n, who, t, i)
            else:
                self._otp(n, who, t, i, stale=self.rng.random() < 0.1)
        self.expected.people[who["email"]] = state

    def _emit(
        self,
        topic: str,
        who: dict[str, str],
        value: bytes,
        *,
        t: float,
        kind: str,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> None:
        self.messages.append(Message(topic, who["user_id"].encode(), value, headers, t, kind))

    def _profile(self, who: dict[str, str], version: int) -> dict[str, Any]:
        return {
            **who,
            "first_name": self.rng.choice(NAMES),
            "last_name": f"L{self.rng.randrange(10_000):04d}",
            "plan": self.rng.choice(PLANS),
            "country": self.rng.choice(COUNTRIES),
            "version": version,
        }

    def _signup(self, n: int, who: dict[str, str], t: float) -> dict[str, Any]:
        data = self._profile(who, 0)
        eid = f"signup-{n}"
        self._emit(
            "app.users", who, self.writer.json(eid, "user.signed_up", t, data), t=t, kind="signup"
        )
        return _state(data, {"signup"})

    def _update(
        self, n: int, who: dict[str, str], t: float, state: dict[str, Any], version: int
    ) -> None:
        data = self._profile(who, version)
        eid = f"update-{n}-{version}"
        self._emit(
            "app.users", who, self.writer.json(eid, "user.updated", t, data), t=t, kind="update"
        )
        tags = set(state["tags"]) - {"paying"}
        if data["plan"] != "free":
            tags.add("paying")
        state.update(_state(data, tags))

    def _usage(self, n: int, who: dict[str, str], t: float, i: int) -> None:
        eid = f"usage-{n}-{i}"
        data = {"user_id": who["user_id"], "feature": self.rng.choice(FEATURES), "n": i}
        value, headers = self.writer.cloudevent(eid, "feature.used", t, data)
        self._emit("app.product", who, value, t=t, kind="usage", headers=headers)
        self.expected.tracks[eid] = (who["email"], t)

    def _otp(self, n: int, who: dict[str, str], t: float, i: int, *, stale: bool) -> None:
        eid = f"otp-{n}-{i}"
        if stale:
            t = self.now - STALE_AGE - self.rng.random() * 600
        code = f"{self.rng.randrange(1_000_000):06d}"
        data = {**who, "first_name": None, "code": code, "channel": "email"}
        self._emit("app.auth", who, self.writer.avro(eid, t, data), t=t, kind="otp")
        key = f"otp-{eid}"
        if stale:
            self.expected.stale[key] = who["email"]
        else:
            send = {"to_email": who["email"], "variables": {"code": code}, "time": t}
            self.expected.triggers[key] = send

    def poison(self, count: int, people: int) -> None:
        """`count` poison messages, cycling through one kind per topic and a mapping error."""
        makers = (self._bad_json, self._unmappable, self._bad_cloudevent, self._bad_avro)
        for i in range(count):
            who = _person(self.rng.randrange(people))
            t = self.now - self.rng.random() * SPAN
            makers[i % len(makers)](who, t, i)

    def rejected(self, count: int) -> None:
        """`count` sign-ups of people of their own whose email Meisa refuses (422): poison that
        makes a call, so its outcome record says `dead_lettered`."""
        for i in range(count):
            who = {"user_id": f"usr_rejected_{i}", "email": f"rejected-{i}.example.test"}
            t = self.now - self.rng.random() * SPAN
            value = self.writer.json(f"rejected-{i}", "user.signed_up", t, self._profile(who, 0))
            self._emit("app.users", who, value, t=t, kind="rejected")

    def _bad_json(self, who: dict[str, str], t: float, i: int) -> None:
        self._emit("app.users", who, b'{"id": "poison-json-%d", "type": ' % i, t=t, kind="poison")

    def _unmappable(self, who: dict[str, str], t: float, i: int) -> None:
        data = {"plan": "pro", "version": -1}  # no email, no user_id: the upsert cannot be built
        value = self.writer.json(f"poison-map-{i}", "user.updated", t, data)
        self._emit("app.users", who, value, t=t, kind="poison")

    def _bad_cloudevent(self, who: dict[str, str], t: float, i: int) -> None:
        headers = (
            ("ce_specversion", b"1.0"),
            ("ce_id", f"poison-ce-{i}".encode()),
            ("ce_type", b"feature.used"),
            ("ce_source", b"chaos/product"),
            ("content-type", b"application/json"),
        )
        self._emit("app.product", who, b"\xff\xfe not json", t=t, kind="poison", headers=headers)

    def _bad_avro(self, who: dict[str, str], t: float, i: int) -> None:
        value = b"\xc3\x01" + bytes(self.rng.randrange(256) for _ in range(24))
        self._emit("app.auth", who, value, t=t, kind="poison")


def _state(data: dict[str, Any], tags: set[str]) -> dict[str, Any]:
    return {
        "external_id": data["user_id"],
        "first_name": data["first_name"],
        "last_name": data["last_name"],
        "custom_fields": {
            "plan": data["plan"],
            "country": data["country"],
            "version": data["version"],
        },
        "tags": sorted(tags),
    }


def build(
    seed: int, people: int, now: float, *, poison: int = 4, rejected: int = 0
) -> tuple[list[Message], Expected]:
    """The history, each topic in event-time order (as the services would have produced it)."""
    builder = _Builder(seed, now)
    for n in range(people):
        builder.person(n)
    builder.poison(poison, people)
    builder.rejected(rejected)
    messages = sorted(builder.messages, key=lambda m: (m.topic, m.time))
    return messages, builder.expected
