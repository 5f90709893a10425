"""The naive baseline: one thread, consume one message -> post its calls -> commit, in a loop.

A 429 or 5xx is retried after the Retry-After (or half a second), as a careful script would;
anything else that is not 2xx stops the loop. Used by bench/pipeline_vs_naive.py and
bench/side_by_side.py; run alone it does nothing.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer

from bridge.events import Envelope

PATHS = {"upsert": "contacts/upsert/", "track": "events/track/", "trigger": "emails/trigger/"}
RETRY_SECONDS = 0.5  # without a Retry-After


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
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    http = httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers)
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
                calls += post(http, PATHS[call.kind], orjson.dumps(call.body))
            consumer.commit(message=m, asynchronous=False)
            done += 1
    finally:
        http.close()
        consumer.close()
    return {"events": done, "calls": calls, "seconds": time.perf_counter() - (start or 0)}


def post(http: httpx.Client, path: str, body: bytes) -> int:
    """POST until it succeeds; returns the number of requests it took."""
    attempts = 0
    while True:
        attempts += 1
        response = http.post(path, content=body)
        if response.status_code != 429 and response.status_code < 500:
            response.raise_for_status()
            return attempts
        retry_after = response.headers.get("retry-after", "")
        time.sleep(float(retry_after) if retry_after.isdigit() else RETRY_SECONDS)


if __name__ == "__main__":
    print("baseline for bench/side_by_side.py; nothing to run on its own")
