#!/usr/bin/env python3
"""Print what the sandbox received and what went to the DLQ (the last step of `make demo`)."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid

from confluent_kafka import Consumer

from bridge.sandbox.testing import SandboxHandle


def dlq_entries(bootstrap: str, topic: str) -> list[dict[str, str]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"demo-dlq-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out, quiet_until = [], time.monotonic() + 5
    try:
        while time.monotonic() < quiet_until:
            m = consumer.poll(0.5)
            if m is None or m.error() is not None:
                continue
            headers = {k: (v or b"").decode("utf-8", "replace") for k, v in m.headers() or []}
            out.append(headers)
            quiet_until = time.monotonic() + 1
    finally:
        consumer.close()
    return out


def skipped_in_log(path: str) -> list[str]:
    out = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as log:
        for line in log:
            with contextlib.suppress(ValueError):
                msg = json.loads(line).get("msg", "")
                if msg.startswith("skipped "):
                    out.append(msg.removeprefix("skipped "))
    return out


def main() -> None:
    sb = SandboxHandle(os.environ["SANDBOX_URL"])
    contacts = sb.contacts()
    print(f"\ncontacts ({len(contacts)}):")
    for c in contacts:
        tags = ", ".join(t["name"] for t in c.get("tags", []))
        fields = ", ".join(f"{k}={v}" for k, v in sorted((c.get("custom_fields") or {}).items()))
        print(f"  {c['email']:<28} {c.get('external_id') or '-':<9} tags [{tags}]")
        print(f"  {'':<28} {fields}")
    events = sb.events()
    print(f"\ntracked events ({len(events)}):")
    for e in events:
        print(
            f"  {e['timestamp']}  {e['email']:<28} {e['event_name']}  {e.get('properties') or ''}"
        )
    sends = sb.sends()
    print(f"\nemails ({len(sends)}):")
    for s in sends:
        why = f" ({s['reason']})" if s.get("reason") else ""
        print(f"  {s['status']:<10} {s['trigger_key']:<20} -> {s['to_email']}{why}")
    enrollments = sb.enrollments()
    print(f"\nsequence enrolments ({len(enrollments)}):")
    for e in enrollments:
        print(f"  {e['sequence_slug']:<16} {e['email']}  {e['status']}")
    skipped = skipped_in_log(os.environ.get("DEMO_BRIDGE_LOG", "var/demo/bridge.log"))
    print(f"\nskipped by the bridge ({len(skipped)}: past max_age, unsubscribed, suppressed):")
    for line in skipped:
        print(f"  {line}")
    entries = dlq_entries(os.environ["KAFKA_BOOTSTRAP"], os.environ["DLQ_TOPIC"])
    print(f"\ndead-letter topic {os.environ['DLQ_TOPIC']} ({len(entries)}):")
    for h in entries:
        print(
            f"  {h.get('meisa-bridge.topic')}/{h.get('meisa-bridge.partition')}"
            f"@{h.get('meisa-bridge.offset')}  stage={h.get('meisa-bridge.stage')} "
            f"rule={h.get('meisa-bridge.rule') or '-'}  {h.get('meisa-bridge.error.class')}: "
            f"{h.get('meisa-bridge.error.message')}"
        )


if __name__ == "__main__":
    main()
