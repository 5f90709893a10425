"""Async Meisa API client on httpx: one method per endpoint, one attempt per call.

Every method raises the error tree (bridge.errors) as classified in bridge.meisa.classify;
retries, pacing and priorities live in bridge.meisa.delivery / retry / governor. The transport
is injectable (tests and benchmarks swap it); by default it follows `MeisaSettings.transport`:
"h1" (the default, bridge.meisa.h1: HTTP/1.1 on the event loop itself, no thread; the least
client CPU per request, see bench/client_transport.py), "pyreqwest" (bridge.meisa.reqwest:
Rust's reqwest on a thread of its own) or "httpx" (httpx's own pool, the fallback, several times
the CPU). Every engine takes the same proxy and CA settings (bridge.meisa.egress).

Requests go straight to the httpx transport as `httpx.Request`s with absolute URLs built once
per path and their headers complete (Host, Content-Length): `httpx.AsyncClient` would parse and
merge the URL twice, build its default headers, run its auth, redirect and cookie machinery on
every call, none of which this client uses (it follows no redirects and keeps no cookies);
skipping it saves about a third of the client's CPU per request (bench/client_transport.py).
On an engine with a direct exchange (bridge.meisa.wire.exchanger: h1 and pyreqwest) even those
are skipped: method, URL text, header pairs and body go to the engine, and the answer comes back
as status, body and a header lookup (bench/README.md, marginal CPU per event).

The API key lives only in the client's default headers: it never appears in a repr, an exception
message or a log line. Transport failures become a TransportError that does not chain the httpx
exception, because that one carries the request (headers included); a response that echoes the
key has it replaced before anything reads the body. The proxy's password is redacted the same
way. A refused TLS certificate is a TlsError (halt), not a TransportError: retrying cannot fix it.
"""

from __future__ import annotations

import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx
import orjson

from bridge import __version__
from bridge.errors import (
    ContactNotFound,
    MappingError,
    SpecFieldError,
    TlsError,
    TransportError,
    WrongBaseUrl,
)
from bridge.meisa.calls import MeisaCall, contact_key
from bridge.meisa.classify import classify
from bridge.meisa.egress import Egress, egress_for
from bridge.meisa.models import BULK_ENROLL_MAX, CallResult, Endpoint, PingInfo, check_body
from bridge.meisa.wire import ENGINE_HEADERS, Answer, PoolTransport, TlsConnectError, exchanger
from bridge.observability.tracing import OUTGOING
from bridge.settings import MeisaSettings

_CONTACT_CACHE_SIZE = 10_000  # ids of recently tagged contacts; an id is 1 upsert saved per tag
_KEEPALIVE = 64  # the pipeline runs up to max_in_flight (64 by default) requests at once
# ... and as many triggers beside them: the pool is never what holds a call back.
_MAX_CONNECTIONS = 256
_URL_CACHE_SIZE = 1_000  # parsed URLs kept: every endpoint, and some tag paths
_SIZED_HEADERS = 1_000  # header sets kept, one per body length (a few hundred bytes to a few KB)


# A transport raises httpx's errors; sockets and timeouts may still surface as they are.
_TRANSPORT_ERRORS = (httpx.TransportError, OSError, TimeoutError)


def default_transport(
    settings: MeisaSettings, egress: Egress | None = None
) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_KEEPALIVE)
    egress = egress or egress_for(settings)
    if settings.transport == "pyreqwest":
        from bridge.meisa.reqwest import ReqwestTransport

        timeout = httpx.Timeout(settings.timeout)
        return ReqwestTransport(limits=limits, timeout=timeout, egress=egress)
    if settings.transport == "h1":
        from bridge.meisa.h1 import H1Transport

        return H1Transport(limits=limits, timeout=httpx.Timeout(settings.timeout), egress=egress)
    return PoolTransport(limits=limits, egress=egress)


def tls_refusal(base_url: str, error: TlsError) -> str:
    """The one line start-up refuses with when Meisa's (or the proxy's) certificate is refused."""
    return (
        f"Meisa's TLS certificate was refused at {base_url}: {error} (a private CA or a "
        "TLS-inspecting proxy: set meisa.ca_file to its PEM bundle; a wrong host name or an "
        "expired certificate: check meisa.base_url and the server)"
    )


