"""An httpx transport on pyreqwest: httpx's API, Rust reqwest's HTTP/1.1 engine
(`meisa.transport: pyreqwest`; the default is the h1 engine, bridge.meisa.h1, which does the
same work on the event loop without a thread for less CPU per request).

The client builds `httpx.Request`s and reads `httpx.Response`s; this transport hands each request
to one `pyreqwest` client (reqwest and hyper on a Tokio runtime in a thread of their own) and
answers with the whole body read. It does only what the client needs: bytes bodies, no
redirects, no cookies, no streaming, no proxy but the configured one (reqwest would read
HTTP_PROXY; httpx's pool does not), no decompression by the engine (a compressed answer is
decoded by httpx). It trusts certifi's CAs, as httpx does, and the egress's `ca_file` beside
them. pyreqwest ships an httpx transport of its own; it streams every answer through an exit
stack and a chunk iterator, which costs more CPU per answer than reading the body in one go, as
this one does (bench/client_transport.py measures the engines).

Timeouts follow the request's httpx timeout (the client sets one for every request): connect,
read and pool as the client's phase timeouts, their sum as the whole request's bound. pyreqwest's
errors become httpx's (`httpx.ConnectError`, `httpx.ReadTimeout` ...), as the transport contract
says, with pyreqwest's message but without chaining the original. A refused certificate becomes
TlsConnectError: pyreqwest has no type for it, only rustls's message among the connect error's
causes ("invalid peer certificate: ..."), so that message is what tells it apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import certifi
import httpx
from pyreqwest import exceptions as reqwest_errors
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.proxy import ProxyBuilder

from bridge.meisa.egress import DIRECT, Egress
from bridge.meisa.wire import (
    Answer,
    Exchange,
    TlsConnectError,
    read_response,
    request_headers,
)

# Most specific first: the first match wins.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (reqwest_errors.ConnectTimeoutError, httpx.ConnectTimeout),
    (reqwest_errors.ReadTimeoutError, httpx.ReadTimeout),
    (reqwest_errors.WriteTimeoutError, httpx.WriteTimeout),
    (reqwest_errors.PoolTimeoutError, httpx.PoolTimeout),
    (reqwest_errors.RequestTimeoutError, httpx.ReadTimeout),
    (reqwest_errors.ConnectError, httpx.ConnectError),
    (reqwest_errors.ReadError, httpx.ReadError),
    (reqwest_errors.WriteError, httpx.WriteError),
    (reqwest_errors.BuilderError, httpx.UnsupportedProtocol),
)


_CERTIFICATE_REFUSED = "invalid peer certificate"  # rustls's words for every verification failure


def _error(exc: Exception) -> httpx.TransportError:
    """The httpx error for a pyreqwest (or socket) failure."""
    refused = _refused_certificate(exc)
    if refused is not None:
        return TlsConnectError(refused)
    text = f"{type(exc).__name__}: {_describe(exc)}"
    for theirs, ours in _ERRORS:
        if isinstance(exc, theirs):
            return ours(text)
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(text)
    return httpx.NetworkError(text)


def _describe(exc: Exception) -> str:
    """pyreqwest's message and its causes, innermost last ("connection error: ...: tcp connect
    error: Connection refused"), instead of the repr of its details."""
    details = getattr(exc, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    if not causes:
        return str(exc)
    head = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
    return ": ".join([head, *(str(cause.get("message", "")) for cause in causes)])


def _refused_certificate(exc: Exception) -> str | None:
    """rustls's reason when the error is a refused certificate, e.g. "invalid peer certificate:
    UnknownIssuer"."""
    if not isinstance(exc, reqwest_errors.ConnectError):
        return None
    for cause in exc.details.get("causes") or ():
        message = cause.get("message", "")
        if message.startswith(_CERTIFICATE_REFUSED):
            return message
    return None


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


class ReqwestTransport(httpx.AsyncBaseTransport):
    """`ReqwestTransport(limits=httpx.Limits(...), timeout=httpx.Timeout(...), egress=...)`.

    The pyreqwest client is built on the first request. `timeout` sets the phase timeouts
    (connect, read, pool); a request's own timeout extension bounds the whole request.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        timeout: httpx.Timeout | None = None,
        egress: Egress = DIRECT,
    ) -> None:
        self._egress = egress
        self._limits = limits or httpx.Limits()
        self._phases = timeout or httpx.Timeout(None)
        self._client: Client | None = None
        self._totals: dict[tuple[Any, ...], timedelta | None] = {}
        self._whole = self._total({"timeout": self._phases.as_dict()})

    def _open(self) -> Client:
        limits, phases = self._limits, self._phases
        builder = (
            ClientBuilder()
            .max_connections(limits.max_connections)
            .pool_idle_timeout(_seconds(limits.keepalive_expiry))
            .follow_redirects(False)
            .gzip(False)  # no Accept-Encoding added, no decoding: httpx decodes what comes
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .http1_only()
            .add_root_certificate_pem(_certifi_pem())  # the CAs httpx trusts too
        )
        builder = self._with_egress(builder)
        if limits.max_keepalive_connections is not None:
            builder = builder.pool_max_idle_per_host(limits.max_keepalive_connections)
        if phases.connect is not None:
            builder = builder.connect_timeout(timedelta(seconds=phases.connect))
        if phases.read is not None:
            builder = builder.read_timeout(timedelta(seconds=phases.read))
        if phases.pool is not None:
            builder = builder.pool_timeout(timedelta(seconds=phases.pool))
        self._client = builder.build()
        return self._client

    def _with_egress(self, builder: ClientBuilder) -> ClientBuilder:
        egress = self._egress
        extra = egress.extra_ca_pem()
        if extra is not None:
            builder = builder.add_root_certificate_pem(extra)
        if egress.proxy is None:
            return builder.no_proxy()  # HTTP(S)_PROXY in the environment is not used either
        proxy = ProxyBuilder.all(egress.proxy)
        if egress.proxy_auth is not None:
            proxy = proxy.basic_auth(*egress.proxy_auth)
        return builder.proxy(proxy)  # the only proxy: reqwest then reads none from the environment

    def _total(self, extensions: Mapping[str, Any]) -> timedelta | None:
        """The whole request's bound: the sum of the request's phase timeouts."""
        given = extensions.get("timeout") or {}
        key = tuple(given.values())
        if key not in self._totals:
            parts = [value for value in key if value is not None]
            self._totals[key] = timedelta(seconds=sum(parts)) if parts else None
        return self._totals[key]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        client = self._client or self._open()
        headers = request_headers(request)
        failure: httpx.TransportError | None = None
        try:
            builder = client.request(request.method, str(request.url)).headers(headers)
            content = request.read()
            if content:
                builder = builder.body_bytes(content)
            total = self._total(request.extensions)
            if total is not None:
                builder = builder.timeout(total)
            answer = await builder.build().send()
            body = bytes(await answer.bytes())
        except (reqwest_errors.PyreqwestError, OSError, TimeoutError) as exc:
            failure = _error(exc)
        if failure is not None:  # raised outside the handler: no chained pyreqwest exception
            raise failure
        encoded = answer.get_header("content-encoding") is not None
        headers_in = list(answer.headers.items())
        return read_response(request, answer.status, headers_in, body, encoded=encoded)

    def exchanger(self) -> Exchange:
        return self.exchange

    async def exchange(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], content: bytes | None
    ) -> Answer:
        """One request without httpx's Request and Response: what `handle_async_request` does,
        bounded by the transport's own timeouts (the client gives every request the same)."""
        client = self._client or self._open()
        failure: httpx.TransportError | None = None
        try:
            builder = client.request(method, url).headers(headers)
            if content:
                builder = builder.body_bytes(content)
            if self._whole is not None:
                builder = builder.timeout(self._whole)
            answer = await builder.build().send()
            body = bytes(await answer.bytes())
        except (reqwest_errors.PyreqwestError, OSError, TimeoutError) as exc:
            failure = _error(exc)
        if failure is not None:  # raised outside the handler: no chained pyreqwest exception
            raise failure
        if answer.get_header("content-encoding") is not None:  # rare: httpx decodes it
            request = httpx.Request(method, url)
            response = read_response(
                request, answer.status, list(answer.headers.items()), body, encoded=True
            )
            body = await response.aread()
        return Answer(answer.status, body, answer.get_header)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _certifi_pem() -> bytes:
    with open(certifi.where(), "rb") as bundle:
        return bundle.read()
