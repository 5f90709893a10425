"""A minimal Confluent Schema Registry client: GET /schemas/ids/{id}, cached, parsed once.

Uses urllib (blocking): a schema is fetched once per id for the life of the process, so the
rare first lookup may block briefly; everything after is a dict hit. A registry that cannot be
reached raises TransportError (retry later), an id it does not know raises DecodeError (poison).
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import fastavro

from bridge.errors import DecodeError, TransportError

Fetch = Callable[[str], bytes]
TIMEOUT_SECONDS = 10.0


def _host(parts: urllib.parse.SplitResult) -> str:
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""


def _urllib_fetch(url: str) -> bytes:
    parts = urllib.parse.urlsplit(url)
    headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
    if parts.username:  # https://user:pass@registry/ -> basic auth, credentials kept off the URL
        user, password = (urllib.parse.unquote(p or "") for p in (parts.username, parts.password))
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=_host(parts)))
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        body: bytes = response.read()
        return body


class SchemaRegistry:
    """Schemas by id from a Confluent-compatible registry (Confluent, Apicurio ccompat, ...)."""

    def __init__(self, url: str, *, fetch: Fetch | None = None) -> None:
        self.url = url.rstrip("/")
        self._fetch = fetch or _urllib_fetch
        self._cache: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"SchemaRegistry({parts.scheme}://{_host(parts)})"  # never the credentials

    def get(self, schema_id: int) -> Any:
        schema = self._cache.get(schema_id)
        if schema is None:
            with self._lock:
                schema = self._cache.get(schema_id)
                if schema is None:
                    schema = self._cache[schema_id] = self._load(schema_id)
        return schema

    def _load(self, schema_id: int) -> Any:
        try:
            body = self._fetch(f"{self.url}/schemas/ids/{schema_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise DecodeError(f"schema id {schema_id} is not in the registry") from None
            raise TransportError(f"schema registry answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"schema registry unreachable: {exc}") from None
        try:
            answer = json.loads(body)
            if answer.get("schemaType", "AVRO") != "AVRO":
                raise DecodeError(f"schema id {schema_id} is {answer['schemaType']}, not Avro")
            return fastavro.parse_schema(json.loads(answer["schema"]))
        except (ValueError, KeyError, TypeError, fastavro.schema.SchemaParseException) as exc:
            raise DecodeError(f"schema id {schema_id}: unusable schema: {exc}") from None
