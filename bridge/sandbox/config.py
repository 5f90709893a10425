"""Sandbox configuration: API keys, triggers, sequences, seed contacts and automations.

A YAML (or dict) config replaces the defaults section by section: a config that lists `keys`
gets exactly those keys, while the sections it leaves out keep their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge.errors import ConfigError

SCOPES = (
    "contacts:read",
    "contacts:write",
    "events:track",
    "sequences:read",
    "sequences:enroll",
    "emails:trigger",
    "tags:write",
)
SOURCES = frozenset({"api", "import", "manual", "signup", "initial_sync"})
SEQUENCE_STATUSES = frozenset({"active", "paused", "draft", "archived"})
CONTACT_STATUSES = frozenset({"active", "unsubscribed", "bounced", "complained"})
DEMO_KEY = "meisa_test_sandbox_0000000000000000000000"
UNLIMITED_KEY = "meisa_test_unlimited_00000000000000000000"
DEFAULT_SENDER = "Sandbox <no-reply@sandbox.meisa.test>"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """An API key. A limit of None means unlimited (a sandbox convenience)."""

    key: str = field(repr=False)
    name: str
    environment: str
    scopes: frozenset[str]
    per_minute: int | None = 60
    per_hour: int | None = 1000


@dataclass(frozen=True, slots=True)
class Condition:
    """`field` (dotted contact path, or `variables.x`) compared with one operator."""

    field: str
    op: str  # equals | not_equals | in | exists
    value: Any = None


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    key: str
    name: str
    active: bool = True
    sender: str | None = DEFAULT_SENDER
    delay_seconds: float = 0.0
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class SequenceSpec:
    slug: str
    name: str
    status: str = "active"
    first_step_delay_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class AutomationSpec:
    """WHEN `on` (+ filters) THEN `actions` (each a one-key mapping, e.g. {"add_tag": "x"})."""

    name: str
    on: str
    field: str | None = None
    from_value: Any = None
    to_value: Any = None
    has_from: bool = False
    has_to: bool = False
    tag: str | None = None
    event: str | None = None
    sequence: str | None = None
    actions: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    keys: tuple[KeySpec, ...]
    triggers: tuple[TriggerSpec, ...]
    sequences: tuple[SequenceSpec, ...]
    contacts: tuple[Mapping[str, Any], ...] = ()
    automations: tuple[AutomationSpec, ...] = ()
    product_id: str = "prod_sandbox"
    product_name: str = "Meisa Sandbox"
    request_log_size: int = 10_000
    seed: int = 0


DEFAULT_CONFIG: dict[str, Any] = {
    "product": {"id": "prod_sandbox", "name": "Meisa Sandbox"},
    "keys": [
        {"key": DEMO_KEY, "name": "sandbox-demo", "environment": "test", "scopes": ["*"]},
        {
            "key": UNLIMITED_KEY,
            "name": "sandbox-unlimited",
            "environment": "test",
            "scopes": ["*"],
            "rate_limit_per_minute": None,
            "rate_limit_per_hour": None,
        },
    ],
    "triggers": [
        {"key": "verification_code", "name": "Verification code"},
        {"key": "password_reset", "name": "Password reset"},
        {"key": "receipt", "name": "Receipt"},
        {"key": "payment_failure", "name": "Payment failure", "delay_seconds": 3600},
        {"key": "agency_client_invite", "name": "Agency client invite"},
        {"key": "team_invite", "name": "Team invite", "sender": None},
        {"key": "legacy_welcome", "name": "Legacy welcome", "active": False},
        {
            "key": "pro_tips",
            "name": "Tips for Pro users",
            "conditions": [{"field": "custom_fields.plan", "equals": "pro"}],
        },
    ],
    "sequences": [
        {"slug": "welcome-pro", "name": "Welcome to Pro", "status": "active"},
        {"slug": "win-back", "name": "Win back churned users", "status": "active"},
        {"slug": "onboarding", "name": "Onboarding", "status": "active"},
        {"slug": "product-tips", "name": "Product tips", "status": "paused"},
        {"slug": "holiday-promo", "name": "Holiday promo", "status": "draft"},
    ],
    "contacts": [],
    "automations": [
        {
            "name": "free-to-paid",
            "when": {"type": "contact_updated", "field": "custom_fields.plan", "from": "free"},
            "actions": [
                {"add_tag": "paying-customer"},
                {"remove_tag": "free-plan"},
                {"enroll": "welcome-pro"},
            ],
        },
        {
            "name": "churned",
            "when": {"type": "contact_updated", "field": "custom_fields.plan", "to": "churned"},
            "actions": [{"add_tag": "churned"}, {"enroll": "win-back"}],
        },
        {
            "name": "onboarded",
            "when": {"type": "custom_event", "event": "completed_onboarding"},
            "actions": [
                {"add_tag": "onboarded"},
                {"set_field": {"field": "custom_fields.onboarding_completed", "value": True}},
            ],
        },
    ],
}

AUTOMATION_TRIGGERS = frozenset(
    {
        "contact_created",
        "contact_updated",
        "tag_added",
        "tag_removed",
        "custom_event",
        "sequence_enrolled",
    }
)
AUTOMATION_ACTIONS = frozenset({"add_tag", "remove_tag", "enroll", "unenroll", "set_field"})


def load_sandbox_config(source: str | Path | Mapping[str, Any] | None) -> SandboxConfig:
    """Build the config from a YAML path, a dict, or None (the defaults)."""
    file: str | None = None
    raw: Mapping[str, Any] = {}
    if isinstance(source, str | Path):
        file = str(source)
        try:
            loaded = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read sandbox config: {exc}", file=file) from exc
        raw = loaded or {}
    elif source is not None:
        raw = source
    if not isinstance(raw, Mapping):
        raise ConfigError("sandbox config must be a mapping", file=file)
    merged = {**DEFAULT_CONFIG, **raw}
    return _build(merged, file)


def _build(raw: Mapping[str, Any], file: str | None) -> SandboxConfig:
    product = _mapping(raw.get("product") or {}, "product", file)
    return SandboxConfig(
        keys=tuple(_key(k, file) for k in _list(raw["keys"], "keys", file)),
        triggers=tuple(_trigger(t, file) for t in _list(raw["triggers"], "triggers", file)),
        sequences=tuple(_sequence(s, file) for s in _list(raw["sequences"], "sequences", file)),
        contacts=tuple(_contact(c, file) for c in _list(raw["contacts"], "contacts", file)),
        automations=tuple(
            _automation(a, file) for a in _list(raw["automations"], "automations", file)
        ),
        product_id=str(product.get("id", "prod_sandbox")),
        product_name=str(product.get("name", "Meisa Sandbox")),
        request_log_size=int(raw.get("request_log_size", 10_000)),
        seed=int(raw.get("seed", 0)),
    )


def _list(value: Any, where: str, file: str | None) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError("must be a list", file=file, field=where)
    return value


def _mapping(value: Any, where: str, file: str | None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError("each entry must be a mapping", file=file, field=where)
    return value


def _limit(value: Any, where: str, file: str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("must be a positive integer or null (unlimited)", file=file, field=where)
    return value


def _key(entry: Any, file: str | None) -> KeySpec:
    raw = _mapping(entry, "keys", file)
    key, env = str(raw.get("key", "")), str(raw.get("environment", "test"))
    if env not in ("live", "test"):
        raise ConfigError("environment must be live or test", file=file, field="keys.environment")
    if not key.startswith(f"meisa_{env}_"):
        raise ConfigError(f"a {env} key starts with meisa_{env}_", file=file, field="keys.key")
    scopes = set(raw.get("scopes") or [])
    if scopes & {"*", "all"}:
        scopes = set(SCOPES)
    unknown = scopes - set(SCOPES)
    if unknown:
        raise ConfigError(f"unknown scopes {sorted(unknown)}", file=file, field="keys.scopes")
    return KeySpec(
        key=key,
        name=str(raw.get("name", key[:16])),
        environment=env,
        scopes=frozenset(scopes),
        per_minute=_limit(raw.get("rate_limit_per_minute", 60), "keys.rate_limit_per_minute", file),
        per_hour=_limit(raw.get("rate_limit_per_hour", 1000), "keys.rate_limit_per_hour", file),
    )


def _contact(entry: Any, file: str | None) -> Mapping[str, Any]:
    raw = _mapping(entry, "contacts", file)
    if not isinstance(raw.get("email"), str) or "@" not in raw["email"]:
        raise ConfigError("a seed contact needs an email", file=file, field="contacts.email")
    if raw.get("status", "active") not in CONTACT_STATUSES:
        raise ConfigError(
            f"status must be one of {sorted(CONTACT_STATUSES)}", file=file, field="contacts.status"
        )
    return raw


def _conditions(raw: Any, file: str | None) -> tuple[Condition, ...]:
    out = []
    for entry in _list(raw, "triggers.conditions", file):
        cond = _mapping(entry, "triggers.conditions", file)
        ops = [op for op in ("equals", "not_equals", "in", "exists") if op in cond]
        if "field" not in cond or len(ops) != 1:
            raise ConfigError(
                "a condition has `field` and one of equals, not_equals, in, exists",
                file=file,
                field="triggers.conditions",
            )
        out.append(Condition(field=str(cond["field"]), op=ops[0], value=cond[ops[0]]))
    return tuple(out)


def _trigger(entry: Any, file: str | None) -> TriggerSpec:
    raw = _mapping(entry, "triggers", file)
    if not raw.get("key"):
        raise ConfigError("a trigger needs a key", file=file, field="triggers.key")
    return TriggerSpec(
        key=str(raw["key"]),
        name=str(raw.get("name", raw["key"])),
        active=bool(raw.get("active", True)),
        sender=raw.get("sender", DEFAULT_SENDER),
        delay_seconds=float(raw.get("delay_seconds", 0)),
        conditions=_conditions(raw.get("conditions"), file),
    )


def _sequence(entry: Any, file: str | None) -> SequenceSpec:
    raw = _mapping(entry, "sequences", file)
    status = str(raw.get("status", "active"))
    if not raw.get("slug") or status not in SEQUENCE_STATUSES:
        raise ConfigError(
            f"a sequence needs a slug and a status in {sorted(SEQUENCE_STATUSES)}",
            file=file,
            field="sequences",
        )
    return SequenceSpec(
        slug=str(raw["slug"]),
        name=str(raw.get("name", raw["slug"])),
        status=status,
        first_step_delay_seconds=float(raw.get("first_step_delay_seconds", 0)),
    )


def _automation(entry: Any, file: str | None) -> AutomationSpec:
    raw = _mapping(entry, "automations", file)
    name = str(raw.get("name", "automation"))
    when = _mapping(raw.get("when") or {}, "automations.when", file)
    if when.get("type") not in AUTOMATION_TRIGGERS:
        raise ConfigError(
            f"when.type must be one of {sorted(AUTOMATION_TRIGGERS)}", file=file, rule=name
        )
    actions = []
    for action in _list(raw.get("actions"), "automations.actions", file):
        act = _mapping(action, "automations.actions", file)
        if len(act) != 1 or next(iter(act)) not in AUTOMATION_ACTIONS:
            raise ConfigError(
                f"each action is one of {sorted(AUTOMATION_ACTIONS)}", file=file, rule=name
            )
        kind, arg = next(iter(act.items()))
        if kind == "set_field" and not (isinstance(arg, Mapping) and arg.get("field")):
            raise ConfigError("set_field needs {field, value}", file=file, rule=name)
        actions.append((kind, arg))
    return AutomationSpec(
        name=name,
        on=str(when["type"]),
        field=when.get("field"),
        from_value=when.get("from"),
        to_value=when.get("to"),
        has_from="from" in when,
        has_to="to" in when,
        tag=when.get("tag"),
        event=when.get("event"),
        sequence=when.get("sequence"),
        actions=tuple(actions),
    )
