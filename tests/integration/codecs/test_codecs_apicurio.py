"""Confluent wire format against a real Confluent-compatible registry (Apicurio, ccompat API).

The `registry` fixture (tests/integration/conftest.py) starts `scripts/registry.sh` when nothing
serves on REGISTRY_PORT.
"""

from __future__ import annotations

import io
import json
import os
import urllib.request
from pathlib import Path

import fastavro
import pytest

from bridge.codecs import build_decoder
from bridge.settings import CodecSettings

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.integration


def _register(url: str, subject: str, schema: str) -> int:
    body = json.dumps({"schema": schema}).encode()
    request = urllib.request.Request(
        f"{url}/subjects/{subject}/versions",
        data=body,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.loads(response.read())["id"])


@pytest.mark.timeout(600)
def test_confluent_wire_format_decodes_through_a_real_registry(registry: str) -> None:
    text = (ROOT / "schemas" / "payment.failed.avsc").read_text()
    schema_id = _register(registry, f"payments-{os.getpid()}-value", text)
    event = {
        "type": "payment.failed",
        "id": "evt_pf_1",
        "time": "2026-03-02T10:00:00Z",
        "source": "billing",
        "data": {
            "user_id": "usr_7",
            "email": "pay@example.com",
            "invoice_id": "in_7",
            "amount_cents": 4900,
            "currency": "EUR",
            "attempt": 2,
        },
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(text)), event)
    value = b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue()
    decoder = build_decoder(CodecSettings(schema_registry_url=registry))
    env = decoder.decode(
        topic="payments",
        partition=0,
        offset=1,
        key=b"usr_7",
        value=value,
        headers=None,
        timestamp=1,
    )
    assert (env.type, env.id, env.source) == ("payment.failed", "evt_pf_1", "billing")
    assert env.data == event["data"]
