"""One HTTP/1.1 connection of the h1 engine (bridge.meisa.h1): an asyncio protocol that writes a
request whole and parses the answer with httptools (llhttp, in C) as the loop hands it bytes.

A connection carries one request at a time. `send` writes it and returns a future that resolves
with the answer once llhttp says the message is complete, or, for an answer without
Content-Length or chunked framing, once the server closes the connection. The read timeout
(since the last bytes came, or since the request was written) and the whole request's deadline
are checked by the transport's `Watch`.

A connection the server closed before any byte of the answer arrived fails with `Stale`, which
the pool reads as the keep-alive race (bridge.meisa.h1 decides whether to send again).
"""

from __future__ import annotations

import asyncio

import httptools
import httpx

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONTENT_ENCODING = b"content-encoding"
_NO_BODY = frozenset({204, 304})


class Stale(Exception):
    """The server closed the connection before a byte of the answer arrived."""


class Header:
    """The answer's header lookup by case-insensitive name (the first value)."""

    __slots__ = ("raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw

    def __call__(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.raw:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


class Reply:
    """An answer as read: status, raw headers, body chunks, whether it came compressed."""

    __slots__ = ("chunks", "encoded", "headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.encoded = False

    @property
    def body(self) -> bytes:
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Watch:
    """The timeouts of the requests in flight, checked by one timer every `TICK` seconds rather
    than a timer per request: uvloop makes a libuv timer of each, about a tenth of the engine's
    CPU per request (bench/client_transport.py). A timeout fires up to a tick late."""

    TICK = 0.05  # seconds; timeouts are seconds long, a tick is small beside them

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._active: set[Connection] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, connection: Connection) -> None:
        self._active.add(connection)
        if self._handle is None:
            self._handle = self.loop.call_later(self.TICK, self._tick)

    def discard(self, connection: Connection) -> None:
        self._active.discard(connection)

    def _tick(self) -> None:
        now = self.loop.time()
        for connection in list(self._active):
            connection.check(now)
        self._handle = self.loop.call_later(self.TICK, self._tick) if self._active else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class Connection(asyncio.Protocol):
    """`Connection(loop, watch)`, made by `loop.create_connection`; `send` once per request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, watch: Watch) -> None:
        self.loop = loop
        self._watch = watch
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        self._reply = Reply()
        self._received = False  # any byte of the current answer
        self._head_only = False  # HEAD, CONNECT: the answer ends with its headers
        self._framed = False  # Content-Length or chunked: else the body ends at close
        self._read: float | None = None
        self._deadline: float | None = None
        self._last = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked for: the connection cannot be trusted
            self.close()
            return
        self._received = True
        if self._read is not None:
            self._last = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed answer: {exc}"))
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._waiter.done():
            return
        if not self._received:
            self._fail(Stale())
        elif self._reply.status and not self._framed and not self._head_only:
            self._finish(keep=False)  # a body that ends at close, now whole
        else:
            reason = f": {exc}" if exc else ""
            self._fail(httpx.ReadError(f"the server closed the connection mid-answer{reason}"))

    # -- httptools callbacks (an exception raised here would become HttpParserCallbackError) -

    def on_header(self, name: bytes, value: bytes) -> None:
        self._reply.headers.append((name, value))
        size = len(name)  # the length first: most headers are none of these
        if size in (14, 17):
            if name.lower() in (_CONTENT_LENGTH, _TRANSFER_ENCODING):
                self._framed = True
        elif size == 16 and name.lower() == _CONTENT_ENCODING:
            self._reply.encoded = True

    def on_headers_complete(self) -> None:
        status = self._reply.status = self._parser.get_status_code()
        if status in _NO_BODY:
            self._framed = True
        if self._head_only:
            self._finish(keep=False)

    def on_body(self, body: bytes) -> None:
        self._reply.chunks.append(body)

    def on_message_complete(self) -> None:
        if not self._head_only:
            self._finish(keep=self._parser.should_keep_alive())

    # -- the request -------------------------------------------------------------------------

    def send(
        self,
        payload: bytes,
        *,
        read: float | None,
        deadline: float | None,
        head_only: bool = False,
    ) -> asyncio.Future[Reply]:
        """Write `payload` (a request, head and body); the answer comes in the future returned.
        `read`: seconds without a byte before ReadTimeout; `deadline`: the loop time the request
        must end by. `settle()` once the future is done (or given up on)."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise Stale()
        self.reusable = False
        self._reply = Reply()
        self._received = self._framed = False
        self._head_only = head_only
        waiter: asyncio.Future[Reply] = self.loop.create_future()
        self._waiter = waiter
        transport.write(payload)
        self._read, self._deadline = read, deadline
        if read is not None or deadline is not None:
            self._last = self.loop.time()
            self._watch.add(self)
        return waiter

    def settle(self) -> None:
        self._waiter = None
        self._watch.discard(self)

    def check(self, now: float) -> None:
        """The watch's tick: ReadTimeout (WriteTimeout while the request is still being written)
        once no byte came for `read` seconds, or the deadline passed."""
        read, deadline = self._read, self._deadline
        late = (read is not None and now >= self._last + read) or (
            deadline is not None and now >= deadline
        )
        if late:
            paused = self.transport is not None and self.transport.get_write_buffer_size() > 0
            error = httpx.WriteTimeout if paused else httpx.ReadTimeout
            self._fail(error("timed out waiting for the answer"))

    def _finish(self, *, keep: bool) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self.reusable = keep and not self.closed
            waiter.set_result(self._reply)

    def _fail(self, error: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def restart(self, transport: asyncio.Transport) -> None:
        """After a CONNECT tunnel: the TLS transport on top, and a parser for the new stream."""
        self.transport = transport
        self._parser = httptools.HttpResponseParser(self)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
