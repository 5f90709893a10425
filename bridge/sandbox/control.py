"""Inspection and control API under /_sandbox/ (no auth; the real API has no such prefix).

The request log shows the key's name, never the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.sandbox.config import CONTACT_STATUSES
from bridge.sandbox.model import ENROLLMENT_STATUSES, ApiError, iso
from bridge.sandbox.validate import normalize_email, parse_body

if TYPE_CHECKING:
    from bridge.sandbox.app import Sandbox


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json")


def _error(err: ApiError) -> Response:
    return _json(err.body, err.status)


def _body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def _limit(request: Request, default: int = 1000) -> int:
    try:
        return max(0, int(request.query_params.get("limit", default)))
    except ValueError:
        return default


def _requests(sb: Sandbox, request: Request) -> Response:
    q = request.query_params
    path, method, status = q.get("path"), q.get("method"), q.get("status")
    rows = [
        {
            "time": iso(t),
            "method": m,
            "path": p,
            "query": query.decode("latin-1"),
            "status": s,
            "key_name": k,
            "body": _body(raw),
            "fault_id": fault,
            "duration_ms": round(ms, 3),
            "traceparent": traceparent,
        }
        for (t, m, p, query, s, k, raw, fault, ms, traceparent) in sb.log
        if (not path or p.startswith(path))
        and (not method or m == method.upper())
        and (not status or str(s) == status)
    ]
    return _json({"count": len(rows), "requests": rows[-_limit(request) :]})


def _contacts(sb: Sandbox, request: Request) -> Response:
    email = (request.query_params.get("email") or "").strip().lower()
    rows = [c.to_json() for c in sb.store.contacts.values() if not email or c.email == email]
    return _json({"count": len(rows), "contacts": rows})


def _filtered(rows: list[dict[str, Any]], request: Request, *fields: str) -> list[dict[str, Any]]:
    wanted = {f: request.query_params[f] for f in fields if f in request.query_params}
    if "email" in wanted:
        wanted["email"] = wanted["email"].strip().lower()
    return [r for r in rows if all(str(r.get(f)) == v for f, v in wanted.items())]


def _events(sb: Sandbox, request: Request) -> Response:
    rows = _filtered(sb.store.events, request, "email", "event_name")
    return _json({"count": len(rows), "events": rows})


def _sends(sb: Sandbox, request: Request) -> Response:
    rows = _filtered(sb.store.sends, request, "to_email", "trigger_key", "status")
    return _json({"count": len(rows), "sends": rows})


def _enrollments(sb: Sandbox, request: Request) -> Response:
    all_rows = [{**e.to_contact_json(), "contact_id": e.contact_id} for e in sb.store.enrollments]
    for row in all_rows:
        row["email"] = row["contact_email"]
    rows = _filtered(all_rows, request, "email", "sequence_slug", "status")
    return _json({"count": len(rows), "enrollments": rows})


def _automations(sb: Sandbox, request: Request) -> Response:
    rows = _filtered(sb.store.automation_runs, request, "email", "automation")
    return _json({"count": len(rows), "runs": rows})


def _config(sb: Sandbox, request: Request) -> Response:
    cfg = sb.config
    keys = [
        {
            "name": k.name,
            "environment": k.environment,
            "scopes": sorted(k.scopes),
            "rate_limit_per_minute": k.per_minute,
            "rate_limit_per_hour": k.per_hour,
        }
        for k in cfg.keys
    ]
    triggers = [
        {
            "trigger_key": t.key,
            "name": t.name,
            "active": t.active,
            "sender": t.sender,
            "delay_seconds": t.delay_seconds,
            "conditions": len(t.conditions),
        }
        for t in cfg.triggers
    ]
    sequences = [s.to_json() for s in sb.store.sequences.values()]
    return _json({"keys": keys, "triggers": triggers, "sequences": sequences})


async def _reset(sb: Sandbox, request: Request) -> Response:
    sb.reset()
    return _json({"status": "reset"})


async def _set_status(sb: Sandbox, request: Request) -> Response:
    try:
        body = parse_body(await request.body())
        email = normalize_email(body.get("email"))
        status = body.get("status")
        if status not in CONTACT_STATUSES:
            raise ApiError(400, f"status: one of {sorted(CONTACT_STATUSES)}", "invalid")
    except ApiError as err:
        return _error(err)
    return _json(sb.store.set_status(email, str(status)).to_json())


async def _set_enrollment_status(sb: Sandbox, request: Request) -> Response:
    """Move a contact's latest enrollment in a sequence to a status (e.g. paused, completed)."""
    try:
        body = parse_body(await request.body())
        email = normalize_email(body.get("email"))
        slug, status = body.get("sequence_slug"), body.get("status")
        if status not in ENROLLMENT_STATUSES:
            raise ApiError(400, f"status: one of {sorted(ENROLLMENT_STATUSES)}", "invalid")
        enrollment = next(
            (
                e
                for e in reversed(sb.store.enrollments)
                if e.contact_email == email and e.sequence_slug == slug
            ),
            None,
        )
        if enrollment is None:
            raise ApiError(404, f"no enrollment of {email} in {slug!r}", "not_found")
    except ApiError as err:
        return _error(err)
    enrollment.status = str(status)
    return _json(enrollment.to_contact_json())


async def _faults(sb: Sandbox, request: Request) -> Response:
    if request.method == "DELETE":
        return _json({"cleared": sb.faults.clear()})
    if request.method == "POST":
        try:
            fault = sb.faults.add(parse_body(await request.body()))
        except ApiError as err:
            return _error(err)
        return _json(fault.to_json(), 201)
    return _json({"faults": [f.to_json() for f in sb.faults.active]})


async def _fault(sb: Sandbox, request: Request) -> Response:
    cleared = sb.faults.clear(int(request.path_params["fault_id"]))
    return _json({"cleared": cleared}, 200 if cleared else 404)


async def _clock(sb: Sandbox, request: Request) -> Response:
    """Move the sandbox's clock forward: rate windows, idempotency and timestamps follow."""
    try:
        body = parse_body(await request.body())
        seconds = body.get("advance_seconds", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ApiError(400, "advance_seconds: a number >= 0", "invalid")
    except ApiError as err:
        return _error(err)
    sb.clock.offset += float(seconds)
    return _json({"offset_seconds": sb.clock.offset, "now": iso(sb.clock.now())})


def control_routes(sb: Sandbox) -> list[Route]:
    def bind(fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            result = fn(sb, request)
            response: Response = await result if hasattr(result, "__await__") else result
            return response

        return endpoint

    p = "/_sandbox"
    return [
        Route(f"{p}/requests", bind(_requests), methods=["GET"]),
        Route(f"{p}/contacts", bind(_contacts), methods=["GET"]),
        Route(f"{p}/contacts/status", bind(_set_status), methods=["POST"]),
        Route(f"{p}/events", bind(_events), methods=["GET"]),
        Route(f"{p}/sends", bind(_sends), methods=["GET"]),
        Route(f"{p}/enrollments", bind(_enrollments), methods=["GET"]),
        Route(f"{p}/enrollments/status", bind(_set_enrollment_status), methods=["POST"]),
        Route(f"{p}/automations", bind(_automations), methods=["GET"]),
        Route(f"{p}/config", bind(_config), methods=["GET"]),
        Route(f"{p}/reset", bind(_reset), methods=["POST"]),
        Route(f"{p}/faults", bind(_faults), methods=["GET", "POST", "DELETE"]),
        Route(f"{p}/faults/{{fault_id:int}}", bind(_fault), methods=["DELETE"]),
        Route(f"{p}/clock", bind(_clock), methods=["POST"]),
    ]
