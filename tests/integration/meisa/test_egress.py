"""Meisa over HTTPS on every engine: a private CA (meisa.ca_file), a CONNECT proxy with
credentials (meisa.proxy), its exceptions (meisa.no_proxy), and refused certificates, which are
TlsError at once rather than a transport error to retry."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
from connect_proxy import ConnectProxy

from bridge.errors import TlsError, TransportError
from bridge.meisa.calls import MeisaCall, contact_key
from bridge.meisa.client import MeisaClient
from bridge.sandbox.testing import SandboxHandle, SandboxTls
from bridge.settings import MeisaSettings, SecretStr

pytestmark = pytest.mark.integration
ENGINES = pytest.mark.parametrize("engine", ["pyreqwest", "h1", "httpx"])
USER, PASSWORD = "bridge", "pr0xy-s3cret"


def settings(sandbox: SandboxHandle, engine: str, **kw: Any) -> MeisaSettings:
    return MeisaSettings(
        base_url=sandbox.base_url,
        api_key=SecretStr(sandbox.unlimited_key),
        transport=engine,  # type: ignore[arg-type]
        timeout=5.0,
        **kw,
    )


def upsert(email: str) -> MeisaCall:
    body = {"email": email}
    return MeisaCall(kind="upsert", body=body, contact_key=contact_key(body))


async def reach(client_settings: MeisaSettings) -> None:
    async with MeisaClient(client_settings) as client:
        await client.ping()
        await client.send(upsert("tls@example.com"))


def port_of(sandbox: SandboxHandle) -> str:
    return sandbox.url.rsplit(":", 1)[1]


@ENGINES
async def test_https_with_a_private_ca_in_ca_file(
    https_sandbox: SandboxHandle, tls_files: SandboxTls, engine: str
) -> None:
    await reach(settings(https_sandbox, engine, ca_file=tls_files.ca_file))
    assert https_sandbox.contact("tls@example.com") is not None


@ENGINES
async def test_https_through_a_connect_proxy_with_credentials(
    https_sandbox: SandboxHandle, tls_files: SandboxTls, engine: str
) -> None:
    async with ConnectProxy(credentials=(USER, PASSWORD)) as proxy:
        authenticated = proxy.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        given = settings(
            https_sandbox, engine, ca_file=tls_files.ca_file, proxy=SecretStr(authenticated)
        )
        await reach(given)
    assert https_sandbox.contact("tls@example.com") is not None
    assert proxy.tunnels, "the calls did not go through the proxy"
    assert {t.target for t in proxy.tunnels} == {f"127.0.0.1:{port_of(https_sandbox)}"}
    assert proxy.refused == 0


@ENGINES
async def test_a_host_in_no_proxy_is_reached_directly(
    https_sandbox: SandboxHandle, tls_files: SandboxTls, engine: str
) -> None:
    async with ConnectProxy() as proxy:
        given = settings(
            https_sandbox,
            engine,
            ca_file=tls_files.ca_file,
            proxy=SecretStr(proxy.url),
            no_proxy=("example.com", "127.0.0.0/8"),
        )
        await reach(given)
    assert https_sandbox.contact("tls@example.com") is not None
    assert proxy.tunnels == []


@ENGINES
async def test_an_unknown_issuer_is_a_tls_error_not_a_transport_error(
    https_sandbox: SandboxHandle, engine: str
) -> None:
    async with MeisaClient(settings(https_sandbox, engine)) as client:
        with pytest.raises(TlsError) as info:
            await client.ping()
    assert not isinstance(info.value, TransportError)
    assert "GET /ping/" in str(info.value)
    assert https_sandbox.requests() == []  # refused during the handshake: nothing was sent


@ENGINES
async def test_an_unknown_issuer_through_the_proxy_is_a_tls_error(
    https_sandbox: SandboxHandle, engine: str
) -> None:
    async with ConnectProxy() as proxy:
        given = settings(https_sandbox, engine, proxy=SecretStr(proxy.url))
        async with MeisaClient(given) as client:
            with pytest.raises(TlsError):
                await client.ping()
    assert len(proxy.tunnels) >= 1


@contextlib.asynccontextmanager
async def tls_server(cert: trustme.LeafCert) -> AsyncIterator[str]:
    """A server that only does the TLS handshake with `cert`: its https:// base URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/api/v1"
    finally:
        server.close()


def _certificate(ca: trustme.CA, problem: str) -> trustme.LeafCert:
    if problem == "wrong host name":
        return ca.issue_cert("meisa.example.org")
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    return ca.issue_cert("127.0.0.1", not_before=past, not_after=past + datetime.timedelta(days=1))


@ENGINES
@pytest.mark.parametrize("problem", ["wrong host name", "expired"])
async def test_a_refused_certificate_is_a_tls_error(
    engine: str, problem: str, tmp_path: Any
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with tls_server(_certificate(ca, problem)) as base_url:
        given = MeisaSettings(
            base_url=base_url,
            api_key=SecretStr("k"),
            transport=engine,  # type: ignore[arg-type]
            ca_file=str(ca_file),
            timeout=5.0,
        )
        async with MeisaClient(given) as client:
            with pytest.raises(TlsError) as info:
                await client.ping()
    words = {"wrong host name": ("name", "mismatch"), "expired": ("expired",)}[problem]
    assert any(word in str(info.value).lower() for word in words), str(info.value)


@ENGINES
async def test_a_refused_proxy_password_never_shows(
    https_sandbox: SandboxHandle, tls_files: SandboxTls, engine: str
) -> None:
    wrong = "wr0ng-pa55word"
    async with ConnectProxy(credentials=(USER, PASSWORD)) as proxy:
        given = settings(
            https_sandbox,
            engine,
            ca_file=tls_files.ca_file,
            proxy=SecretStr(proxy.url.replace("http://", f"http://{USER}:{wrong}@")),
        )
        async with MeisaClient(given) as client:
            with pytest.raises(TransportError) as info:
                await client.ping()
            assert wrong not in repr(client)
    assert proxy.refused >= 1
    assert wrong not in str(info.value)
    assert wrong not in repr(given)
