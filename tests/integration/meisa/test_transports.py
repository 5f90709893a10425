"""The httpx transport on pyreqwest (bridge.meisa.reqwest) against a small HTTP/1.1 server on
127.0.0.1, written on asyncio streams so that it answers exactly what each test needs."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.meisa.reqwest import ReqwestTransport

Seen = list[tuple[str, str, dict[str, str], bytes]]


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
    """One request per connection: read it, note it, answer and close."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    method, target, _ = head[0].split(" ", 2)
    headers = {}
    for line in head[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    seen.append((method, target, headers, body))
    extra = ["X-Answer: yes"]
    status, payload = "201 Created", b'{"ok": true}'
    if target == "/slow":
        await asyncio.sleep(2)
    if target == "/gzip":
        status, payload, extra = "200 OK", gzip.compress(b'{"zipped": true}'), []
        extra.append("Content-Encoding: gzip")
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(payload)}", "Connection: close", *extra]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
    await writer.drain()


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Seen]]:
    seen: Seen = []
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await _answer(reader, writer, seen)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (the timeout test)
        finally:
            writer.close()
            handlers.discard(task)

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        listening.close()
        await listening.wait_closed()


async def test_request_and_response_cross_intact(server: tuple[str, Seen]) -> None:
    base, seen = server
    transport = ReqwestTransport()
    try:
        request = httpx.Request(
            "POST", f"{base}/contacts/upsert/?a=1", headers={"X-API-Key": "k"}, content=b'{"x":1}'
        )
        response = await transport.handle_async_request(request)
        await response.aread()
    finally:
        await transport.aclose()
    method, path, headers, body = seen[0]
    assert (method, path, body) == ("POST", "/contacts/upsert/?a=1", b'{"x":1}')
    assert headers["x-api-key"] == "k"
    assert headers["content-length"] == "7"
    assert "accept-encoding" not in headers  # as httpx's own transport sends it
    assert response.status_code == 201
    assert response.headers["x-answer"] == "yes"
    assert response.json() == {"ok": True}


async def test_a_compressed_answer_is_decoded(server: tuple[str, Seen]) -> None:
    base, _ = server
    async with ReqwestTransport() as transport:
        response = await transport.handle_async_request(httpx.Request("GET", f"{base}/gzip"))
        await response.aread()
    assert response.json() == {"zipped": True}


async def test_connection_refused_is_httpx_connect_error_without_chain() -> None:
    async with ReqwestTransport() as transport:
        with pytest.raises(httpx.ConnectError) as info:
            await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


async def test_read_timeout_is_httpx_timeout(server: tuple[str, Seen]) -> None:
    base, _ = server
    timeout = {"timeout": httpx.Timeout(0.2).as_dict()}
    async with ReqwestTransport() as transport:
        with pytest.raises(httpx.TimeoutException):
            await transport.handle_async_request(
                httpx.Request("GET", f"{base}/slow", extensions=timeout)
            )


async def test_a_proxy_in_the_environment_is_not_used(
    server: tuple[str, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with ReqwestTransport() as transport:
        response = await transport.handle_async_request(httpx.Request("GET", f"{server[0]}/x"))
    assert response.status_code == 201
