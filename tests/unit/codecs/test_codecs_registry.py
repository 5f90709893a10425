"""Confluent wire format through the registry client, against a stdlib HTTP server."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fastavro
import pytest

from bridge.codecs import build_decoder
from bridge.errors import DecodeError, TransportError
from bridge.settings import CodecSettings

SCHEMA = (Path(__file__).resolve().parents[3] / "schemas" / "invoice.paid.avsc").read_text()
EVENT = {
    "type": "invoice.paid",
    "id": "evt_9",
    "time": "2026-03-02T10:00:00Z",
    "source": None,
    "data": {
        "user_id": "u1",
        "email": "a@b.c",
        "invoice_id": "in_1",
        "amount_cents": 900,
        "currency": "EUR",
    },
}


class _Registry(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path == "/schemas/ids/7":
            body = json.dumps({"schema": SCHEMA}).encode()
            self.send_response(200)
        else:
            body = b'{"error_code": 40403, "message": "Schema not found"}'
            self.send_response(404)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Registry.hits = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _wire(schema_id: int) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(SCHEMA)), EVENT)
    return b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue()


def _decode(url: str, value: bytes) -> object:
    decoder = build_decoder(CodecSettings(schema_registry_url=url))
    for offset in range(3):  # the schema is fetched once, then cached
        env = decoder.decode(
            topic="t",
            partition=0,
            offset=offset,
            key=None,
            value=value,
            headers=None,
            timestamp=None,
        )
    return env


def test_confluent_wire_format_resolves_schema_once(registry_url: str) -> None:
    env = _decode(registry_url, _wire(7))
    assert env.type == "invoice.paid"  # type: ignore[attr-defined]
    assert env.data["amount_cents"] == 900  # type: ignore[attr-defined]
    assert _Registry.hits == ["/schemas/ids/7"]


def test_unknown_schema_id_is_a_decode_error(registry_url: str) -> None:
    with pytest.raises(DecodeError, match="schema id 8"):
        _decode(registry_url, _wire(8))


def test_unreachable_registry_is_retryable_not_poison() -> None:
    with pytest.raises(TransportError):
        _decode("http://127.0.0.1:9", _wire(7))
