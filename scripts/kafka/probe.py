"""Is a Kafka broker serving clients at HOST:PORT? Exit 0 if yes, 1 if not.

Sends one Metadata request (v4, the oldest version Kafka 4.x still serves) and succeeds only when
the answer lists at least one broker. A KRaft broker enables its client listener only after it
has caught up with the controller and been unfenced, so an answer here means topics can be created.
Standard library only: it runs before the project's virtualenv exists.

    python3 probe.py 127.0.0.1 9092 [timeout_seconds]
"""

from __future__ import annotations

import socket
import struct
import sys

METADATA_API_KEY = 3
METADATA_VERSION = 4
CLIENT_ID = b"kafka.sh-probe"


def metadata_request(correlation_id: int) -> bytes:
    api = (METADATA_API_KEY, METADATA_VERSION)
    header = struct.pack(">hhih", *api, correlation_id, len(CLIENT_ID))
    # topics = [] (no topic metadata, only brokers), allow_auto_topic_creation = false
    body = struct.pack(">ib", 0, 0)
    payload = header + CLIENT_ID + body
    return struct.pack(">i", len(payload)) + payload


def read_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        chunks.extend(chunk)
    return bytes(chunks)


def broker_count(host: str, port: int, timeout: float) -> int:
    correlation_id = 7
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(metadata_request(correlation_id))
        (size,) = struct.unpack(">i", read_exact(sock, 4))
        response = read_exact(sock, size)
    got_id, _throttle_ms, brokers = struct.unpack(">iii", response[:12])
    if got_id != correlation_id:
        raise ConnectionError(f"unexpected correlation id {got_id}")
    return int(brokers)


def main(argv: list[str]) -> int:
    host, port = argv[1], int(argv[2])
    timeout = float(argv[3]) if len(argv) > 3 else 3.0
    try:
        return 0 if broker_count(host, port, timeout) > 0 else 1
    except (OSError, struct.error):
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
