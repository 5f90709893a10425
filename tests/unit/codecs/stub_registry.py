"""A Confluent-compatible schema registry for unit tests: the few endpoints the serialisers and
the bridge use, over real HTTP (stdlib), with knobs for auth, failures and slowness."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class StubRegistry:
    url: str = ""
    schemas: dict[int, dict[str, Any]] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, auth
    require_auth: str | None = None  # the Authorization header every request must carry
    status: int | None = None  # answer every GET with this status instead
    delay: float = 0.0  # seconds before each answer to a GET

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        known = [i for i, s in self.schemas.items() if s == schema]
        schema_id = known[0] if known else len(self.schemas) + 1
        self.schemas[schema_id] = schema
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def gets(self, prefix: str = "/schemas/ids/") -> list[str]:
        return [p for m, p, _ in self.requests if m == "GET" and p.startswith(prefix)]


def _handler(stub: StubRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _allowed(self, method: str) -> bool:
            auth = self.headers.get("Authorization")
            stub.requests.append((method, self.path, auth))
            if stub.require_auth is not None and auth != stub.require_auth:
                self._answer(401, {"error_code": 401, "message": "Unauthorized"})
                return False
            return True

        def do_GET(self) -> None:
            if not self._allowed("GET"):
                return
            time.sleep(stub.delay)
            if stub.status is not None:
                self._answer(stub.status, {"error_code": stub.status, "message": "injected"})
                return
            parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
            found = None
            if parts[:2] == ["schemas", "ids"]:
                found = stub.schemas.get(int(parts[2]))
            elif parts[0] == "subjects" and len(parts) == 4:
                ids = stub.subjects.get(parts[1], [])
                version = len(ids) if parts[3] == "latest" else int(parts[3])
                if 0 < version <= len(ids):
                    found = {**stub.schemas[ids[version - 1]], "subject": parts[1]}
                    found |= {"version": version, "id": ids[version - 1]}
            if found is None:
                self._answer(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._answer(200, found)

        def do_POST(self) -> None:
            if not self._allowed("POST"):
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            subject = urlsplit(self.path).path.strip("/").split("/")[1]
            schema = {k: v for k, v in body.items() if k in ("schema", "schemaType", "references")}
            schema.setdefault("schemaType", "AVRO")
            schema_id = stub.register(subject, schema)
            self._answer(200, {"id": schema_id, **schema})

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def stub_registry(tls: ssl.SSLContext | None = None) -> Iterator[StubRegistry]:
    """The stub on 127.0.0.1; with `tls` (a server context) it speaks HTTPS as `localhost`."""
    stub = StubRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    stub.url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
