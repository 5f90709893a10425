"""What the engines share: the request's headers as text pairs and the answer as an
httpx.Response already read (for the h1 engine, the default, bridge/meisa/h1.py, and the
pyreqwest one, bridge/meisa/reqwest.py), httpx's own pool with the egress settings
(`PoolTransport`, the fallback), and the one transport error that is not transient on any (a
refused TLS certificate). An engine may also offer the client a direct exchange (`exchanger`),
which skips httpx's Request and Response."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import httpx

from bridge.meisa.egress import DIRECT, Egress

# Headers the engines write themselves from the URL and the body.
ENGINE_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})


class Answer(NamedTuple):
    """An answer read whole: status, body (decoded if it was compressed) and a header lookup by
    case-insensitive name."""

    status: int
    body: bytes
    header: Callable[[str], str | None]


# `exchange(method, url, headers, content)`: one request, headers without Host and
# Content-Length (the engine writes them), raising httpx's transport errors like a transport.
Exchange = Callable[[str, str, Sequence[tuple[str, str]], bytes | None], Awaitable[Answer]]


@runtime_checkable
class Exchanging(Protocol):
    """A transport with a direct way to make a request (or None when it has none)."""

    def exchanger(self) -> Exchange | None: ...


def exchanger(transport: httpx.AsyncBaseTransport) -> Exchange | None:
    """The transport's direct way to make a request without building httpx's Request and
    Response (a fifth of the client's CPU per request), or None: the client then goes through
    `handle_async_request`, as it does on any other transport (httpx's pool, a test's)."""
    return transport.exchanger() if isinstance(transport, Exchanging) else None


def request_headers(request: httpx.Request) -> list[tuple[str, str]]:
    """The request's headers as (name, value) text, without those the engine writes."""
    return [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in request.headers.raw
        if k.lower() not in ENGINE_HEADERS
    ]


def read_response(
    request: httpx.Request,
    status: int,
    headers: Sequence[tuple[bytes, bytes]] | Sequence[tuple[str, str]],
    body: bytes,
    *,
    encoded: bool,
) -> httpx.Response:
    """The answer with its whole body. Unless `encoded` (a Content-Encoding to undo), the body is
    handed over as read: httpx's own read would join its one chunk through the decoder machinery,
    about 12 us a response (bench/client_transport.py); should httpx ever keep it elsewhere,
    `aread()` reads the stream as usual."""
    response = httpx.Response(
        status, headers=headers, stream=httpx.ByteStream(body), request=request
    )
    if not encoded:
        response._content = body
    return response


class TlsConnectError(httpx.ConnectError):
    """The TLS handshake refused the server's (or the proxy's) certificate: an unknown issuer, a
    wrong host name, an expired certificate. Retrying does not help, unlike other connect errors;
    the client raises bridge.errors.TlsError for it."""


def certificate_refused(exc: BaseException) -> bool:
    """Whether an exception or one it was raised from is a certificate verification failure."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl: a short chain, bounded all the same
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError | TlsConnectError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class PoolTransport(httpx.AsyncHTTPTransport):
    """httpx's own pool (`meisa.transport: httpx`) with the egress settings, raising
    TlsConnectError for a refused certificate like the pyreqwest engine."""

    def __init__(self, *, limits: httpx.Limits, egress: Egress = DIRECT) -> None:
        proxy = None
        if egress.proxy is not None:
            proxy = httpx.Proxy(egress.proxy, auth=egress.proxy_auth)
        super().__init__(limits=limits, verify=egress.ssl_context(), proxy=proxy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        failure: TlsConnectError | None = None
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectError as exc:
            if not certificate_refused(exc):
                raise
            failure = TlsConnectError(str(exc))
        raise failure  # outside the handler: nothing chained
