"""The h1 engine (bridge.meisa.h1) against a small HTTP/1.1 server on 127.0.0.1, written on
asyncio streams so that it answers exactly what each test needs: keep-alive, chunked and
close-delimited answers, connections the server closes, timeouts, malformed answers, TLS. Every
test runs on asyncio's own loop and on uvloop (conftest.py)."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trustme

from bridge.meisa.egress import Egress
from bridge.meisa.h1 import H1Transport
from bridge.meisa.wire import TlsConnectError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-Answer: yes\r\n\r\n" + b'{"ok": true}'


@dataclass
class Server:
    """What the server saw: (connection number, request line, headers, body) per request."""

    base: str = ""
    seen: list[tuple[int, bytes, dict[bytes, bytes], bytes]] = field(default_factory=list)
    connections: int = 0

    def paths(self) -> list[tuple[int, bytes]]:
        return [(number, line.split(b" ")[1]) for number, line, _, _ in self.seen]


def _gzipped() -> bytes:
    body = gzip.compress(b'{"zipped": true}')
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


# path -> (what the server writes, whether it keeps the connection open after it)
CANNED = {
    b"/close": (OK.replace(b"X-Answer", b"Connection: close\r\nX-Answer"), False),
    b"/until-close": (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"eof": true}', False),
    b"/gzip": (_gzipped(), True),
    b"/malformed": (b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n", True),
    b"/partial": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", False),
    b"/vanish": (b"", False),
}


async def _chunked(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in (b'{"chunked"', b": true}"):
        writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.write(b"0\r\n\r\n")


async def _answer(path: bytes, writer: asyncio.StreamWriter, nth: int) -> bool:
    """Answer one request (the `nth` on its connection); False to close the connection."""
    if path in CANNED:
        text, keep = CANNED[path]
        writer.write(text)
        return keep
    if path == b"/vanish-when-reused" and nth > 1:
        return False
    if path == b"/chunked":
        await _chunked(writer)
        return True
    if path == b"/slow":
        await asyncio.sleep(2)
    writer.write(OK)
    if path == b"/then-idle-close":
        await writer.drain()
        await asyncio.sleep(0.05)
        return False
    return True


@pytest.fixture
async def server_factory() -> AsyncIterator[object]:
    servers: list[asyncio.Server] = []

    async def start(context: ssl.SSLContext | None = None) -> Server:
        state = Server()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            number, nth = state.connections, 0
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    line, *fields = head[:-4].split(b"\r\n")
                    pairs = (f.split(b": ", 1) for f in fields)
                    headers = {name.lower(): value for name, value in pairs}
                    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                    state.seen.append((number, line, headers, body))
                    nth += 1
                    if not await _answer(line.split(b" ")[1], writer, nth):
                        break
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        listening = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
        servers.append(listening)
        scheme = "https" if context else "http"
        state.base = f"{scheme}://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
        return state

    yield start
    for listening in servers:
        listening.close()


@pytest.fixture
async def server(server_factory: object) -> Server:
    return await server_factory()  # type: ignore[operator, no-any-return]


async def test_the_request_goes_out_whole_and_the_answer_comes_back(server: Server) -> None:
    async with H1Transport() as transport:
        answer = await transport.exchange(
            "POST", f"{server.base}/contacts/upsert/?a=1", [("X-API-Key", "k")], b'{"x":1}'
        )
    _, line, headers, body = server.seen[0]
    assert (line, body) == (b"POST /contacts/upsert/?a=1 HTTP/1.1", b'{"x":1}')
    assert headers[b"x-api-key"] == b"k"
    assert headers[b"content-length"] == b"7"
    assert headers[b"host"] == server.base.removeprefix("http://").encode()
    assert b"accept-encoding" not in headers
    assert (answer.status, answer.body) == (200, b'{"ok": true}')
    assert answer.header("X-ANSWER") == "yes"
    assert answer.header("location") is None


async def test_httpx_requests_go_through_the_same_engine(server: Server) -> None:
    async with H1Transport() as transport:
        request = httpx.Request("GET", f"{server.base}/ok", headers={"X-API-Key": "k"})
        response = await transport.handle_async_request(request)
        await response.aread()
    assert response.status_code == 200
    assert response.headers["x-answer"] == "yes"
    assert response.json() == {"ok": True}
    assert b"content-length" not in server.seen[0][2]  # a GET without a body has none


async def test_a_connection_is_kept_alive_between_requests(server: Server) -> None:
    async with H1Transport() as transport:
        for path in ("/ok", "/chunked", "/ok"):
            await transport.exchange("GET", f"{server.base}{path}", [], None)
    assert server.connections == 1


async def test_a_chunked_answer_is_read_whole(server: Server) -> None:
    async with H1Transport() as transport:
        answer = await transport.exchange("GET", f"{server.base}/chunked", [], None)
    assert answer.body == b'{"chunked": true}'


async def test_connection_close_is_not_reused(server: Server) -> None:
    async with H1Transport() as transport:
        first = await transport.exchange("GET", f"{server.base}/close", [], None)
        after = await transport.exchange("GET", f"{server.base}/until-close", [], None)
        last = await transport.exchange("GET", f"{server.base}/ok", [], None)
    assert first.body == b'{"ok": true}'
    assert after.body == b'{"eof": true}'  # no length: the body ends when the server closes
    assert last.status == 200
    assert server.connections == 3


async def test_a_connection_the_server_closed_while_idle_is_dropped(server: Server) -> None:
    async with H1Transport() as transport:
        await transport.exchange("GET", f"{server.base}/then-idle-close", [], None)
        await asyncio.sleep(0.2)
        answer = await transport.exchange("GET", f"{server.base}/ok", [], None)
    assert answer.status == 200
    assert server.paths() == [(1, b"/then-idle-close"), (2, b"/ok")]


async def test_the_keep_alive_race_sends_once_more_on_a_new_connection(server: Server) -> None:
    async with H1Transport() as transport:
        await transport.exchange("GET", f"{server.base}/ok", [], None)
        answer = await transport.exchange("POST", f"{server.base}/vanish-when-reused", [], b"{}")
    assert answer.status == 200
    path = b"/vanish-when-reused"
    assert server.paths() == [(1, b"/ok"), (1, path), (2, path)]


async def test_the_race_is_retried_on_a_new_connection_not_another_idle_one(server: Server) -> None:
    async with H1Transport() as transport:
        ok = f"{server.base}/ok"
        await asyncio.gather(*(transport.exchange("GET", ok, [], None) for _ in range(2)))
        answer = await transport.exchange("POST", f"{server.base}/vanish-when-reused", [], b"{}")
    assert answer.status == 200
    path = b"/vanish-when-reused"
    first, again = [p for p in server.paths() if p[1] == path]
    assert first[0] in (1, 2), "the first try goes out on an idle connection"
    assert again == (3, path), "the second on a new one: the other idle one may be closed too"


async def test_a_new_connection_closed_without_answer_is_not_sent_again(server: Server) -> None:
    async with H1Transport() as transport:
        with pytest.raises(httpx.ReadError):
            await transport.exchange("POST", f"{server.base}/vanish", [], b"{}")
    assert server.paths() == [(1, b"/vanish")]


async def test_the_race_is_retried_once_only(server: Server) -> None:
    async with H1Transport() as transport:
        await transport.exchange("GET", f"{server.base}/ok", [], None)
        with pytest.raises(httpx.ReadError):
            await transport.exchange("POST", f"{server.base}/vanish", [], b"{}")
    assert server.paths() == [(1, b"/ok"), (1, b"/vanish"), (2, b"/vanish")]


async def test_an_answer_cut_short_is_a_read_error_not_sent_again(server: Server) -> None:
    async with H1Transport() as transport:
        await transport.exchange("GET", f"{server.base}/ok", [], None)
        with pytest.raises(httpx.ReadError):
            await transport.exchange("POST", f"{server.base}/partial", [], b"{}")
    assert server.paths() == [(1, b"/ok"), (1, b"/partial")]


async def test_a_malformed_status_line_is_a_remote_protocol_error(server: Server) -> None:
    async with H1Transport() as transport:
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.exchange("GET", f"{server.base}/malformed", [], None)
        answer = await transport.exchange("GET", f"{server.base}/ok", [], None)
    assert answer.status == 200
    assert server.connections == 2  # the broken connection was not reused


async def test_a_compressed_answer_is_decoded(server: Server) -> None:
    async with H1Transport() as transport:
        answer = await transport.exchange("GET", f"{server.base}/gzip", [], None)
        response = await transport.handle_async_request(httpx.Request("GET", f"{server.base}/gzip"))
        await response.aread()
    assert answer.body == b'{"zipped": true}'
    assert response.json() == {"zipped": True}


async def test_the_transports_timeout_bounds_the_exchange(server: Server) -> None:
    async with H1Transport(timeout=httpx.Timeout(0.2)) as transport:
        with pytest.raises(httpx.ReadTimeout):
            await transport.exchange("GET", f"{server.base}/slow", [], None)


async def test_the_requests_own_timeout_bounds_it(server: Server) -> None:
    timeout = {"timeout": httpx.Timeout(0.2).as_dict()}
    request = httpx.Request("GET", f"{server.base}/slow", extensions=timeout)
    async with H1Transport() as transport:
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(request)


async def test_connection_refused_is_httpx_connect_error_without_chain() -> None:
    async with H1Transport() as transport:
        with pytest.raises(httpx.ConnectError) as info:
            await transport.exchange("GET", "http://127.0.0.1:9/", [], None)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


async def test_the_pool_bounds_the_connections(server: Server) -> None:
    limits = httpx.Limits(max_connections=1)
    async with H1Transport(limits=limits) as transport:
        answers = await asyncio.gather(
            *(transport.exchange("GET", f"{server.base}/ok", [], None) for _ in range(5))
        )
    assert [a.status for a in answers] == [200] * 5
    assert server.connections == 1


async def test_a_full_pool_times_out_as_pool_timeout(server: Server) -> None:
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.1)
    async with H1Transport(limits=limits, timeout=timeout) as transport:
        slow = asyncio.create_task(transport.exchange("GET", f"{server.base}/slow", [], None))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await transport.exchange("GET", f"{server.base}/ok", [], None)
        assert (await slow).status == 200


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


async def test_https_with_a_private_ca_in_ca_file(
    server_factory: object, authority: trustme.CA, tmp_path: Path
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    tls = await server_factory(context)  # type: ignore[operator]
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    async with H1Transport(egress=Egress(ca_file=str(ca_file))) as transport:
        answers = [await transport.exchange("GET", f"{tls.base}/ok", [], None) for _ in "ab"]
    assert [a.status for a in answers] == [200, 200]
    assert tls.connections == 1
    async with H1Transport() as untrusting:
        with pytest.raises(TlsConnectError) as info:
            await untrusting.exchange("GET", f"{tls.base}/ok", [], None)
    assert "certificate verify failed" in str(info.value)
    assert len(tls.seen) == 2  # refused during the handshake: nothing was sent


async def test_the_systems_store_is_trusted_as_on_pyreqwest(
    server_factory: object, authority: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    tls = await server_factory(context)  # type: ignore[operator]
    bundle = tmp_path / "system.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # OpenSSL's default store, overridden
    async with H1Transport() as transport:
        answer = await transport.exchange("GET", f"{tls.base}/ok", [], None)
    assert answer.status == 200


def test_a_proxy_other_than_http_is_refused_naming_the_engines_that_take_it() -> None:
    with pytest.raises(ValueError, match="pyreqwest or httpx"):
        H1Transport(egress=Egress(proxy="https://proxy.example:3128"))


async def test_plain_http_goes_to_the_proxy_in_absolute_form_with_credentials(
    server: Server,
) -> None:
    egress = Egress(proxy=server.base, proxy_auth=("bridge", "s3cret"))
    async with H1Transport(egress=egress) as transport:
        answer = await transport.exchange("GET", "http://meisa.example:8080/api/ping/", [], None)
    _, line, headers, _ = server.seen[0]
    assert answer.status == 200
    assert line == b"GET http://meisa.example:8080/api/ping/ HTTP/1.1"
    assert headers[b"host"] == b"meisa.example:8080"
    assert headers[b"proxy-authorization"] == b"Basic YnJpZGdlOnMzY3JldA=="  # bridge:s3cret
