"""Meisa calls per event on a mix with enrolments and tags, without and with folding and bulk.

`--people` people each sign up (an upsert and an add_tag), are enrolled in a sequence, then
produce a random mix of plan changes (an upsert, and an add_tag when paying) and feature usage
(a track), about `--events` events in all, keyed by person on a 4-partition topic of the
in-memory broker. The real Pipeline and delivery step (Deliverer, RateGovernor) run them against
a Meisa that answers after `--latency-ms`, optionally on a `--per-minute` key. "before": every
add_tag and enrolment on its own (`coalesce: false` on those actions, no enrolment window), as
the bridge did before; upserts still merge. "after": the defaults (an add_tag folds into its
person's queued upsert, enrolments go in bulk within `pipeline.enroll_batch_seconds`). Prints
requests by endpoint and calls per event.

    .venv/bin/python bench/calls_per_event.py [--people 600] [--events 4000] [--per-minute N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from pipeline_memory import governed

from bridge.codecs import build_decoder
from bridge.config import BridgeConfig, load_rules
from bridge.dlq import DeadLetterProducer
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemorySource
from bridge.meisa.calls import MeisaCall
from bridge.meisa.models import CallResult
from bridge.pipeline.pipeline import Pipeline
from bridge.settings import CodecSettings, DlqSettings, MeisaSettings, PipelineSettings

TOPIC, PARTITIONS = "events", 4
RULES = """
rules:
  - name: signup
    on: user.signed_up
    do:
      - upsert: {email: "{{ data.email }}", external_id: "{{ data.user_id }}",
                 first_name: "{{ data.name }}"}
      - add_tag: {external_id: "{{ data.user_id }}", tag_name: new-user}
        coalesce: COALESCE
  - name: onboard
    on: user.onboarded
    do:
      - enroll: {email: "{{ data.email }}", sequence_slug: onboarding}
        coalesce: COALESCE
  - name: plan
    on: plan.changed
    do:
      - upsert: {email: "{{ data.email }}", external_id: "{{ data.user_id }}",
                 custom_fields: {plan: "{{ data.plan }}"}}
      - add_tag: {external_id: "{{ data.user_id }}", tag_name: paying}
        when: data.plan != 'free'
        coalesce: COALESCE
  - name: usage
    on: feature.used
    do:
      - track: {external_id: "{{ data.user_id }}", event_name: feature_used}
"""


def workload(people: int, count: int, seed: int = 7) -> list[tuple[int, bytes]]:
    """(person, event) pairs: each person's sign-up and enrolment, then a random mix."""
    rng = random.Random(seed)
    out: list[tuple[int, dict[str, Any]]] = []
    for p in range(people):
        out.append((p, {"type": "user.signed_up", "data": {"name": f"P{p}"}}))
        out.append((p, {"type": "user.onboarded", "data": {}}))
    while len(out) < count:
        p = rng.randrange(people)
        if rng.random() < 0.4:
            plan = rng.choice(["free", "pro", "team"])
            out.append((p, {"type": "plan.changed", "data": {"plan": plan}}))
        else:
            out.append((p, {"type": "feature.used", "data": {}}))
    events = []
    for n, (p, event) in enumerate(out):
        event["id"] = f"evt-{n}"
        event["data"].update(user_id=f"usr_{p}", email=f"user{p}@example.com")
        events.append((p, orjson.dumps(event)))
    return events


class Meisa:
    """Answers after `latency` seconds; counts requests by kind; enrols every bulk address."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests: Counter[str] = Counter()

    def requests_for(self, call: MeisaCall) -> int:
        return 1

    async def send(self, call: MeisaCall) -> CallResult:
        self.requests[call.kind] += 1
        await asyncio.sleep(self.latency)
        if call.kind == "bulk_enroll":
            return CallResult(200, {"enrolled_emails": call.body["emails"], "skipped_emails": []})
        return CallResult(200, {"id": call.contact_key})


async def run(
    events: list[tuple[int, bytes]], *, after: bool, latency: float, per_minute: int | None
) -> Counter[str]:
    broker = MemoryBroker()
    broker.create_topic(TOPIC, PARTITIONS)
    broker.create_topic("dlq")
    for person, value in events:
        broker.produce(TOPIC, value, partition=person % PARTITIONS)
    meisa = Meisa(latency)
    deliver, governor = governed(meisa, per_minute=per_minute, settings=MeisaSettings())
    rules_text = RULES.replace("COALESCE", "true" if after else "false")
    settings = PipelineSettings(
        commit_interval_seconds=0.05, enroll_batch_seconds=1.0 if after else 0.0
    )
    pipeline = Pipeline(
        config=BridgeConfig(topics=(TOPIC,), pipeline=settings, dlq=DlqSettings(topic="dlq")),
        source=MemorySource(broker, [TOPIC], "bench"),
        decoder=build_decoder(CodecSettings()),
        rules=_rules(rules_text),
        deliver=deliver,
        guard=lambda call, event_time: None,
        dlq=DeadLetterProducer(MemoryProducer(broker), "dlq"),
    )
    task = asyncio.create_task(pipeline.run())
    ends = {(TOPIC, p): broker.high((TOPIC, p)) for p in range(PARTITIONS)}
    for _ in itertools.count():  # until every partition is committed to its end
        if all(broker.committed("bench", tp) == end for tp, end in ends.items()):
            break
        await asyncio.sleep(0.02)
    pipeline.stop()
    await task
    await governor.aclose()
    return meisa.requests


def _rules(text: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        return load_rules(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=600)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--per-minute", type=int, default=None)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    events = workload(args.people, args.events)
    print(f"{len(events):,} events, {args.people} people, key {args.per_minute or 'unlimited'}")
    rows = {}
    for label, after in (("before", False), ("after", True)):
        rows[label] = asyncio.run(
            run(events, after=after, latency=args.latency_ms / 1000, per_minute=args.per_minute)
        )
    kinds = sorted(set(rows["before"]) | set(rows["after"]))
    print(f"{'':8}" + "".join(f"{k:>13}" for k in kinds) + f"{'calls':>9}{'per event':>11}")
    for label, requests in rows.items():
        total = sum(requests.values())
        cells = "".join(f"{requests.get(k, 0):>13,}" for k in kinds)
        print(f"{label:8}{cells}{total:>9,}{total / len(events):>11.3f}")


if __name__ == "__main__":
    main()
