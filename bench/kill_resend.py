"""Work re-sent after a SIGKILL in a full-speed drain: how many seconds of work a kill costs.

    .venv/bin/python bench/kill_resend.py [--rounds 5] [--events 6000] [--kill-at 0.4]
        [--protocol consumer|classic] [--bridge-set pipeline.commit_interval_seconds=0.5]

At-least-once means a killed instance's next owner sends again what the instance had on the
wire and what it had finished but not committed. Chaos runs count those re-sends among many
faults; this isolates one kill. Per round: a backlog of sign-ups, plan changes and feature usage
(tracks, each carrying its event id) for 600 people on a 4-partition topic; one bridge with the
default settings drains it against the sandbox (unlimited key, `--latency-ms` added); once the
double has received `--kill-at` of the tracks, the bridge gets SIGKILL and a second one, in the
same group, finishes the drain. The double's record then tells how many tracks arrived twice.

Printed per round: the drain rate in the second before the kill (tracks/s), the tracks re-sent,
and their ratio, the seconds of work lost to the kill, and the calls other than triggers the
bridge allowed on the wire just before it (`meisa_bridge_in_flight_limit`, from /metrics). That
ratio is the figure to compare: the rate follows the machine's load, the seconds of lost work
follow the commit path (commit interval, how long a commit waits for the consumer's thread, its
round trip) and the calls in flight.
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from _common import BOOTSTRAP, ROOT, add_bridge_set, load_average, settings, topics
from bridge_harness import committed, end_offsets
from side_by_side import PARTITIONS, RULES, SANDBOX, produce, workload

TICK = 0.01  # seconds between looks at the double's record before the kill


def rules() -> list[dict[str, Any]]:
    """The side by side's rules, with each track carrying its event id."""
    out = [dict(rule) for rule in RULES]
    for rule in out:
        for step in rule["do"]:
            if "track" in step:
                props = {**step["track"]["properties"], "eid": "{{ id }}"}
                step["track"] = {**step["track"], "properties": props}
    return out


def config(
    tmp: Path, *, topic: str, group: str, sandbox: Any, args: argparse.Namespace, port: int
) -> Path:
    kafka: dict[str, Any] = {"bootstrap.servers": BOOTSTRAP, "group.id": group}
    if args.protocol == "classic":
        kafka.update({"group.protocol": "classic", "session.timeout.ms": 10000})
    doc: dict[str, Any] = {
        "kafka": kafka,
        "topics": [topic],
        "meisa": {"base_url": sandbox.base_url, "api_key": sandbox.unlimited_key},
        "ledger": {"enabled": False},
        "suppression": {"enabled": False},
        "server": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "WARNING", "format": "text"},
        "rules": rules(),
    }
    for section, values in settings(args.bridge_set).items():
        doc.setdefault(section, {}).update(values)
    path = tmp / f"bridge-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def track_ids(sandbox: Any) -> list[str]:
    return [str(e["properties"].get("eid")) for e in sandbox.events(event_name="feature_used")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gauge(port: int, name: str) -> str:
    """A gauge's value from the bridge's /metrics, "-" when it cannot be read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            text = answer.read().decode()
    except OSError:
        return "-"
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return f"{float(found.group(1)):.0f}" if found else "-"


def one_round(
    tmp: Path, topic: str, tracks: int, sandbox: Any, args: argparse.Namespace
) -> tuple[float, int, str]:
    """(tracks/s in the second before the kill, tracks re-sent, the calls allowed on the wire
    just before the kill)."""
    sandbox.reset()
    sandbox.set_fault("*", latency_ms=args.latency_ms)
    group = f"kill-{uuid.uuid4().hex[:6]}"
    port = free_port()
    cfg = config(tmp, topic=topic, group=group, sandbox=sandbox, args=args, port=port)
    argv = [sys.executable, "-m", "bridge", "run", "--config", str(cfg)]
    first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[tuple[float, int]] = []
    target = int(tracks * args.kill_at)
    deadline = time.monotonic() + args.timeout
    while True:
        count = len(sandbox.events(event_name="feature_used"))
        seen.append((time.monotonic(), count))
        if count >= target:
            limit = gauge(port, "meisa_bridge_in_flight_limit")
            break
        if first.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the first bridge did not reach {target} tracks")
        time.sleep(TICK)
    first.send_signal(signal.SIGKILL)
    first.wait()
    now, count = seen[-1]
    before = next((c for t, c in reversed(seen) if now - t >= 1.0), seen[0][1])
    span = min(1.0, now - seen[0][0]) or 1.0
    rate = (count - before) / span
    second = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ends = end_offsets(BOOTSTRAP, topic, PARTITIONS)
        while committed(BOOTSTRAP, group, topic, PARTITIONS) != ends:
            if second.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the second bridge did not finish the drain")
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    ids = Counter(track_ids(sandbox))
    missing = tracks - len(ids)
    if missing:
        raise RuntimeError(f"{missing} tracks never arrived")
    return rate, sum(n - 1 for n in ids.values()), limit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--events", type=int, default=6_000, help="events in the backlog")
    p.add_argument("--kill-at", type=float, default=0.4, help="share of the tracks before the kill")
    p.add_argument("--latency-ms", type=int, default=5, help="added to every request")
    p.add_argument("--protocol", choices=("consumer", "classic"), default="consumer")
    p.add_argument("--timeout", type=float, default=300.0, help="per round, seconds")
    add_bridge_set(p)
    args = p.parse_args()

    from bridge.sandbox.testing import sandbox_process

    events = workload(args.events)
    tracks = sum(1 for e in events if e["type"] == "feature.used")
    print(f"{args.events} events ({tracks} tracks), {args.protocol} protocol, kill at "
          f"{args.kill_at:.0%} of the tracks, load average {load_average():.1f}")  # fmt: skip
    if args.bridge_set:
        print(f"bridge settings changed: {', '.join(args.bridge_set)}")
    lost: list[float] = []
    with (
        sandbox_process(SANDBOX) as (sandbox, _),
        tempfile.TemporaryDirectory() as tmp_dir,
        topics(PARTITIONS, prefix="kill") as (topic,),
    ):
        produce(topic, events)
        print(f"{'round':>5} {'tracks/s':>9} {'re-sent':>8} {'seconds lost':>13} {'limit':>6}")
        for n in range(1, args.rounds + 1):
            rate, resent, limit = one_round(Path(tmp_dir), topic, tracks, sandbox, args)
            lost.append(resent / rate if rate else 0.0)
            print(f"{n:>5} {rate:>9.0f} {resent:>8} {lost[-1]:>13.3f} {limit:>6}", flush=True)
    print(f"median seconds of work re-sent per kill: {statistics.median(lost):.3f} "
          f"(load average {load_average():.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
