"""The Starlette application: /api/v1 (the spec's API) and /_sandbox (inspection and control).

Every API request goes through one wrapper: faults -> key (401) -> scope (403) -> rate limit
(429; refused requests do not count) -> body (413 too large, 415 not JSON, 400) -> handler.
It stays lean on purpose (no middleware classes, orjson, a ring-buffer log of raw bytes):
benchmarks drive thousands of upserts per second through it.

Each API path is served with and without its trailing slash: httpx does not follow redirects by
default and urllib will not re-send a POST on a 307, so a redirect would only confuse clients.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.sandbox import contacts, messaging
from bridge.sandbox.auth import KeyRing, check_scope
from bridge.sandbox.config import SandboxConfig, TriggerSpec
from bridge.sandbox.faults import Fault, Faults
from bridge.sandbox.model import ApiError, Clock
from bridge.sandbox.store import Store
from bridge.sandbox.validate import check_media_type, parse_body

Result = tuple[int, dict[str, Any]]
Handler = Callable[["Sandbox", Request, dict[str, Any]], Result]
JSON = "application/json"
# Largest request body accepted: a full bulk-enroll (500 addresses) is ~130 KB; Django, which
# APIs of this shape usually run on, refuses bodies over 2.5 MB by default.
MAX_BODY = 1024 * 1024


class Sandbox:
    """All state of one running sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.store = Store(config, self.clock)
        self.keys = KeyRing(config.keys, self.clock)
        self.faults = Faults(self.clock, config.seed, ENDPOINT_NAMES)
        self.triggers: dict[str, TriggerSpec] = {t.key: t for t in config.triggers}
        # (epoch, method, path, query, status, key name, raw body, fault id, duration ms)
        self.log: deque[tuple[Any, ...]] = deque(maxlen=config.request_log_size)

    def reset(self) -> None:
        self.clock.offset = 0.0
        self.store.reset()
        self.keys.reset()
        self.faults.clear()
        self.log.clear()


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers, JSON)


