"""Transports that wrap the client's real one: a request counter, and the read-only guard.

`CountingTransport` reports every HTTP request that reaches Meisa (each one spends the key's
rate budget, whatever its answer), so dashboards can compare what was spent with the limit.

`ReadOnlyTransport` is what makes a shadow run safe by construction rather than by care: it
forwards only GET, HEAD and OPTIONS and raises ShadowWriteRefused for anything else before a
byte leaves the process, whatever code path asked for the write. It offers no direct exchange
(bridge.meisa.wire.exchanger), so every request of a shadow run goes through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx

from bridge.errors import ShadowWriteRefused
from bridge.meisa.wire import Answer, Exchange, exchanger

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReadOnlyTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method.upper() not in READ_METHODS:
            raise ShadowWriteRefused(
                f"{request.method} {request.url.path}: a shadow run never writes to Meisa"
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class CountingTransport(httpx.AsyncBaseTransport):
    """Calls `on_request(method)` for every request handed to the network."""

    def __init__(self, inner: httpx.AsyncBaseTransport, on_request: Callable[[str], None]) -> None:
        self._inner = inner
        self._on_request = on_request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._on_request(request.method)
        return await self._inner.handle_async_request(request)

    def exchanger(self) -> Exchange | None:
        inner = exchanger(self._inner)
        if inner is None:
            return None
        on_request = self._on_request

        async def exchange(
            method: str, url: str, headers: Sequence[tuple[str, str]], content: bytes | None
        ) -> Answer:
            on_request(method)
            return await inner(method, url, headers, content)

        return exchange

    async def aclose(self) -> None:
        await self._inner.aclose()
