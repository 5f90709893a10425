"""`meisa-bridge sandbox`: run the local Meisa on uvicorn."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from bridge.errors import ConfigError
from bridge.exitcodes import ExitCode
from bridge.sandbox.app import Sandbox, build_app
from bridge.sandbox.config import SandboxConfig, load_sandbox_config


def make_server(
    sb: Sandbox,
    *,
    host: str,
    port: int,
    log_level: str = "warning",
    tls: tuple[str, str] | None = None,
) -> Any:
    """A uvicorn.Server for the sandbox; no access log (the sandbox keeps its own). `tls`:
    (certificate file, key file), both PEM, to serve HTTPS."""
    import uvicorn

    config = uvicorn.Config(
        build_app(sb),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        proxy_headers=False,  # a local emulator: no proxy, and one middleware less per request
        # Connections idle between benchmark bursts must not be cut under the client.
        timeout_keep_alive=30,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    return uvicorn.Server(config)


def banner(config: SandboxConfig, url: str) -> str:
    lines = [
        f"Meisa sandbox: {url}/api/v1   inspection and control: {url}/_sandbox/",
        "API keys (sandbox only):",
    ]
    for k in config.keys:
        limits = f"{k.per_minute or 'unlimited'}/min, {k.per_hour or 'unlimited'}/h"
        lines.append(f"  {k.key}  {k.name} ({k.environment}; {limits}; {len(k.scopes)} scopes)")
    lines.append("triggers: " + ", ".join(t.key for t in config.triggers))
    lines.append("sequences: " + ", ".join(f"{s.slug} ({s.status})" for s in config.sequences))
    return "\n".join(lines)


def sandbox_command(args: argparse.Namespace) -> int:
    try:
        config = load_sandbox_config(args.config)
    except ConfigError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    sb = Sandbox(config)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    # Listening before the banner: a client that reads it and connects at once is queued,
    # not refused, while uvicorn starts.
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    print(banner(config, f"http://{host}:{port}"), flush=True)
    make_server(sb, host=host, port=port).run(sockets=[sock])
    return ExitCode.OK
