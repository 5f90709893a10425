"""Start-up load of the sent-email ledger: seconds and memory for N keys on the local broker.

Writes N ledger records (as the bridge writes them) to a fresh topic, then times what `run` does
at start-up before it consumes any event: `KafkaLedger.open()` reads the topic into the index.
Prints keys/s and the index's memory per key (tracemalloc, measured on a separate index so that
tracing does not slow the timed load).

    .venv/bin/python bench/ledger_load.py [--keys 200000]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
import uuid

import orjson
from confluent_kafka import Producer

from bridge.config import LedgerSettings
from bridge.kafka.ledger import KafkaLedger
from bridge.ledger import LedgerIndex


def produce(bootstrap: str, topic: str, keys: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "log_level": 0})
    now = time.time()
    for n in range(keys):
        value = orjson.dumps({"trigger_key": "verification_code", "sent_at": now})
        while True:
            try:
                producer.produce(topic, value, f"otp-evt-{n:012d}".encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def bytes_per_key(keys: int) -> float:
    index = LedgerIndex(retention_seconds=7 * 86_400, max_keys=keys)
    tracemalloc.start()
    now = time.time()
    for n in range(keys):
        index.add(f"otp-evt-{n:012d}", now)
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return used / keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200_000)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    settings = LedgerSettings(topic=f"bench-ledger-{uuid.uuid4().hex[:8]}", partitions=6)
    kafka = {"bootstrap.servers": bootstrap, "log_level": "0"}
    KafkaLedger(kafka, settings)._ensure_topic()
    produce(bootstrap, str(settings.topic), args.keys)
    ledger = KafkaLedger(kafka, settings)
    started = time.perf_counter()
    ledger.open()
    seconds = time.perf_counter() - started
    loaded = len(ledger.index)
    ledger.close()
    print(f"ledger load: {loaded:,} keys in {seconds:.1f} s ({loaded / seconds:,.0f} keys/s)")
    print(f"ledger memory: {bytes_per_key(min(args.keys, 200_000)):.0f} bytes per key")


if __name__ == "__main__":
    main()
