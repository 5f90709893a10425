"""How long OTP triggers wait while a backlog of upserts drains behind a tight rate limit.

A backlog of upsert events (many contacts, more per partition than the bridge buffers) sits on a
topic; the sandbox key allows `--rate` requests per minute. Once the bridge (`meisa-bridge run`,
a subprocess) sends its first upsert, OTP events are published every `--interval` seconds, and
each OTP's wait is measured from its produce time to the sandbox's log entry for its trigger
(POST /emails/trigger/, found by its idempotency key). Two runs, same backlog and settings:

* own-topic: OTPs on their own topic (what the README recommends for transactional events);
* same-topic: OTPs on the backlog's topic, behind the backlog in their partition (read-ahead
  reads past the backlog, so they need not wait for it).

Prints p50/p95/p99/max wait per run, upsert calls/s and backlog events/s, and the ratios. An OTP
that has not arrived `--wait` seconds after the last one was published counts with the time it
had waited by then, marked `>` (a lower bound), and so does a ratio computed from one.

    .venv/bin/python bench/otp_latency.py [--rate 600] [--otps 30] [--interval 2]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from _common import BOOTSTRAP, percentile, topics
from bridge_harness import bridge_process, committed, event, produce, wait_for, write_config
from confluent_kafka import Producer

from bridge.sandbox.testing import SandboxHandle, sandbox_process

KEY = "meisa_test_bench_otp_latency_000000000000"
BACKLOG_PARTITIONS = 2
OTP_USER_BASE = 1_000_000  # OTP contacts never share a key with the backlog's contacts
TRIGGER_PATH = "/api/v1/emails/trigger/"
UPSERT_PATH = "/api/v1/contacts/upsert/"


def sandbox_config(rate: int) -> dict[str, Any]:
    key = {
        "key": KEY,
        "name": "bench-otp",
        "environment": "test",
        "scopes": ["*"],
        "rate_limit_per_minute": rate,
        "rate_limit_per_hour": None,  # only the minute limit: the effect shows within a minute
    }
    return {"keys": [key], "request_log_size": 1_000_000}


@dataclass(frozen=True)
class RunResult:
    mode: str
    waits: list[tuple[float, bool]]  # (seconds, arrived) per OTP; not arrived: a lower bound
    upserts_per_s: float
    events_per_s: float
    rate_limited: int
    arrivals: list[float]  # when OTPs arrived, seconds after the first upsert


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _backlog(args: argparse.Namespace) -> list[dict[str, Any]]:
    # Contacts interleaved so adjacent events are for different people (little to coalesce).
    return [event("user.updated", i % args.contacts, i) for i in range(args.backlog)]


def _publish_otps(args: argparse.Namespace, topic: str) -> dict[str, float]:
    """Publish `--otps` OTP events, one every `--interval` s; idempotency key -> produce time."""
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 0, "acks": "all"})
    sent: dict[str, float] = {}
    start = time.monotonic()
    for i in range(args.otps):
        time.sleep(max(0.0, start + i * args.interval - time.monotonic()))
        otp = event("auth.otp", OTP_USER_BASE + i, i, code=f"{i:06d}")
        sent["otp-" + otp["id"]] = time.time()
        producer.produce(topic, key=otp["data"]["user_id"].encode(), value=orjson.dumps(otp))
        producer.poll(0)
    assert producer.flush(30) == 0
    return sent


def _arrivals(sb: SandboxHandle) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in sb.requests(path=TRIGGER_PATH, limit=1_000_000):
        key = (r.get("body") or {}).get("idempotency_key")
        if key and r["status"] < 300 and key not in out:
            out[key] = _epoch(r["time"])
    return out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_mode(args: argparse.Namespace, sb: SandboxHandle, mode: str, tmp: Path) -> RunResult:
    sb.reset()
    with topics(BACKLOG_PARTITIONS, 1, prefix=f"bench-otp-{mode}") as (backlog, otp_topic):
        produce(BOOTSTRAP, backlog, _backlog(args))
        target = otp_topic if mode == "own-topic" else backlog
        group = f"bench-otp-{mode}-{uuid.uuid4().hex[:6]}"
        cfg = write_config(
            tmp,
            bootstrap=BOOTSTRAP,
            topics=[backlog, otp_topic] if mode == "own-topic" else [backlog],
            base_url=sb.base_url,
            api_key=KEY,
            group=group,
            pipeline={"shutdown_grace_seconds": 2},
        )
        proc = bridge_process(cfg, tmp / f"bridge-{mode}.log")
        try:
            wait_for(lambda: bool(sb.requests(path=UPSERT_PATH, limit=1)), 60, "a first upsert")
            begin = time.time()
            sent = _publish_otps(args, target)
            deadline = time.monotonic() + args.wait
            while time.monotonic() < deadline and len(_arrivals(sb)) < len(sent):
                time.sleep(0.5)
            end = time.time()
            drained = sum(committed(BOOTSTRAP, group, backlog, BACKLOG_PARTITIONS).values())
        finally:
            _stop(proc)
    arrived = _arrivals(sb)
    waits = [(arrived[k] - t, True) if k in arrived else (end - t, False) for k, t in sent.items()]
    upserts = sb.requests(path=UPSERT_PATH, limit=1_000_000)
    in_window = [r for r in upserts if begin <= _epoch(r["time"]) <= end and r["status"] < 300]
    first_upsert = min(_epoch(r["time"]) for r in upserts)
    return RunResult(
        mode=mode,
        waits=waits,
        upserts_per_s=len(in_window) / (end - begin),
        events_per_s=max(0, drained) / (end - begin),
        rate_limited=sum(1 for r in sb.requests(path="/api/v1/", limit=1_000_000)
                         if r["status"] == 429),
        arrivals=sorted(arrived[k] - first_upsert for k in sent if k in arrived),
    )  # fmt: skip


def _wait(r: RunResult, q: float) -> tuple[float, bool]:
    """The q-th percentile (seconds, arrived); not arrived: a lower bound."""
    return percentile(r.waits, q)


def _fmt(wait: tuple[float, bool]) -> str:
    return f"{wait[0]:.2f}" if wait[1] else f">{wait[0]:.1f}"


def report(args: argparse.Namespace, results: list[RunResult]) -> None:
    print(
        f"backlog {args.backlog} upsert events for {args.contacts} contacts on "
        f"{BACKLOG_PARTITIONS} partitions, key limit {args.rate}/min, {args.otps} OTPs every "
        f"{args.interval:g} s (waits in seconds, produce -> trigger received by the sandbox)"
    )
    head = f"{'':<12}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'late':>6}"
    print(head + f"{'upserts/s':>11}{'events/s':>10}{'429s':>6}")
    for r in results:
        p = [_wait(r, q) for q in (50, 95, 99, 100)]
        late = sum(1 for _, arrived in r.waits if not arrived)
        cells = "".join(f"{_fmt(v):>8}" for v in p)
        print(f"{r.mode:<12}{cells}{late:>6}{r.upserts_per_s:>11.1f}{r.events_per_s:>10.1f}"
              f"{r.rate_limited:>6}")  # fmt: skip
    for r in results:
        if r.arrivals:
            low, mid, high = r.arrivals[0], percentile(r.arrivals, 50), r.arrivals[-1]
            print(f"{r.mode}: OTPs arrived {low:.1f} s (first), {mid:.1f} s (median), "
                  f"{high:.1f} s (last) after the first upsert")  # fmt: skip
    own, base = results
    for q in (50, 99):
        (a, a_exact), (b, b_exact) = _wait(own, q), _wait(base, q)
        bound = "" if b_exact else ">= "
        ratio = "n/a (own-topic OTPs late too)" if not a_exact else f"{bound}{b / a:.1f}x"
        print(f"p{q} wait, same-topic / own-topic: {ratio}")
    for r in results:
        p99, exact = _wait(r, 99)
        verdict = "met" if exact and p99 < 2 else "NOT met"
        print(f"aim p99 < 2 s, {r.mode}: {verdict}")
    print(f"('>': not received within {args.wait:g} s after the last OTP was published)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=600, help="the key's requests per minute")
    p.add_argument("--backlog", type=int, default=8000, help="upsert events in the backlog")
    p.add_argument("--contacts", type=int, default=4000)
    p.add_argument("--otps", type=int, default=30)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between OTPs")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for stragglers")
    args = p.parse_args()
    results = []
    with sandbox_process(sandbox_config(args.rate)) as (sb, _), tempfile.TemporaryDirectory() as t:
        for mode in ("own-topic", "same-topic"):
            results.append(run_mode(args, sb, mode, Path(t)))
    report(args, results)


if __name__ == "__main__":
    main()
