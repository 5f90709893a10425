"""The naive baseline: one thread, consume one message -> post its calls -> commit, in a loop.

Used by bench/pipeline_vs_naive.py; run alone it does nothing.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer

from bridge.events import Envelope

PATHS = {"upsert": "contacts/upsert/", "track": "events/track/", "trigger": "emails/trigger/"}


def run_naive(
    *, bootstrap: str, topic: str, group: str, base_url: str, api_key: str, rules: Any, total: int
) -> dict[str, float]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    http = httpx.Client(base_url=base_url.rstrip("/") + "/", headers={"X-API-Key": api_key})
    done = calls = 0
    start = None
    try:
        while done < total:
            m = consumer.poll(1.0)
            if m is None or m.error() is not None:
                continue
            start = start or time.perf_counter()
            obj = orjson.loads(m.value())
            env = Envelope(
                topic=m.topic(), partition=m.partition(), offset=m.offset(), data=obj["data"],
                id=obj["id"], type=obj["type"], time=obj.get("time"),
            )  # fmt: skip
            for call in rules.map(env):
                http.post(PATHS[call.kind], content=orjson.dumps(call.body)).raise_for_status()
                calls += 1
            consumer.commit(message=m, asynchronous=False)
            done += 1
    finally:
        http.close()
        consumer.close()
    return {"events": done, "calls": calls, "seconds": time.perf_counter() - (start or 0)}


if __name__ == "__main__":
    print("baseline for bench/pipeline_vs_naive.py; nothing to run on its own")
