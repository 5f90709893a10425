"""What the engine transports (bridge/meisa/aio.py, bridge/meisa/reqwest.py) share: the request's
headers as text pairs for the engine, and the answer as an httpx.Response already read."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

# Headers the engines write themselves from the URL and the body.
ENGINE_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})


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
