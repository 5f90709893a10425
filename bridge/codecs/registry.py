"""Schemas by id from a Confluent-compatible registry, through `confluent_kafka.schema_registry`.

The client (`SchemaRegistryClient`) brings the HTTP side: several URLs, basic auth, a bearer
token, a private CA, its own retries of transient failures. This module adds what decoding needs:
every schema parsed once (fastavro for Avro, a descriptor pool for Protobuf, the JSON document
for JSON Schema) and a cache that decoding reads without ever waiting on the network while an
event loop runs:

- `get(id)` answers from the cache. On a miss it fetches at once when the calling thread runs no
  event loop (`plan`, `test`, `replay`'s read phase, `dlq show`); on a thread that runs one it
  raises SchemaPending instead, or the TransportError of the last failed fetch of that id.
- `prefetch(values)` fetches, on a worker thread, every id the values name that is not cached
  yet. The live consumer awaits it once per batch before decoding the batch, and `dlq redrive`
  before its records, so their decoding finds every schema in the cache.

A registry that cannot be reached (or refuses the credentials) is a TransportError: retried,
never dead-lettered. An id the registry does not know is a DecodeError (poison), remembered.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from bridge.codecs.protobuf import proto_file
from bridge.errors import (
    ConfigError,
    DecodeError,
    RetryableError,
    SchemaPending,
    TransportError,
)
from bridge.settings import CodecSettings

Kind = Literal["AVRO", "PROTOBUF", "JSON"]
CONFLUENT_MAGIC = 0
NOT_FOUND_CODES = (40403, 40401, 40402)  # schema, subject, version not found
MAX_REFERENCE_DEPTH = 32  # a reference chain longer than this is a cycle
CLIENT_RETRIES = 2  # the client retries a blip itself; a registry that stays away is reported
CLIENT_RETRY_WAIT_MS = 500  # first back-off step of those retries (full jitter, doubling)


@dataclass(frozen=True, slots=True)
class RegistrySchema:
    """One registry schema, parsed: `parsed` is a fastavro schema (AVRO), a ProtoFile (PROTOBUF)
    or the JSON Schema document (JSON); `name` is the Avro record or JSON Schema title."""

    schema_id: int
    kind: Kind
    parsed: Any
    name: str | None


def client_conf(settings: CodecSettings) -> dict[str, Any]:
    """The confluent-kafka client configuration for these settings (holds the secrets)."""
    assert settings.schema_registry_url
    conf: dict[str, Any] = {
        "url": settings.schema_registry_url,
        "timeout": settings.schema_registry_timeout,
        "max.retries": CLIENT_RETRIES,
        "retries.wait.ms": CLIENT_RETRY_WAIT_MS,
    }
    if settings.schema_registry_user:
        password = settings.schema_registry_password.get_secret_value()
        conf["basic.auth.user.info"] = f"{settings.schema_registry_user}:{password}"
    if settings.schema_registry_token:
        conf["bearer.auth.credentials.source"] = "STATIC_TOKEN"
        conf["bearer.auth.token"] = settings.schema_registry_token.get_secret_value()
        conf["bearer.auth.logical.cluster"] = settings.schema_registry_logical_cluster or ""
    if settings.schema_registry_ca_file:
        conf["ssl.ca.location"] = settings.schema_registry_ca_file
    return conf


def framed_id(value: bytes | None) -> int | None:
    """The schema id of a value in the Confluent wire format, else None."""
    if value is None or len(value) < 5 or value[0] != CONFLUENT_MAGIC:
        return None
    return int.from_bytes(value[1:5], "big")


class SchemaRegistry:
    """The registry's schemas by id, parsed once; `client` is a SchemaRegistryClient."""

    def __init__(self, client: Any, *, where: str = "") -> None:
        self._client = client
        self._where = where
        self._cache: dict[int, RegistrySchema | DecodeError] = {}
        self._failed: dict[int, RetryableError] = {}
        self._lock = threading.Lock()
        # Commands build a decoder and drop it: its connections close with it, not at random.
        self.close = weakref.finalize(self, _close, client)

    @classmethod
    def from_settings(cls, settings: CodecSettings) -> SchemaRegistry:
        try:
            client = SchemaRegistryClient(client_conf(settings))
        except (ValueError, TypeError, OSError) as exc:  # a bad URL or an unreadable CA file
            raise ConfigError(str(exc), field="codec.schema_registry_url") from None
        return cls(client, where=_hosts(settings.schema_registry_url or ""))

    def __repr__(self) -> str:
        return f"SchemaRegistry({self._where})"  # never the credentials

    def get(self, schema_id: int) -> RegistrySchema:
        found = self._cache.get(schema_id)
        if found is None:
            if _on_event_loop():
                failed = self._failed.get(schema_id)
                if failed is not None:
                    raise type(failed)(str(failed))
                raise SchemaPending(f"schema id {schema_id} is not fetched yet")
            self.load([schema_id])
            found = self._cache.get(schema_id)
            if found is None:
                failed = self._failed[schema_id]
                raise type(failed)(str(failed))
        if isinstance(found, DecodeError):
            raise DecodeError(str(found))
        return found

    def missing(self, values: Iterable[bytes | None]) -> list[int]:
        """The ids these values name that are not cached yet, each once."""
        cache = self._cache
        ids = {i for i in map(framed_id, values) if i is not None and i not in cache}
        return sorted(ids)

    async def prefetch(self, values: Iterable[bytes | None]) -> None:
        """Fetch the ids the values name off the event loop; failures are kept for `get`."""
        ids = self.missing(values)
        if ids:
            await asyncio.to_thread(self.load, ids)

    def load(self, ids: Iterable[int]) -> None:
        """Fetch and parse these ids (blocking: never call it on the event loop)."""
        away: RetryableError | None = None  # once the registry is away, the rest wait too
        with self._lock:
            for schema_id in ids:
                if schema_id in self._cache:
                    continue
                if away is not None:
                    self._failed[schema_id] = away
                    continue
                try:
                    self._cache[schema_id] = self._fetch(schema_id)
                    self._failed.pop(schema_id, None)
                except DecodeError as exc:
                    self._cache[schema_id] = exc
                except RetryableError as exc:
                    self._failed[schema_id] = away = exc

    def _fetch(self, schema_id: int) -> RegistrySchema:
        schema = self._call(lambda: self._client.get_schema(schema_id, fmt="serialized"), schema_id)
        kind: str = schema.schema_type or "AVRO"
        try:
            if kind == "AVRO":
                return self._avro(schema_id, schema)
            if kind == "PROTOBUF":
                deps = self._proto_references(schema.references, 0)
                return RegistrySchema(
                    schema_id, "PROTOBUF", proto_file(schema.schema_str, deps), None
                )
            if kind == "JSON":
                document = json.loads(schema.schema_str)
                title = document.get("title") if isinstance(document, dict) else None
                return RegistrySchema(schema_id, "JSON", document, _text_or_none(title))
        except (ValueError, KeyError, TypeError, fastavro.schema.SchemaParseException) as exc:
            raise DecodeError(f"schema id {schema_id}: unusable {kind} schema: {exc}") from None
        raise DecodeError(f"schema id {schema_id} has schema type {kind!r}, which is not read")

    def _avro(self, schema_id: int, schema: Any) -> RegistrySchema:
        named: dict[str, Any] = {}
        self._avro_references(schema.references, named, 0)
        parsed = fastavro.parse_schema(json.loads(schema.schema_str), named_schemas=named)
        name = parsed.get("name") if isinstance(parsed, dict) else None
        return RegistrySchema(schema_id, "AVRO", parsed, _text_or_none(name))

    def _avro_references(self, refs: Any, named: dict[str, Any], depth: int) -> None:
        for ref in refs or ():
            found = self._reference(ref, depth, fmt=None)
            self._avro_references(found.references, named, depth + 1)
            fastavro.parse_schema(json.loads(found.schema_str), named_schemas=named)

    def _proto_references(self, refs: Any, depth: int) -> dict[str, str]:
        """Import path -> schema text (or serialized descriptor) of every referenced file."""
        files: dict[str, str] = {}
        for ref in refs or ():
            found = self._reference(ref, depth, fmt="serialized")
            files.update(self._proto_references(found.references, depth + 1))
            files[ref.name] = found.schema_str
        return files

    def _reference(self, ref: Any, depth: int, *, fmt: str | None) -> Any:
        if depth >= MAX_REFERENCE_DEPTH:
            raise DecodeError(f"schema references nest deeper than {MAX_REFERENCE_DEPTH}")
        what = f"reference {ref.subject} version {ref.version}"
        registered = self._call(
            lambda: self._client.get_version(ref.subject, ref.version, True, fmt), what
        )
        return registered.schema

    def _call(self, fetch: Callable[[], Any], what: int | str) -> Any:
        name = f"schema id {what}" if isinstance(what, int) else f"schema {what}"
        try:
            return fetch()
        except SchemaRegistryError as exc:
            status, code = exc.http_status_code, exc.error_code
            if status == 404 or code in NOT_FOUND_CODES:
                raise DecodeError(f"{name} is not in the schema registry") from None
            raise TransportError(f"schema registry answered {status} for {name}") from None
        except Exception as exc:  # httpx's transport errors, TLS errors: the registry is away
            reason = str(exc) or type(exc).__name__
            raise TransportError(f"schema registry unreachable ({self._where}): {reason}") from None


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if close is not None:
        close()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _hosts(urls: str) -> str:
    """The registry URLs without any credentials, for messages and repr."""
    out = []
    for url in urls.split(","):
        scheme, _, rest = url.strip().partition("://")
        host = rest.split("/", 1)[0].rpartition("@")[2]
        out.append(f"{scheme}://{host}" if rest else url.strip())
    return ", ".join(out)
