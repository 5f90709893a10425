"""An httpx transport that speaks HTTP/1.1 on the running event loop itself: no thread.

The pyreqwest engine (bridge.meisa.reqwest) runs reqwest on a Tokio thread and wakes the loop
for every answer; this one writes each request straight to a socket of the loop (uvloop under
`run`) and parses the answer with httptools (llhttp, in C) as the bytes arrive
(bridge.meisa.h1conn), keeping connections alive per origin (bridge.meisa.h1pool). It does only
what the client needs, as the pyreqwest engine does: bytes bodies, no redirects, no cookies, no
streaming, no proxy but the configured one, answers read whole (Content-Length, chunked, or up
to the close) and a compressed one decoded by httpx. It sends no Accept-Encoding of its own.
It trusts certifi's CAs, the system's store and the egress's `ca_file`, as the pyreqwest engine
does (the loop's ssl, server name checked). A
proxy is an `http://` one: plain HTTP requests go to it in absolute form, HTTPS through a CONNECT
tunnel, with Basic credentials in Proxy-Authorization either way.

A connection is reused only after a complete answer that did not say `Connection: close`. A
server may close an idle keep-alive connection just as a request is written to it; the request
is then sent once more, on a new connection, but only when the connection came from the pool
and not a byte of the answer arrived. (A server that read the request and closed without
answering would see it twice; a server that closes idle connections does so before reading.)

Timeouts follow the request's httpx timeout, as in the pyreqwest engine: connect and pool as
phases, read as the longest wait for the answer's next bytes, their sum as the whole request's
bound. Errors are httpx's transport errors (ConnectError, ConnectTimeout, PoolTimeout,
ReadTimeout, ReadError, WriteTimeout, RemoteProtocolError for a malformed answer), with the
cause's message and nothing chained; a refused certificate is TlsConnectError.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bridge.meisa.egress import DIRECT, Egress
from bridge.meisa.h1conn import Connection, Header, Reply, Stale, Watch
from bridge.meisa.h1pool import Origin, Pool
from bridge.meisa.wire import Answer, Exchange, TlsConnectError, read_response, request_headers

_CACHE_SIZE = 1_000  # request lines and header blocks kept: every endpoint, some tag paths
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # Content-Length: 0 when they have none
Phases = tuple[float | None, float | None, float | None, float | None]  # pool connect read whole


class H1Transport(httpx.AsyncBaseTransport):
    """`H1Transport(limits=httpx.Limits(...), timeout=httpx.Timeout(...), egress=...)`.

    `timeout` sets the phases of `exchange`; `handle_async_request` follows the request's own
    timeout extension (the transport's when it has none). Must be used on one event loop.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        timeout: httpx.Timeout | None = None,
        egress: Egress = DIRECT,
    ) -> None:
        self._pool = Pool(limits or httpx.Limits())
        self._phases = _phases((timeout or httpx.Timeout(None)).as_dict())
        self._egress = egress
        self._ssl: ssl.SSLContext | None = None  # built on the first https request
        self._watch: Watch | None = None
        self._proxy: tuple[str, int] | None = None
        self._proxy_auth: tuple[str, str] | None = None
        if egress.proxy is not None:
            self._proxy, self._proxy_auth = _proxy(egress)
        self._lines: dict[tuple[str, str], tuple[Origin, bytes]] = {}
        self._blocks: dict[tuple[tuple[str, str], ...], bytes] = {}

    def exchanger(self) -> Exchange:
        return self.exchange

    async def exchange(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], content: bytes | None
    ) -> Answer:
        """One request without httpx's Request and Response, bounded by the transport's own
        timeouts (the client gives every request the same)."""
        reply = await self._send(method, url, headers, content, self._phases)
        if reply.encoded:  # rare: the client asks for no compression; httpx decodes it
            response = read_response(
                httpx.Request(method, url), reply.status, reply.headers, reply.body, encoded=True
            )
            return Answer(reply.status, await response.aread(), Header(reply.headers))
        return Answer(reply.status, reply.body, Header(reply.headers))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        given = request.extensions.get("timeout")
        phases = _phases(given) if given else self._phases
        content = request.read()
        reply = await self._send(
            request.method, str(request.url), request_headers(request), content, phases
        )
        return read_response(
            request, reply.status, reply.headers, reply.body, encoded=reply.encoded
        )

    async def _send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        content: bytes | None,
        phases: Phases,
    ) -> Reply:
        origin, line = self._lines.get((method, url)) or self._line(method, url)
        payload = line + self._block(headers)
        if content:
            payload += b"Content-Length: %d\r\n\r\n%b" % (len(content), content)
        elif method in _BODY_METHODS:
            payload += b"Content-Length: 0\r\n\r\n"
        else:
            payload += b"\r\n"
        deadline = None if phases[3] is None else self._loop().time() + phases[3]
        head_only = method == "HEAD"
        pool = self._pool
        for attempt in range(2):  # a second time only after the keep-alive race, on a new one
            connection = pool.take(origin) if attempt == 0 else None
            reused = connection is not None
            if connection is None:
                connection, reused = await self._new(origin, phases, deadline)
            try:
                reply = await connection.send(
                    payload, read=phases[2], deadline=deadline, head_only=head_only
                )
            except Stale:
                pool.drop(connection)
                if reused:
                    continue
                break
            except BaseException:  # a timeout, an error, a cancelled caller: mid-answer
                pool.drop(connection)
                raise
            finally:
                connection.settle()
            pool.release(origin, connection)
            return reply
        raise httpx.ReadError("the server closed the connection without answering")

    def _loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, and the watch over timeouts made on it at the first request."""
        if self._watch is None:
            self._watch = Watch(asyncio.get_running_loop())
        return self._watch.loop

    async def _new(
        self, origin: Origin, phases: Phases, deadline: float | None
    ) -> tuple[Connection, bool]:
        """A new connection once the pool has room for it (or an idle one that came back
        meanwhile), and whether it was reused."""
        connect = phases[1]
        if deadline is not None:  # the whole request's bound covers waiting and connecting
            left = max(deadline - self._loop().time(), 0.0)
            connect = left if connect is None else min(connect, left)
        try:
            return await self._pool.open(origin, self._connect, (phases[0], connect))
        except TimeoutError:
            raise httpx.PoolTimeout("no connection came free in time") from None

    async def _connect(self, origin: Origin, seconds: float | None) -> Connection:
        failure: httpx.TransportError | None = None
        try:
            async with asyncio.timeout(seconds):
                return await self._open(origin, seconds)
        except TimeoutError:
            failure = httpx.ConnectTimeout(f"connecting to {_netloc(origin)} timed out")
        except ssl.SSLCertVerificationError as exc:
            failure = TlsConnectError(f"{type(exc).__name__}: {exc}")
        except OSError as exc:  # ssl.SSLError among them
            failure = httpx.ConnectError(f"{type(exc).__name__}: {exc}")
        raise failure  # outside the handler: nothing chained

    async def _open(self, origin: Origin, seconds: float | None) -> Connection:
        scheme, host, port = origin
        loop = self._loop()
        assert self._watch is not None  # made by _loop()
        connection = Connection(loop, self._watch)
        context = self._context() if scheme == "https" else None
        if self._proxy is None:
            name = host if context is not None else None
            await loop.create_connection(
                lambda: connection, host, port, ssl=context, server_hostname=name
            )
            return connection
        await loop.create_connection(lambda: connection, *self._proxy)
        if context is not None:
            try:
                await self._tunnel(connection, host, port, context, seconds)
            except BaseException:
                connection.close()
                raise
        return connection

    async def _tunnel(
        self,
        connection: Connection,
        host: str,
        port: int,
        context: ssl.SSLContext,
        seconds: float | None,
    ) -> None:
        """CONNECT through the proxy, then TLS with the origin inside the tunnel."""
        target = f"{host}:{port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{self._proxy_header()}\r\n"
        try:
            reply = await connection.send(
                head.encode("latin-1"), read=None, deadline=None, head_only=True
            )
        except (Stale, httpx.TransportError) as exc:
            raise httpx.ProxyError(f"CONNECT {target}: the proxy did not answer ({exc})") from None
        finally:
            connection.settle()
        if not 200 <= reply.status < 300:
            raise httpx.ProxyError(f"CONNECT {target}: the proxy answered {reply.status}")
        assert connection.transport is not None
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(
            connection.transport, connection, context, server_hostname=host
        )
        assert transport is not None  # start_tls returns None only on a server side
        connection.restart(transport)

    def _proxy_header(self) -> str:
        if self._proxy_auth is None:
            return ""
        token = base64.b64encode(":".join(self._proxy_auth).encode()).decode("ascii")
        return f"Proxy-Authorization: Basic {token}\r\n"

    def _context(self) -> ssl.SSLContext:
        """certifi's CAs and `ca_file`, and the system's store as pyreqwest trusts it (OpenSSL's
        default paths; SSL_CERT_FILE and SSL_CERT_DIR override them)."""
        if self._ssl is None:
            context = self._egress.ssl_context()
            context.set_default_verify_paths()
            self._ssl = context
        return self._ssl

    def _line(self, method: str, url: str) -> tuple[Origin, bytes]:
        """The origin and the request's first lines (request line, Host) for `url`, kept."""
        parts = urllib.parse.urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in _DEFAULT_PORTS or not host:
            raise httpx.UnsupportedProtocol(f"not an http:// or https:// URL: {url!r}")
        origin = (scheme, host, parts.port or _DEFAULT_PORTS[scheme])
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        proxy = ""
        if self._proxy is not None and scheme == "http":  # absolute form, to the proxy
            target = f"http://{parts.netloc.rpartition('@')[2]}{target}"
            proxy = self._proxy_header()
        head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
        if len(self._lines) >= _CACHE_SIZE:  # tag paths hold contact ids: stay bounded
            self._lines.clear()
        kept = self._lines[(method, url)] = (origin, (head + proxy).encode("latin-1"))
        return kept

    def _block(self, headers: Sequence[tuple[str, str]]) -> bytes:
        """The request's own headers as they go out, kept per set (the client has few)."""
        key = headers if isinstance(headers, tuple) else tuple(headers)
        block = self._blocks.get(key)
        if block is None:
            text = "".join(f"{name}: {value}\r\n" for name, value in key)
            if len(self._blocks) >= _CACHE_SIZE:  # traced requests differ by traceparent
                self._blocks.clear()
            block = self._blocks[key] = text.encode("latin-1")
        return block

    async def aclose(self) -> None:
        self._pool.close()
        if self._watch is not None:
            self._watch.close()


def _phases(timeout: Mapping[str, Any]) -> Phases:
    pool, connect, read = timeout.get("pool"), timeout.get("connect"), timeout.get("read")
    given = [value for value in timeout.values() if value is not None]
    return pool, connect, read, (sum(given) if given else None)


def _proxy(egress: Egress) -> tuple[tuple[str, int], tuple[str, str] | None]:
    parts = urllib.parse.urlsplit(egress.proxy or "")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"meisa.transport h1 reaches a proxy over http:// only, not {parts.scheme}://: "
            "use the pyreqwest or httpx engine for this proxy"
        )
    return (parts.hostname, parts.port or 80), egress.proxy_auth


def _netloc(origin: Origin) -> str:
    return f"{origin[1]}:{origin[2]}"
