"""How the client reaches Meisa: through a proxy or not, and which CAs it trusts.

Every engine (bridge.meisa.h1, bridge.meisa.reqwest, and httpx's own pool in
bridge.meisa.wire) takes one `Egress`, so they make the same choice. The client only ever talks
to `meisa.base_url`, so whether the proxy applies is decided once, here, from `meisa.no_proxy`
(the usual `NO_PROXY` forms), rather than per request by each engine's own rules.

The proxy's credentials travel separately from its URL (`Egress.proxy` has none), so an engine's
error message that names the proxy cannot leak them; `Egress.secrets` lists what the client
redacts anyway.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.parse
from dataclasses import dataclass, field

import certifi

from bridge.settings import MeisaSettings


@dataclass(frozen=True, kw_only=True)
class Egress:
    """`proxy`: the proxy URL without credentials (None: direct); `proxy_auth`: (user,
    password) for Basic proxy authentication; `ca_file`: extra trusted CAs (PEM)."""

    proxy: str | None = None
    proxy_auth: tuple[str, str] | None = field(default=None, repr=False)
    ca_file: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Text no message may show: the proxy password (and user:password as in a URL)."""
        if self.proxy_auth is None or not self.proxy_auth[1]:
            return ()
        user, password = self.proxy_auth
        quoted = urllib.parse.quote(password, safe="")
        return tuple(dict.fromkeys((password, quoted, f"{user}:{password}")))

    def ssl_context(self) -> ssl.SSLContext:
        """The context the Python engines verify with: certifi's CAs, plus `ca_file`."""
        context = ssl.create_default_context(cafile=certifi.where())
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return context

    def extra_ca_pem(self) -> bytes | None:
        if not self.ca_file:
            return None
        with open(self.ca_file, "rb") as bundle:
            return bundle.read()


DIRECT = Egress()


def egress_for(settings: MeisaSettings) -> Egress:
    """The egress for calls to `settings.base_url`."""
    raw = settings.proxy.get_secret_value()
    target = urllib.parse.urlsplit(settings.base_url)
    if not raw or bypasses(target.hostname or "", target.port, settings.no_proxy):
        return Egress(ca_file=settings.ca_file)
    proxy, auth = split_credentials(raw)
    return Egress(proxy=proxy, proxy_auth=auth, ca_file=settings.ca_file)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`http://user:pw@host:port` -> (`http://host:port`, (user, pw)); percent-escapes decoded."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    bare = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    user = urllib.parse.unquote(parts.username)
    return bare, (user, urllib.parse.unquote(parts.password or ""))


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def bypasses(host: str, port: int | None, no_proxy: tuple[str, ...]) -> bool:
    """Whether `host` (and `port`) is reached directly, as `NO_PROXY` says: `*` matches every
    host; `example.com` the host and its subdomains, `.example.com` only its subdomains; an IP
    address or a CIDR block matches addresses; `entry:port` also needs the port to match."""
    host = host.lower().strip("[]").rstrip(".")
    address = _address(host)
    return any(_matches(entry.strip().lower(), host, port, address) for entry in no_proxy)


def _matches(entry: str, host: str, port: int | None, address: Address | None) -> bool:
    if entry == "*":
        return True
    entry, entry_port = _split_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    if "/" in entry:
        return address is not None and address in _network(entry)
    return _name_matches(entry.rstrip("."), host)


def _name_matches(entry: str, host: str) -> bool:
    if entry.startswith("*."):
        entry = entry[1:]
    if entry.startswith("."):
        return host.endswith(entry)
    return host == entry or host.endswith("." + entry)


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | tuple[()]:
    """The CIDR block, or an empty tuple (which contains nothing) when it is not one."""
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return ()


def _split_port(entry: str) -> tuple[str, int | None]:
    """`host:port` or `[v6]:port` -> (host, port); a bare IPv6 address keeps its colons."""
    if entry.startswith("["):
        inner, _, rest = entry[1:].partition("]")
        return inner, int(rest[1:]) if rest[1:].isdigit() else None
    name, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name, int(port)
    return entry, None


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
