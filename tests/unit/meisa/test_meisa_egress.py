"""bridge.meisa.egress: which hosts bypass the proxy, and the proxy's credentials kept apart."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.meisa.egress import bypasses, egress_for, split_credentials
from bridge.settings import MeisaSettings, SecretStr


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "direct"),
    [
        ("api.meisa.io", 443, ("*",), True),
        ("api.meisa.io", 443, ("meisa.io",), True),  # a domain covers its subdomains
        ("meisa.io", 443, ("meisa.io",), True),
        ("notmeisa.io", 443, ("meisa.io",), False),  # ... not names that merely end alike
        ("meisa.io", 443, (".meisa.io",), False),  # a leading dot: subdomains only
        ("api.meisa.io", 443, (".meisa.io",), True),
        ("api.meisa.io", 443, ("*.meisa.io",), True),
        ("API.Meisa.IO.", 443, ("meisa.io",), True),  # case and a trailing dot do not matter
        ("api.meisa.io", 443, ("api.meisa.io:8443",), False),  # the port must match too
        ("api.meisa.io", 8443, ("api.meisa.io:8443",), True),
        ("10.1.2.3", 443, ("10.0.0.0/8",), True),
        ("11.1.2.3", 443, ("10.0.0.0/8",), False),
        ("::1", 443, ("::1",), True),
        ("::1", 8080, ("[::1]:8080",), True),
        ("api.meisa.io", 443, ("not/a/cidr",), False),
        ("api.meisa.io", 443, (), False),
    ],
)
def test_no_proxy_entries(host: str, port: int, no_proxy: tuple[str, ...], direct: bool) -> None:
    assert bypasses(host, port, no_proxy) is direct


@given(
    st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True), st.integers(1, 65535)
)
def test_a_host_always_bypasses_when_listed_itself_or_with_star(host: str, port: int) -> None:
    assert bypasses(host, port, (host,))
    assert bypasses(host, port, ("*",))
    assert bypasses(host, port, (f"{host}:{port}",))


def test_credentials_are_split_off_the_proxy_url_and_decoded() -> None:
    url, auth = split_credentials("http://us%40er:p%3Ass@proxy.internal:3128")
    assert url == "http://proxy.internal:3128"
    assert auth == ("us@er", "p:ss")
    assert split_credentials("http://proxy:3128") == ("http://proxy:3128", None)


def _settings(**kw: object) -> MeisaSettings:
    return MeisaSettings(base_url="https://api.meisa.io/api/v1", **kw)  # type: ignore[arg-type]


def test_the_proxy_applies_unless_the_base_url_host_is_excepted() -> None:
    proxy = SecretStr("http://u:s3cret@proxy:3128")
    used = egress_for(_settings(proxy=proxy))
    assert used.proxy == "http://proxy:3128"
    assert used.proxy_auth == ("u", "s3cret")
    assert "s3cret" not in repr(used)
    assert "s3cret" in used.secrets
    assert egress_for(_settings(proxy=proxy, no_proxy=("meisa.io",))).proxy is None
    assert egress_for(_settings()).proxy is None
