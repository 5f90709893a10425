"""The httpx transports on other engines (bridge.meisa.aio, bridge.meisa.reqwest), each against a
small aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest
from aiohttp import web

from bridge.meisa.aio import AiohttpTransport
from bridge.meisa.reqwest import ReqwestTransport

Seen = list[tuple[str, str, dict[str, str], bytes]]
Engine = type[AiohttpTransport] | type[ReqwestTransport]
ENGINES = pytest.mark.parametrize("engine", [AiohttpTransport, ReqwestTransport])


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names as one case: reqwest sends them in lower case, aiohttp as given."""
    return {name.lower(): value for name, value in headers.items()}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Seen]]:
    seen: Seen = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.method, request.path_qs, lower(request.headers), body))
        if request.path == "/slow":
            await asyncio.sleep(2)
        if request.path == "/gzip":
            return web.Response(
                body=gzip.compress(b'{"zipped": true}'), headers={"Content-Encoding": "gzip"}
            )
        return web.Response(status=201, body=b'{"ok": true}', headers={"X-Answer": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@ENGINES
async def test_request_and_response_cross_intact(server: tuple[str, Seen], engine: Engine) -> None:
    base, seen = server
    transport = engine()
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


@ENGINES
async def test_a_compressed_answer_is_decoded(server: tuple[str, Seen], engine: Engine) -> None:
    base, _ = server
    async with engine() as transport:
        response = await transport.handle_async_request(httpx.Request("GET", f"{base}/gzip"))
        await response.aread()
    assert response.json() == {"zipped": True}


@ENGINES
async def test_connection_refused_is_httpx_connect_error_without_chain(engine: Engine) -> None:
    async with engine() as transport:
        with pytest.raises(httpx.ConnectError) as info:
            await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@ENGINES
async def test_read_timeout_is_httpx_timeout(server: tuple[str, Seen], engine: Engine) -> None:
    base, _ = server
    timeout = {"timeout": httpx.Timeout(0.2).as_dict()}
    async with engine() as transport:
        with pytest.raises(httpx.TimeoutException):
            await transport.handle_async_request(
                httpx.Request("GET", f"{base}/slow", extensions=timeout)
            )


@ENGINES
async def test_a_proxy_in_the_environment_is_not_used(
    server: tuple[str, Seen], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with engine() as transport:
        response = await transport.handle_async_request(httpx.Request("GET", f"{server[0]}/x"))
    assert response.status_code == 201
