"""Loading a deployment config: one YAML file with ${ENV} interpolation -> BridgeConfig.

The settings models live in bridge.settings (which imports nothing else of the bridge); this module
sits on top of them and of the rules compiler. `load_config` interpolates `${VAR}` and
`${VAR:-default}`, validates every section and reports errors as `FILE:LINE: FIELD: message` (see
bridge.errors.ConfigError). A file that holds only `rules:` (or `rules_file:`) is accepted by
`validate` and `plan`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from bridge.errors import ConfigError, ConfigErrors
from bridge.rules.engine import RuleSet
from bridge.rules.loader import compile_rules, name_rules
from bridge.settings import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    RETIRED_VALUES,
    SECTIONS,
    TOP_LEVEL_KEYS,
    BridgeSettings,
    CodecSettings,
    DlqSettings,
    LedgerSettings,
    LoggingSettings,
    MeisaSettings,
    PipelineSettings,
    SecretStr,
    ServerSettings,
    SuppressionSettings,
)
from bridge.yamlio import line_of, load_yaml

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "TOP_LEVEL_KEYS",
    "BridgeConfig",
    "BridgeSettings",
    "CodecSettings",
    "DlqSettings",
    "LedgerSettings",
    "LoggingSettings",
    "MeisaSettings",
    "PipelineSettings",
    "SecretStr",
    "ServerSettings",
    "SuppressionSettings",
    "load_config",
    "load_rules",
]


@dataclass(frozen=True, kw_only=True)
class BridgeConfig(BridgeSettings):
    """A loaded deployment: its settings and its compiled rules."""

    rules: RuleSet = field(default_factory=RuleSet)


def load_config(path: str | Path, *, strict_env: bool = True) -> BridgeConfig:
    """Load a deployment config (or a file holding only `rules:`) into a BridgeConfig.

    Raises ConfigErrors listing every problem found, each with file and line. With
    `strict_env=False` (validate, plan) an unset `${VAR}` without default becomes "" instead of
    an error, so rules can be checked without the deployment's secrets.
    """
    file = str(path)
    doc, errors = load_yaml(path, strict_env=strict_env)
    if doc is None and not errors:
        doc = {}
    config = BridgeConfig(source=file)
    if isinstance(doc, list):  # a bare list of rules
        doc = {"rules": doc}
    if isinstance(doc, dict):
        config = _build(doc, file, Path(path).parent, errors, strict_env)
    elif not errors:
        errors.append(ConfigError("expected a mapping at the top level", file=file, line=1))
    if errors:
        raise ConfigErrors(errors)
    return config


def load_rules(path: str | Path) -> RuleSet:
    """Load a rules file or a deployment config; raises ConfigErrors listing every problem.

    Unset environment variables do not fail this load (as `load_config(strict_env=False)`).
    """
    return load_config(path, strict_env=False).rules


def _build(
    doc: dict[str, Any], file: str, base: Path, errors: list[ConfigError], strict_env: bool
) -> BridgeConfig:
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            allowed = ", ".join(TOP_LEVEL_KEYS)
            errors.append(_err(f"unknown key (allowed: {allowed})", file, line_of(doc, key), key))
    sections = {
        name: _section(cls, name, doc.get(name), file=file, line=line_of(doc, name), errors=errors)
        for name, cls in SECTIONS.items()
    }
    sections["meisa"] = _with_api_key(sections["meisa"], doc.get("meisa"), base, file, errors)
    sections["meisa"] = _egress(sections["meisa"], doc.get("meisa"), base, file, errors)
    if "dead_letter_topic" in doc:
        topic = _convert(str | None, doc["dead_letter_topic"])
        sections["dlq"] = replace(sections["dlq"], topic=topic)
    ratio = sections["tracing"].sampler_ratio
    if ratio is not None and ratio > 1:
        node = doc.get("tracing")
        where = line_of(node, "sampler_ratio") if isinstance(node, dict) else None
        message = f"expected a share from 0 to 1, got {ratio:g}"
        errors.append(_err(message, file, where, "tracing.sampler_ratio"))
    sections["codec"] = _codec(sections["codec"], doc.get("codec"), base, file, errors)
    kafka = _kafka(doc.get("kafka"), file, line_of(doc, "kafka"), errors)
    _check_ledger(sections["ledger"], kafka, doc, file, errors)
    return BridgeConfig(
        source=file,
        kafka=kafka,
        topics=_topics(doc.get("topics"), file, line_of(doc, "topics"), errors, strict_env),
        rules=_rules(doc, file, base, errors, strict_env),
        **sections,
    )


def _codec(
    codec: CodecSettings, node: Any, base: Path, file: str, errors: list[ConfigError]
) -> CodecSettings:
    """Local paths relative to the config file; one kind of registry credentials."""
    if codec.schemas_dir and not Path(codec.schemas_dir).is_absolute():
        codec = replace(codec, schemas_dir=str(base / codec.schemas_dir))
    ca_file = codec.schema_registry_ca_file
    if ca_file and not Path(ca_file).is_absolute():
        codec = replace(codec, schema_registry_ca_file=str(base / ca_file))
    where = line_of(node, "schema_registry_user") if isinstance(node, dict) else None
    if codec.schema_registry_token and codec.schema_registry_user:
        message = "basic auth (schema_registry_user) and a bearer token: set one of them"
        errors.append(_err(message, file, where, "codec.schema_registry_token"))
    if codec.schema_registry_password and not codec.schema_registry_user:
        message = "a password without schema_registry_user"
        errors.append(_err(message, file, where, "codec.schema_registry_password"))
    return codec


def _err(message: str, file: str, line: int | None, fld: str | None = None) -> ConfigError:
    return ConfigError(message, file=file, line=line, field=fld)


def _kafka(node: Any, file: str, line: int | None, errors: list[ConfigError]) -> dict[str, str]:
    """librdkafka properties pass through as given; values become strings as librdkafka wants."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        errors.append(_err("expected a mapping of librdkafka properties", file, line, "kafka"))
        return {}
    props: dict[str, str] = {}
    for key, value in node.items():
        if isinstance(value, dict | list) or value is None:
            where = line_of(node, key, line)
            errors.append(_err("expected a scalar value", file, where, f"kafka.{key}"))
            continue
        props[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return props


# Kafka's rule for topic names (kafka.common.internals.Topic): these characters, 1 to 249 of them.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _check_ledger(
    ledger: LedgerSettings,
    kafka: Mapping[str, str],
    doc: dict[str, Any],
    file: str,
    errors: list[ConfigError],
) -> None:
    """The ledger's topic, given or named from the group id, must be a topic name; a topic with
    the ledger turned off is a contradiction, not a silent choice."""
    node = doc.get("ledger")
    where = line_of(node, "topic") if isinstance(node, dict) else None
    if not ledger.enabled:
        if ledger.topic:
            message = "the ledger is turned off (ledger.enabled: false); remove one of the two"
            errors.append(_err(message, file, where, "ledger.topic"))
        return
    topic = ledger.topic_for(kafka)
    if topic is None or (_TOPIC_NAME.fullmatch(topic) and topic not in (".", "..")):
        return
    if ledger.topic:
        message = f"{topic!r} is not a Kafka topic name (letters, digits, '.', '_', '-'; 1-249)"
        errors.append(_err(message, file, where, "ledger.topic"))
        return
    kafka_node = doc.get("kafka")
    group_line = line_of(kafka_node, "group.id") if isinstance(kafka_node, dict) else None
    message = (
        f"the ledger topic is named from the group id, and {topic!r} is not a Kafka topic name "
        "(letters, digits, '.', '_', '-'; 1-249): set ledger.topic"
    )
    errors.append(_err(message, file, group_line, "kafka.group.id"))


