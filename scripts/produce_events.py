#!/usr/bin/env python3
"""Publish JSON Lines events to Kafka, keyed by user id (the bridge's per-contact order needs it).

    scripts/produce_events.py --bootstrap 127.0.0.1:9092 --file examples/events.jsonl
    scripts/produce_events.py --topic-map user.=app.users --topic-map auth.=app.auth --file -

Each line is one event (JSON or CloudEvents-shaped). The topic is the first --topic-map whose
prefix matches the event's type, else --topic. The key is the first of --key-field (dotted paths)
present in the event. Missing topics are created with --partitions partitions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

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
    return p.parse_args(argv)


def read_events(stream: TextIO) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(stream, 1):
        if line.strip():
            event = json.loads(line)
            if not isinstance(event, dict):
                raise SystemExit(f"line {number}: expected a JSON object")
            yield event


def lookup(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def topic_for(event: dict[str, Any], routes: list[tuple[str, str]], default: str) -> str:
    kind = str(event.get("type", ""))
    return next((topic for prefix, topic in routes if kind.startswith(prefix)), default)


def key_for(event: dict[str, Any], paths: list[str]) -> bytes | None:
    for path in paths:
        value = lookup(event, path)
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
    with sys.stdin if args.file == "-" else open(args.file, encoding="utf-8") as stream:
        events = list(read_events(stream))
    plan = [(topic_for(e, routes, args.topic), key_for(e, key_paths), e) for e in events]
    ensure_topics(args.bootstrap, {topic for topic, _, _ in plan}, args.partitions)
    producer = Producer(
        {"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for topic, key, event in plan:
        producer.produce(topic, key=key, value=json.dumps(event).encode())
        producer.poll(0)
    left = producer.flush(60)
    if left:
        print(f"{left} events not delivered", file=sys.stderr)
        return 1
    print(f"produced {len(plan)} events to {', '.join(sorted({t for t, _, _ in plan}))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