def _drop(request: Request, mode: str) -> None:
    """Close the socket with no response (uvicorn: the cycle behind `receive` owns it)."""
    cycle = getattr(request.receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("injected drop")  # another server: a 500 at least
    if mode == "reset":
        transport.abort()
    else:
        transport.close()
    cycle.disconnected = True  # type: ignore[union-attr]  # uvicorn then sends nothing more


async def _apply_fault(sb: Sandbox, fault: Fault, request: Request) -> Response | None:
    if fault.latency:
        await asyncio.sleep(fault.latency)
    if fault.drop is not None:
        if fault.drop == "close":
            # Read the whole request first: closing a socket with unread bytes sends a reset, and
            # a body segment still on its way would turn the orderly close into one at random.
            await request.body()
        _drop(request, fault.drop)
        return Response(b"", 500)  # never written: the connection is gone
    if fault.status is None:
        return None
    headers: dict[str, str] = {}
    # An HTTP-date is read against the client's wall clock, as the Date header uvicorn sends;
    # the virtual clock (advanced for idempotency and rate windows) would push it into the future.
    retry_after = fault.retry_after_header(time.time())
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = fault.body or {"error": f"injected fault {fault.id}", "code": "injected_fault"}
    return json_response(fault.status, body, headers)


async def _read_body(request: Request) -> tuple[bytes, ApiError | None]:
    """The body, or the 413 to answer once the key is checked (the excess is never read)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > MAX_BODY:
            return b"", _too_large()
        return await request.body(), None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return b"", _too_large()
        chunks.append(chunk)
    return b"".join(chunks), None


def _too_large() -> ApiError:
    return ApiError(
        413, f"request body larger than {MAX_BODY} bytes", "payload_too_large", limit=MAX_BODY
    )


def _parse(request: Request, raw: bytes, body_error: ApiError | None) -> dict[str, Any]:
    if body_error is not None:
        raise body_error
    if raw:
        check_media_type(request.headers.get("content-type"))
    return parse_body(raw)


def api_route(sb: Sandbox, path: str, name: str, scope: str | None, handler: Handler) -> Route:
    is_post = name not in _GETS

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        raw, body_error = await _read_body(request) if is_post else (b"", None)
        path: str = request.scope["path"]  # cheaper than request.url, which parses a URL
        # Faults match the spec's path (with its slash) whichever form the client sent.
        canonical = path if path[-1] == "/" else path + "/"
        fault = sb.faults.pick(name, canonical) if sb.faults.active else None
        key_name = None
        response = await _apply_fault(sb, fault, request) if fault is not None else None
        if response is None:
            try:
                state = sb.keys.authenticate(request.headers.get("x-api-key"))
                key_name = state.spec.name
                check_scope(state, scope)
                sb.keys.admit(state)
                body = _parse(request, raw, body_error) if is_post else {}
                status, payload = handler(sb, request, body)
                response = json_response(status, payload)
            except ApiError as err:
                retry = err.body.get("retry_after")
                headers = {"Retry-After": str(retry)} if retry is not None else None
                response = json_response(err.status, err.body, headers)
        sb.log.append(
            (
                sb.clock.now(),
                request.method,
                path,
                request.scope["query_string"],
                response.status_code,
                key_name,
                raw,
                fault.id if fault else None,
                (time.perf_counter() - started) * 1000.0,
                request.headers.get("traceparent"),
            )
        )
        return response

    return Route(path, endpoint, methods=["GET"] if not is_post else ["POST"], name=name)


def api_routes(
    sb: Sandbox, path: str, name: str, scope: str | None, handler: Handler
) -> list[Route]:
    """The spec's path and the same path without its trailing slash."""
    route = api_route(sb, path, name, scope, handler)
    bare = Route(path.rstrip("/"), route.endpoint, methods=route.methods, name=f"{name}_bare")
    return [route, bare]


_GETS = frozenset({"ping", "unsubscribed_emails", "list_sequences", "contact_enrollments"})


def _ping(sb: Sandbox, request: Request, body: dict[str, Any]) -> Result:
    spec = sb.keys.authenticate(request.headers.get("x-api-key")).spec
    return 200, {
        "status": "ok",
        "api_key": {
            "name": spec.name,
            "environment": spec.environment,
            "scopes": sorted(spec.scopes),
            "rate_limit_per_minute": spec.per_minute,
            "rate_limit_per_hour": spec.per_hour,
        },
        "product": {"id": sb.config.product_id, "name": sb.config.product_name},
    }


ROUTES: list[tuple[str, str, str | None, Handler]] = [
    ("/ping/", "ping", None, _ping),
    (
        "/contacts/upsert/",
        "upsert",
        "contacts:write",
        lambda sb, r, b: contacts.upsert(sb.store, b),
    ),
    ("/events/track/", "track", "events:track", lambda sb, r, b: contacts.track(sb.store, b)),
    (
        "/contacts/{id}/add_tag/",
        "add_tag",
        "contacts:write",
        lambda sb, r, b: contacts.add_tag(sb.store, r.path_params["id"], b),
    ),
    (
        "/contacts/{id}/remove_tag/",
        "remove_tag",
        "contacts:write",
        lambda sb, r, b: contacts.remove_tag(sb.store, r.path_params["id"], b),
    ),
    (
        "/contacts/api/unsubscribed-emails/",
        "unsubscribed_emails",
        "contacts:read",
        lambda sb, r, b: contacts.unsubscribed(sb.store),
    ),
    (
        "/emails/trigger/",
        "trigger",
        "emails:trigger",
        lambda sb, r, b: messaging.trigger(sb.store, sb.triggers, b),
    ),
    (
        "/sequences/enroll/",
        "enroll",
        "sequences:enroll",
        lambda sb, r, b: messaging.enroll(sb.store, b),
    ),
    (
        "/sequences/api/bulk-enroll/",
        "bulk_enroll",
        "sequences:enroll",
        lambda sb, r, b: messaging.bulk_enroll(sb.store, b),
    ),
    (
        "/sequences/api/list/",
        "list_sequences",
        "sequences:read",
        lambda sb, r, b: messaging.list_sequences(
            sb.store, r.query_params.get("status"), r.query_params.get("search")
        ),
    ),
    (
        "/sequences/api/contact-enrollments/",
        "contact_enrollments",
        "sequences:read",
        lambda sb, r, b: messaging.contact_enrollments(sb.store, r.query_params.get("email")),
    ),
]
ENDPOINT_NAMES = tuple(name for _, name, _, _ in ROUTES)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors in the one JSON error shape; 405 keeps Starlette's Allow header."""
    if not isinstance(exc, HTTPException):
        return json_response(500, {"error": "internal error", "code": "internal_error"})
    where = f"{request.method} {request.scope['path']}"
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        body = {"error": f"no such endpoint: {where}", "code": "not_found"}
    elif exc.status_code == 405:
        allow = headers.get("Allow", "")
        body = {"error": f"method not allowed: {where}; use {allow}", "code": "method_not_allowed"}
    else:
        body = {"error": str(exc.detail), "code": "http_error"}
    return json_response(exc.status_code, body, headers)


def build_app(sb: Sandbox) -> Starlette:
    from bridge.sandbox.control import control_routes

    routes = [
        route
        for path, name, scope, h in ROUTES
        for route in api_routes(sb, "/api/v1" + path, name, scope, h)
    ]
    app = Starlette(
        routes=[*routes, *control_routes(sb)],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sandbox = sb
    return app