def _topics(
    node: Any, file: str, line: int | None, errors: list[ConfigError], strict_env: bool
) -> tuple[str, ...]:
    if node is None:
        return ()
    names = [node] if isinstance(node, str) else node
    if not strict_env and isinstance(names, list):
        # An unset `${VAR}` reads as "" for checking; such a name is left out, not refused.
        names = [t for t in names if t != ""]
    if not isinstance(names, list) or not all(isinstance(t, str) and t for t in names):
        errors.append(_err("expected a topic name or a list of topic names", file, line, "topics"))
        return ()
    return tuple(names)


def _section(
    cls: type[Any], name: str, node: Any, *, file: str, line: int | None, errors: list[ConfigError]
) -> Any:

    if node is None:
        return cls()
    if not isinstance(node, dict):
        errors.append(_err("expected a mapping", file, line, name))
        return cls()
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in node.items():
        where = line_of(node, key, line)
        if key not in known:
            allowed = ", ".join(sorted(known))
            errors.append(_err(f"unknown key (allowed: {allowed})", file, where, f"{name}.{key}"))
            continue
        try:
            _retired(f"{name}.{key}", raw, hints[key])
            values[key] = _convert(hints[key], raw)
        except (TypeError, ValueError) as exc:
            errors.append(_err(str(exc), file, where, f"{name}.{key}"))
    return cls(**values)


def _retired(name: str, raw: Any, hint: Any) -> None:
    """A value the setting no longer takes: say why, and what it takes now."""
    reason = RETIRED_VALUES.get((name, raw)) if isinstance(raw, str) else None
    if reason is not None:
        choices = ", ".join(map(str, get_args(hint)))
        raise ValueError(f"{raw!r} is no longer a choice: {reason}; use one of {choices}")