def _parse(content: bytes) -> Any:
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:300].decode("utf-8", "replace")


class MeisaClient:
    """`MeisaClient(settings, transport=None)`; use as `async with` or call `aclose()`."""

    def __init__(
        self,
        settings: MeisaSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._wall_clock = wall_clock  # Retry-After HTTP-dates are measured against it
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._base = settings.base_url.rstrip("/") + "/"
        self._urls: dict[str, httpx.URL] = {}  # path -> absolute URL, parsed once
        self._headers = httpx.Headers(
            {
                "Host": httpx.URL(self._base).netloc.decode("ascii"),
                "X-API-Key": settings.api_key.get_secret_value(),
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"meisa-bridge/{__version__}",
            }
        )
        self._sized: dict[int, httpx.Headers] = {}  # by body length: the headers with it
        self._extensions = {"timeout": httpx.Timeout(settings.timeout).as_dict()}
        egress = egress_for(settings)
        key = settings.api_key.get_secret_value()
        self._secrets = tuple(s for s in (key, *egress.secrets) if s)
        self._transport = transport or default_transport(settings, egress)
        self._exchange = exchanger(self._transport)
        # The direct exchange's headers: the engine writes Host and Content-Length itself.
        self._wire_headers = tuple(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in self._headers.raw
            if k.lower() not in ENGINE_HEADERS
        )
        self._url_texts: dict[str, str] = {}  # path -> absolute URL text, for the exchange

    def __repr__(self) -> str:
        return (
            f"MeisaClient(base_url={self.settings.base_url!r}, api_key={self.settings.api_key!r})"
        )

    async def __aenter__(self) -> MeisaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _url(self, path: str, params: Mapping[str, str] | None) -> httpx.URL:
        if params:
            return httpx.URL(self._base + path, params=params)
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:  # tag paths hold contact ids: stay bounded
                self._urls.clear()
            url = self._urls[path] = httpx.URL(self._base + path)
        return url

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> CallResult:
        endpoint = f"{method} /{path}"
        content = _encode(endpoint, json)
        failure, refused = "", False
        try:
            status, body, header = await self._exchange_once(method, path, params, content)
        except TlsConnectError as exc:
            failure, refused = self._redact(f"{endpoint}: {exc}"), True
        except _TRANSPORT_ERRORS as exc:
            failure = self._redact(f"{endpoint}: {type(exc).__name__}: {exc}")
        if failure:
            # Raised outside the handler, so neither __cause__ nor __context__ links the httpx
            # exception: it holds the request, and with it the API key header.
            raise TlsError(failure) if refused else TransportError(failure)
        # Reading a header decodes them all: only the answers that use one pay for it.
        location = header("location") if 300 <= status < 400 else None
        retryable = status >= 500 or status in (408, 429)  # the answers a Retry-After may steer
        retry_after = header("retry-after") if retryable else None
        return classify(
            status,
            _parse(self._redact_bytes(body)),
            endpoint=endpoint,
            retry_after_header=retry_after,
            location=self._redact(location) if location else None,
            now=self._wall_clock(),
            retry_after_cap=self.settings.retry_after_cap_seconds,
        )

    async def _exchange_once(
        self, method: str, path: str, params: Mapping[str, str] | None, content: bytes | None
    ) -> Answer:
        """One request: straight to the engine when the transport has a direct exchange
        (bridge.meisa.wire.exchanger), else as httpx's Request and Response."""
        trace = OUTGOING.get()
        if self._exchange is not None:
            headers = self._wire_headers if not trace else (*self._wire_headers, *trace)
            return await self._exchange(method, self._url_text(path, params), headers, content)
        request = httpx.Request(
            method,
            self._url(path, params),
            headers=self._headers_for(content, trace),
            stream=httpx.ByteStream(content or b""),
            extensions=self._extensions,
        )
        response = await self._transport.handle_async_request(request)
        await response.aread()
        return Answer(response.status_code, response.content, response.headers.get)

    def _url_text(self, path: str, params: Mapping[str, str] | None) -> str:
        if params:
            return str(self._url(path, params))
        text = self._url_texts.get(path)
        if text is None:
            if len(self._url_texts) >= _URL_CACHE_SIZE:  # as `_url`'s cache: stay bounded
                self._url_texts.clear()
            text = self._url_texts[path] = str(self._url(path, None))
        return text

    def _headers_for(
        self, content: bytes | None, trace: tuple[tuple[str, str], ...] | None = None
    ) -> httpx.Headers:
        """The request's headers, Host and Content-Length included: a Request built on a stream
        adds none itself (building it from `content` costs three times as much CPU). `trace`:
        the headers of the attempt's trace (`traceparent`), when tracing is on."""
        headers = self._headers if content is None else self._sized_headers(len(content))
        if trace:
            headers = headers.copy()
            headers.update(trace)
        return headers

    def _sized_headers(self, size: int) -> httpx.Headers:
        headers = self._sized.get(size)  # a Request copies Headers cheaply, builds them dearly
        if headers is None:
            if len(self._sized) >= _SIZED_HEADERS:
                self._sized.clear()
            headers = self._sized[size] = self._headers.copy()
            headers["Content-Length"] = str(size)
        return headers

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def _redact_bytes(self, content: bytes) -> bytes:
        key = self.settings.api_key.get_secret_value().encode()
        return content.replace(key, b"[redacted]") if key and key in content else content

    async def _post(self, endpoint: Endpoint, path: str, body: Mapping[str, Any]) -> CallResult:
        check_body(endpoint, body)
        return await self._request("POST", path, json=body)

    # -- endpoints ---------------------------------------------------------------------------

    async def ping(self) -> PingInfo:
        try:
            result = await self._request("GET", "ping/")
        except ContactNotFound as exc:
            # /ping/ always exists: a 404 means the base URL does not point at the API.
            raise WrongBaseUrl(
                f"GET /ping/ -> 404 at {self.settings.base_url}: check meisa.base_url "
                f"(expected e.g. https://api.meisa.io/api/v1) ({exc})"
            ) from None
        return PingInfo.from_json(result.body if isinstance(result.body, Mapping) else {})

    async def upsert(self, body: Mapping[str, Any]) -> CallResult:
        return await self._post("upsert", "contacts/upsert/", body)

    async def track(self, body: Mapping[str, Any]) -> CallResult:
        return await self._post("track", "events/track/", body)

    async def add_tag(
        self, contact_id: str, *, tag_name: str | None = None, tag_id: str | None = None
    ) -> CallResult:
        return await self._tag("add_tag", contact_id, tag_name, tag_id)

    async def remove_tag(
        self, contact_id: str, *, tag_name: str | None = None, tag_id: str | None = None
    ) -> CallResult:
        return await self._tag("remove_tag", contact_id, tag_name, tag_id)

    async def _tag(
        self, action: str, contact_id: str, tag_name: str | None, tag_id: str | None
    ) -> CallResult:
        body = {k: v for k, v in (("tag_name", tag_name), ("tag_id", tag_id)) if v is not None}
        if not contact_id:
            raise MappingError(f"{action} needs a contact id")
        # One path segment whatever the id holds: no "/", "?" or "#" may reshape the URL.
        segment = urllib.parse.quote(contact_id, safe="")
        return await self._post("tag", f"contacts/{segment}/{action}/", body)

    async def unsubscribed_emails(self) -> frozenset[str]:
        result = await self._request("GET", "contacts/api/unsubscribed-emails/")
        body = result.body if isinstance(result.body, Mapping) else {}
        return frozenset(str(e).strip().lower() for e in body.get("emails") or ())

    async def trigger(self, body: Mapping[str, Any]) -> CallResult:
        return await self._post("trigger", "emails/trigger/", body)

    async def enroll(self, body: Mapping[str, Any]) -> CallResult:
        return await self._post("enroll", "sequences/enroll/", body)

    async def bulk_enroll(
        self,
        sequence_slug: str,
        emails: Sequence[str],
        *,
        override_unsubscribe: bool | None = None,
    ) -> list[CallResult]:
        """One request per chunk of at most 500 emails (the spec's maximum)."""
        results = []
        for start in range(0, len(emails), BULK_ENROLL_MAX):
            body: dict[str, Any] = {
                "sequence_slug": sequence_slug,
                "emails": list(emails[start : start + BULK_ENROLL_MAX]),
            }
            if override_unsubscribe is not None:
                body["override_unsubscribe"] = override_unsubscribe
            results.append(await self._post("bulk_enroll", "sequences/api/bulk-enroll/", body))
        return results

    async def list_sequences(
        self, status: str = "active", search: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"status": status} if search is None else {"status": status, "search": search}
        result = await self._request("GET", "sequences/api/list/", params=params)
        body = result.body if isinstance(result.body, Mapping) else {}
        return list(body.get("results") or [])

    async def contact_enrollments(self, email: str) -> dict[str, Any]:
        result = await self._request(
            "GET", "sequences/api/contact-enrollments/", params={"email": email}
        )
        return dict(result.body) if isinstance(result.body, Mapping) else {}

    # -- MeisaCall dispatch ------------------------------------------------------------------

    def requests_for(self, call: MeisaCall) -> int:
        """HTTP requests `send(call)` will make: a tag call to an unknown contact upserts first."""
        if call.kind in ("add_tag", "remove_tag") and self._cached_id(call) is None:
            return 2
        return 1

    async def send(self, call: MeisaCall) -> CallResult:
        """Make the call once; raise the error tree on any outcome other than ok/skipped."""
        if call.kind == "upsert":
            result = await self.upsert(call.body)
            self._remember_upserted(call, result)
            return result
        if call.kind == "track":
            return await self.track(call.body)
        if call.kind == "trigger":
            return await self.trigger(call.body)
        if call.kind == "enroll":
            return await self.enroll(call.body)
        if call.kind == "bulk_enroll":  # one request: the pipeline sends at most 500 emails
            return await self._post("bulk_enroll", "sequences/api/bulk-enroll/", call.body)
        return await self._send_tag(call)

    async def _send_tag(self, call: MeisaCall) -> CallResult:
        tag_body = {k: v for k, v in call.body.items() if k in ("tag_name", "tag_id")}
        _check_tag_contact(call.body)
        check_body("tag", tag_body)
        contact_id = await self._contact_id(call)
        try:
            return await self._tag(
                call.kind, contact_id, tag_body.get("tag_name"), tag_body.get("tag_id")
            )
        except ContactNotFound:
            # The cached id may be stale (contact deleted / merged): resolve again next attempt.
            self._ids.pop(self._key(call), None)
            raise

    def _key(self, call: MeisaCall) -> str:
        return call.contact_key or contact_key(call.body)

    def _cached_id(self, call: MeisaCall) -> str | None:
        return self._ids.get(self._key(call))

    async def _contact_id(self, call: MeisaCall) -> str:
        key = self._key(call)
        cached = self._ids.get(key)
        if cached is not None:
            self._ids.move_to_end(key)
            return cached
        who = {k: call.body[k] for k in ("email", "external_id") if call.body.get(k)}
        if "email" not in who:
            raise MappingError(f"{call.kind} needs 'email' to find the contact (spec: upsert)")
        result = await self.upsert(who)
        contact_id = result.body.get("id") if isinstance(result.body, Mapping) else None
        if not contact_id:
            raise MappingError(f"{call.kind}: upsert returned no contact id")
        self._remember(key, str(contact_id))
        return str(contact_id)

    def _remember_upserted(self, call: MeisaCall, result: CallResult) -> None:
        # The upsert answers with the contact: a later tag call to it then needs no lookup.
        contact_id = result.body.get("id") if isinstance(result.body, Mapping) else None
        if contact_id:
            self._remember(self._key(call), str(contact_id))

    def _remember(self, key: str, contact_id: str) -> None:
        self._ids[key] = contact_id
        self._ids.move_to_end(key)
        while len(self._ids) > _CONTACT_CACHE_SIZE:
            self._ids.popitem(last=False)


def _encode(endpoint: str, body: Mapping[str, Any] | None) -> bytes | None:
    """The JSON request body; a value JSON cannot carry (bytes, Decimal, ...) is a mapping error."""
    if body is None:
        return None
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise MappingError(f"{endpoint}: the body is not JSON: {exc}") from None


_TAG_CALL_FIELDS = frozenset({"email", "external_id", "tag_name", "tag_id"})


def _check_tag_contact(body: Iterable[str]) -> None:
    for name in body:
        if name not in _TAG_CALL_FIELDS:
            raise SpecFieldError(
                f"add_tag/remove_tag has no field '{name}' (allowed: email, external_id, "
                "tag_name, tag_id)"
            )
