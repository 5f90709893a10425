"""One HTTP/1.1 connection of the h1 engine (bridge.meisa.h1): an asyncio protocol that writes a
request whole and parses the answer with httptools (llhttp, in C) as the loop hands it bytes.

A connection carries one request at a time. `exchange` resolves with the answer once llhttp
says the message is complete, or, for an answer without Content-Length or chunked framing, once
the server closes the connection. One timer per request bounds it: the read timeout since the
last bytes came (or since the request was written), and the whole request's deadline.

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


class Connection(asyncio.Protocol):
    """`Connection(loop)`, made by `loop.create_connection`; `exchange` once per request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
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
        self._timer: asyncio.TimerHandle | None = None
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

    async def exchange(
        self,
        payload: bytes,
        *,
        read: float | None,
        deadline: float | None,
        head_only: bool = False,
    ) -> Reply:
        """Write `payload` (a request, head and body) and wait for the answer. `read`: seconds
        without a byte before ReadTimeout; `deadline`: the loop time the request must end by."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise Stale()
        self._reset(head_only)
        waiter: asyncio.Future[Reply] = self.loop.create_future()
        self._waiter = waiter
        transport.write(payload)
        self._arm(read, deadline)
        try:
            return await waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _reset(self, head_only: bool) -> None:
        self.reusable = False
        self._reply = Reply()
        self._received = False
        self._framed = False
        self._head_only = head_only

    def _arm(self, read: float | None, deadline: float | None) -> None:
        self._read, self._deadline = read, deadline
        if read is None and deadline is None:
            return
        now = self._last = self.loop.time()
        self._timer = self.loop.call_at(self._limit(now), self._expire)

    def _limit(self, last: float) -> float:
        read, deadline = self._read, self._deadline
        if read is None:
            return deadline  # type: ignore[return-value]  # one of the two is set
        return last + read if deadline is None else min(last + read, deadline)

    def _expire(self) -> None:
        """The timer: re-armed while bytes keep coming, else the request has timed out."""
        limit = self._limit(self._last)
        if self.loop.time() < limit:
            self._timer = self.loop.call_at(limit, self._expire)
            return
        self._timer = None
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