def _convert(hint: Any, raw: Any) -> Any:  # noqa: PLR0911, PLR0912 (a branch per type)
    """Coerce a YAML value to a field's type; `${VAR}` yields strings, so numbers may be text."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType) and type(None) in args:
        if raw is None or raw == "":
            return None
        return _convert(next(a for a in args if a is not type(None)), raw)
    if origin is Literal:
        if raw not in args:
            raise ValueError(f"must be one of {', '.join(map(str, args))}, got {raw!r}")
        return raw
    if hint is SecretStr:
        return SecretStr("" if raw is None else str(raw))
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"expected true or false, got {raw!r}")
    if hint in (int, float):
        return _number(hint, raw)
    if hint is str:
        if isinstance(raw, dict | list) or raw is None:
            raise ValueError("expected a string")
        return str(raw)
    if origin is tuple and args == (str, ...):
        return _strings(raw)
    if origin is not None and issubclass(origin, Mapping):
        if not isinstance(raw, dict):
            raise ValueError("expected a mapping")
        return {str(k): str(v) for k, v in raw.items()}
    raise TypeError(f"unsupported setting type {hint!r}")


def _strings(raw: Any) -> tuple[str, ...]:
    """A list of strings, or one comma-separated string (as `NO_PROXY` is written)."""
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str | int) for i in items):
        raise ValueError("expected a list of strings or a comma-separated string")
    return tuple(text for text in (str(i).strip() for i in items) if text)


def _number(hint: type[Any], raw: Any) -> Any:
    if isinstance(raw, bool | dict | list):
        raise ValueError(f"expected a number, got {raw!r}")
    try:
        value = hint(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative, got {raw!r}")
    return value


def _with_api_key(
    meisa: MeisaSettings, node: Any, base: Path, file: str, errors: list[ConfigError]
) -> MeisaSettings:
    """api_key from the config (usually `${MEISA_API_KEY}`), else api_key_file, else the env."""
    if meisa.api_key:
        return meisa
    if meisa.api_key_file:
        path = Path(meisa.api_key_file)
        path = path if path.is_absolute() else base / path
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            line = line_of(node, "api_key_file")
            errors.append(
                _err(f"cannot read {path}: {exc.strerror}", file, line, "meisa.api_key_file")
            )
            return meisa
        return replace(meisa, api_key=SecretStr(secret))
    return replace(meisa, api_key=SecretStr(os.environ.get(API_KEY_ENV, "")))


def _egress(
    meisa: MeisaSettings, node: Any, base: Path, file: str, errors: list[ConfigError]
) -> MeisaSettings:
    """base_url and proxy are http(s) URLs; ca_file is relative to the config file and holds
    at least one PEM certificate."""

    def where(key: str) -> int | None:
        return line_of(node, key) if isinstance(node, dict) else None

    if meisa.base_url and not meisa.base_url.startswith(("http://", "https://")):
        message = f"expected an http:// or https:// URL, got {meisa.base_url!r}"
        errors.append(_err(message, file, where("base_url"), "meisa.base_url"))
    proxy = meisa.proxy.get_secret_value()
    if proxy and not proxy.startswith(("http://", "https://")):
        # Only the scheme is shown: the rest may hold the proxy's password.
        shown = proxy.split("://", 1)[0] + "://..." if "://" in proxy else "no scheme"
        message = f"expected an http:// or https:// proxy URL, got {shown}"
        errors.append(_err(message, file, where("proxy"), "meisa.proxy"))
    elif proxy.startswith("https://") and meisa.transport == "h1":
        message = "the h1 engine takes an http:// proxy only: use pyreqwest or httpx for this one"
        errors.append(_err(message, file, where("proxy"), "meisa.proxy"))
    if meisa.ca_file is None:
        return meisa
    path = Path(meisa.ca_file)
    path = path if path.is_absolute() else base / path
    problem = _pem_problem(path)
    if problem:
        errors.append(_err(problem, file, where("ca_file"), "meisa.ca_file"))
    return replace(meisa, ca_file=str(path))


def _pem_problem(path: Path) -> str | None:
    try:
        text = path.read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if b"-----BEGIN CERTIFICATE-----" not in text:
        return f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    return None


def _rules(
    doc: dict[str, Any], file: str, base: Path, errors: list[ConfigError], strict_env: bool
) -> RuleSet:
    if "rules" in doc and "rules_file" in doc:
        line = line_of(doc, "rules_file")
        errors.append(_err("give rules or rules_file, not both", file, line, "rules_file"))
        return RuleSet(source=file)
    if "rules_file" not in doc:
        errors[:] = name_rules(errors, doc.get("rules"), file)
        rules, found = compile_rules(doc.get("rules", []), file=file, line=line_of(doc, "rules"))
        errors.extend(found)
        return rules
    path = Path(str(doc["rules_file"]))
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "no such file"
        hint = "" if path.is_absolute() else " (relative to this config file)"
        errors.append(_err(f"{path}: {why}{hint}", file, line_of(doc, "rules_file"), "rules_file"))
        return RuleSet(source=file)
    sub, found = load_yaml(path, strict_env=strict_env)
    errors.extend(name_rules(found, sub.get("rules") if isinstance(sub, dict) else sub, str(path)))
    if isinstance(sub, dict):
        extra = [k for k in sub if k != "rules"]
        for key in extra:
            errors.append(
                _err("a rules_file holds only `rules:`", str(path), line_of(sub, key), key)
            )
        sub = sub.get("rules", [])
    rules, found = compile_rules(sub if sub is not None else [], file=str(path), line=1)
    errors.extend(found)
    return rules
