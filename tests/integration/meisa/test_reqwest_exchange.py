"""The pyreqwest engine's direct exchange (bridge.meisa.reqwest.ReqwestTransport.exchange), the
client's path to Meisa without httpx's Request and Response, against a small HTTP/1.1 server on
127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.meisa.reqwest import ReqwestTransport

Seen = list[tuple[bytes, dict[bytes, bytes], bytes]]


def _answer(path: bytes) -> bytes:
    if path == b"/gzip":
        body = gzip.compress(b'{"zipped": true}')
        head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
    else:
        body = b'{"ok": true}'
        head = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Seen]]:
    seen: Seen = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            line, *fields = head[:-4].split(b"\r\n")
            headers = dict(f.lower().split(b": ", 1) for f in fields)
            body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            seen.append((line, headers, body))
            path = line.split(b" ")[1]
            if path == b"/slow":
                await asyncio.sleep(2)
            writer.write(_answer(path))
            await writer.drain()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        listener.close()


async def test_the_request_goes_out_whole_and_the_answer_comes_back_read(
    server: tuple[str, Seen],
) -> None:
    base, seen = server
    async with ReqwestTransport() as transport:
        answer = await transport.exchange(
            "POST", f"{base}/contacts/upsert/", [("X-API-Key", "k")], b'{"x":1}'
        )
    line, headers, body = seen[0]
    assert (line, body) == (b"POST /contacts/upsert/ HTTP/1.1", b'{"x":1}')
    assert headers[b"x-api-key"] == b"k"
    assert headers[b"content-length"] == b"7"  # the engine writes it, and Host
    assert headers[b"host"] == base.removeprefix("http://").encode()
    assert (answer.status, answer.body) == (429, b'{"ok": true}')
    assert answer.header("Retry-After") == "7"  # any case
    assert answer.header("location") is None


async def test_a_compressed_answer_is_decoded(server: tuple[str, Seen]) -> None:
    base, _ = server
    async with ReqwestTransport() as transport:
        answer = await transport.exchange("GET", f"{base}/gzip", [], None)
    assert answer.body == b'{"zipped": true}'


async def test_connection_refused_is_httpx_connect_error_without_chain() -> None:
    async with ReqwestTransport() as transport:
        with pytest.raises(httpx.ConnectError) as info:
            await transport.exchange("GET", "http://127.0.0.1:9/", [], None)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


async def test_the_transports_timeout_bounds_the_exchange(server: tuple[str, Seen]) -> None:
    base, _ = server
    async with ReqwestTransport(timeout=httpx.Timeout(0.2)) as transport:
        with pytest.raises(httpx.TimeoutException):
            await transport.exchange("GET", f"{base}/slow", [], None)
