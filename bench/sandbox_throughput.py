"""Upsert throughput of the Meisa sandbox on this machine.

The sandbox runs as `meisa-bridge sandbox` in a subprocess pinned to one CPU; the client runs
here, pinned to another CPU when there is one, and keeps CONNECTIONS keep-alive connections busy
with a minimal asyncio HTTP/1.1 client (a full client library would measure itself, not the
sandbox). Two phases: creates (new emails) then updates (the same emails again). Prints
requests/s and the sandbox's CPU time per request, i.e. its capacity on one saturated core.

    .venv/bin/python bench/sandbox_throughput.py [--requests 20000] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import orjson

from bridge.sandbox.testing import sandbox_process

PATH = b"/api/v1/contacts/upsert/"


class UpsertConnection(asyncio.Protocol):
    """Sends one upsert, waits for its response, sends the next: `count` in all."""

    def __init__(self, key: bytes, prefix: str, count: int, done: asyncio.Future[int]) -> None:
        self.key, self.prefix, self.count, self.done = key, prefix, count, done
        self.sent = self.received = 0
        self.buf = b""
        self.statuses: dict[int, int] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send()

    def send(self) -> None:
        body = orjson.dumps(
            {
                "email": f"{self.prefix}{self.sent}@bench.example",
                "external_id": f"{self.prefix}{self.sent}",
                "custom_fields": {"plan": "pro", "signin_count": self.sent},
                "tag_names": ["bench"],
            }
        )
        self.sent += 1
        self.transport.write(
            b"POST %s HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n"
            b"X-API-Key: %s\r\nContent-Length: %d\r\n\r\n%s" % (PATH, self.key, len(body), body)
        )

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].lower()
            start = head.index(b"content-length:") + 15
            stop = head.find(b"\r\n", start)
            length = int(head[start : stop if stop >= 0 else None])
            if len(self.buf) < end + 4 + length:
                return
            status = int(head[9:12])
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.buf = self.buf[end + 4 + length :]
            self.received += 1
            if self.received >= self.count:
                self.transport.close()
                self.done.set_result(self.received)
                return
            self.send()


async def phase(port: int, key: str, connections: int, total: int, tag: str) -> tuple[float, dict]:
    loop = asyncio.get_running_loop()
    per = total // connections
    protocols = []
    futures = []
    started = time.perf_counter()
    for i in range(connections):
        done: asyncio.Future[int] = loop.create_future()
        futures.append(done)
        _, proto = await loop.create_connection(
            lambda i=i, done=done: UpsertConnection(key.encode(), f"{tag}{i}_", per, done),
            "127.0.0.1",
            port,
        )
        protocols.append(proto)
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    statuses: dict[int, int] = {}
    for proto in protocols:
        for status, n in proto.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return per * connections / elapsed, statuses


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]}
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))
    with sandbox_process(cpus=server_cpus) as (sandbox, proc):
        port = int(sandbox.url.rsplit(":", 1)[1])
        print(f"sandbox pid {proc.pid} on CPU {sorted(server_cpus)}; client on {cpus[1:] or cpus}")
        for name, tag in (("create", "new"), ("update", "new")):
            cpu_before = cpu_seconds(proc.pid)
            rate, statuses = asyncio.run(
                phase(port, sandbox.unlimited_key, args.connections, args.requests, tag)
            )
            cpu = cpu_seconds(proc.pid) - cpu_before
            per_req = cpu / args.requests * 1e6
            print(
                f"upsert {name:6s}: {rate:8,.0f} requests/s over {args.connections} connections"
                f"  | sandbox CPU {per_req:5.0f} us/request -> {1e6 / per_req:,.0f}/s on one"
                f" saturated core | statuses {statuses}"
            )
        print(f"contacts stored: {len(sandbox.contacts())}")


if __name__ == "__main__":
    main()
