#!/usr/bin/env python3
"""Publish JSON Lines events to Kafka, keyed by user id (the bridge's per-contact order needs it).

    scripts/produce_events.py --bootstrap 127.0.0.1:9092 --file examples/events.jsonl
    scripts/produce_events.py --topic-map user.=app.users --topic-map auth.=app.auth --file -

Each line is one event (JSON or CloudEvents-shaped). The topic is the first --topic-map whose
prefix matches the event's type, else --topic. The key is the first of --key-field (dotted paths)
present in the event. Missing topics are created with --partitions partitions.

A line that is not a JSON object goes to --topic byte for byte (the bridge routes it to the
dead-letter topic), keyed by the first --key-field's last part found in the raw text.
--retime moves every event's `time` so the newest is now and the gaps shrink --retime-factor
times, as `make demo` does: a file recorded on a past day then meets the rules' max_age.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="bootstrap.servers")
    p.add_argument("--file", default="examples/events.jsonl", help="JSON Lines, '-' for stdin")
    p.add_argument("--topic", default="app.events", help="topic when no --topic-map matches")
    p.add_argument(
        "--topic-map", action="append", default=[], metavar="PREFIX=TOPIC",
        help="route events whose type starts with PREFIX to TOPIC (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--key-field", action="append", default=None, metavar="PATH",
        help="dotted path of the message key (repeatable; default data.user_id, subject, id)",
    )  # fmt: skip
    p.add_argument("--partitions", type=int, default=3, help="for topics this script creates")
    p.add_argument("--retime", action="store_true", help="move event times up to now")
    p.add_argument("--retime-factor", type=float, default=60.0, help="gap shrink factor")
    return p.parse_args(argv)


# An event (a JSON object) or, for any other line, its raw bytes.
Record = dict[str, Any] | bytes


def read_records(stream: BinaryIO) -> Iterator[Record]:
    for line in stream:
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        yield event if isinstance(event, dict) else raw


def _parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def retime(records: list[Record], factor: float) -> list[Record]:
    """Move each event's time so the newest is now and every gap is `factor` times shorter."""
    times = [t for r in records if isinstance(r, dict) and (t := _parse_time(r.get("time")))]
    if not times:
        return records
    newest, now = max(times), datetime.now(UTC)
    out: list[Record] = []
    for record in records:
        when = _parse_time(record.get("time")) if isinstance(record, dict) else None
        if isinstance(record, dict) and when is not None:
            moved = now - (newest - when) / factor
            stamp = moved.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            out.append({**record, "time": stamp})
        else:
            out.append(record)
    return out


def lookup(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def topic_for(record: Record, routes: list[tuple[str, str]], default: str) -> str:
    if isinstance(record, bytes):
        return default
    kind = str(record.get("type", ""))
    return next((topic for prefix, topic in routes if kind.startswith(prefix)), default)


def key_for(record: Record, paths: list[str]) -> bytes | None:
    if isinstance(record, bytes):  # not JSON: the first path's last part, found in the text
        for path in paths:
            name = re.escape(path.rsplit(".", 1)[-1])
            found = re.search(rb'"' + name.encode() + rb'"\s*:\s*"([^"]+)"', record)
            if found:
                return found.group(1)
        return None
    for path in paths:
        value = lookup(record, path)
        if value not in (None, ""):
            return str(value).encode()
    return None


def ensure_topics(bootstrap: str, topics: set[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=30).topics)
    missing = [NewTopic(t, num_partitions=partitions) for t in sorted(topics - existing)]
    for topic, future in (admin.create_topics(missing) if missing else {}).items():
        try:
            future.result(30)
        except KafkaException as exc:  # created meanwhile by someone else is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        print(f"created topic {topic} ({partitions} partitions)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    routes = [tuple(m.split("=", 1)) for m in args.topic_map]
    if any(len(r) != 2 for r in routes):
        raise SystemExit("--topic-map expects PREFIX=TOPIC")
    key_paths = args.key_field or ["data.user_id", "subject", "id"]
    with sys.stdin.buffer if args.file == "-" else open(args.file, "rb") as stream:
        records = list(read_records(stream))
    if args.retime:
        records = retime(records, args.retime_factor)
    plan = [(topic_for(r, routes, args.topic), key_for(r, key_paths), r) for r in records]
    ensure_topics(args.bootstrap, {topic for topic, _, _ in plan}, args.partitions)
    producer = Producer(
        {"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for topic, key, record in plan:
        value = record if isinstance(record, bytes) else json.dumps(record).encode()
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    left = producer.flush(60)
    if left:
        print(f"{left} events not delivered", file=sys.stderr)
        return 1
    print(f"produced {len(plan)} events to {', '.join(sorted({t for t, _, _ in plan}))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
