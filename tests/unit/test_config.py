"""load_config: sections, interpolation, coercion, api key sources, rules_file, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import DEFAULT_BASE_URL, load_config
from bridge.errors import ConfigErrors

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_deployment_config_loads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    monkeypatch.setenv("MEISA_BASE_URL", "http://127.0.0.1:8080/api/v1")
    monkeypatch.setenv("MEISA_API_KEY", "meisa_test_secret_value")
    monkeypatch.setenv("BRIDGE_HTTP_PORT", "9555")
    config = load_config(ROOT / "examples" / "bridge.yaml")
    assert config.kafka["bootstrap.servers"] == "127.0.0.1:19092"
    assert config.kafka["group.protocol"] == "consumer"
    assert config.meisa.base_url == "http://127.0.0.1:8080/api/v1"
    assert config.meisa.api_key.get_secret_value() == "meisa_test_secret_value"
    assert "meisa_test_secret_value" not in repr(config)
    assert config.server.port == 9555
    assert config.dlq.topic == "meisa-bridge.dlq"
    assert config.topics == ("app.events",)
    assert len(config.rules) == 11
    assert config.ledger.topic_for(config.kafka) == "meisa-bridge.sent-emails"


def test_unset_variable_without_default_names_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEISA_API_KEY", raising=False)
    path = _write(tmp_path, "topics: [a]\nmeisa:\n  api_key: ${MEISA_API_KEY}\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert [(e.file, e.line) for e in info.value.errors] == [(str(path), 3)]
    # validate/plan load leniently: the rules can be checked without secrets
    assert not load_config(path, strict_env=False).meisa.api_key


def test_defaults_and_kafka_values_are_stringified(tmp_path: Path) -> None:
    path = _write(tmp_path, "kafka:\n  enable.idempotence: true\n  linger.ms: 5\n")
    config = load_config(path)
    assert config.kafka == {"enable.idempotence": "true", "linger.ms": "5"}
    assert config.meisa.base_url == DEFAULT_BASE_URL
    assert len(config.rules) == 0


def test_unknown_keys_and_bad_values_are_all_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "kafak: {}\nmeisa:\n  timeout: soon\n  rate_share: 0.5\n  colour: red\n"
        "logging:\n  format: xml\nserver:\n  port: ${PORT:-9401}\n",
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    found = {(e.line, e.field) for e in info.value.errors}
    assert found == {(1, "kafak"), (3, "meisa.timeout"), (5, "meisa.colour"), (7, "logging.format")}


def test_api_key_file_and_env_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_text("meisa_live_from_file\n", encoding="utf-8")
    path = _write(tmp_path, "meisa:\n  api_key_file: key\n")
    assert load_config(path).meisa.api_key.get_secret_value() == "meisa_live_from_file"
    monkeypatch.setenv("MEISA_API_KEY", "meisa_live_from_env")
    path = _write(tmp_path, "meisa: {}\n", "env.yaml")
    assert load_config(path).meisa.api_key.get_secret_value() == "meisa_live_from_env"


def test_rules_file_is_relative_and_its_errors_name_it(tmp_path: Path) -> None:
    _write(tmp_path, "rules:\n  - name: r\n    on: t\n    do: []\n", "rules.yaml")
    path = _write(tmp_path, "topics: [a]\nrules_file: rules.yaml\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert err.file == str(tmp_path / "rules.yaml")
    assert err.line == 4
    assert err.rule == "r"


def test_on_and_yes_stay_strings(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "rules:\n  - name: r\n    on: yes\n    do:\n      - upsert: {email: a@b.c}\n"
    )
    (rule,) = load_config(path).rules
    assert rule.on.types == frozenset({"yes"})


def test_a_base_url_without_http_scheme_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text("topics: [a]\nmeisa:\n  base_url: api.meisa.io/api/v1\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert (err.line, err.field) == (3, "meisa.base_url")
    assert "https://" in err.message


def test_registry_credentials_come_from_the_environment_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEMA_REGISTRY_PASSWORD", "pw-from-env")
    path = _write(
        tmp_path,
        "codec:\n"
        "  schema_registry_url: https://registry:8081\n"
        "  schema_registry_user: bridge\n"
        "  schema_registry_password: ${SCHEMA_REGISTRY_PASSWORD}\n"
        "  schema_registry_ca_file: certs/ca.pem\n",
    )
    codec = load_config(path).codec
    assert codec.schema_registry_password.get_secret_value() == "pw-from-env"
    assert codec.schema_registry_ca_file == str(tmp_path / "certs" / "ca.pem")
    assert "pw-from-env" not in repr(codec)


def test_basic_auth_and_a_token_together_are_an_error_at_the_user_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "codec:\n"
        "  schema_registry_url: https://registry:8081\n"
        "  schema_registry_user: bridge\n"
        "  schema_registry_token: tok\n",
    )
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    assert f"{path}:3: codec.schema_registry_token: basic auth" in str(caught.value)
    alone = _write(tmp_path, "codec:\n  schema_registry_password: pw\n", "alone.yaml")
    with pytest.raises(ConfigErrors, match="a password without schema_registry_user"):
        load_config(alone)


def test_the_ledger_is_on_by_default_and_named_from_the_group(tmp_path: Path) -> None:
    named = load_config(_write(tmp_path, "kafka:\n  group.id: shop-emails\n"))
    assert named.ledger.enabled
    assert named.ledger.topic_for(named.kafka) == "shop-emails.sent-emails"
    unnamed = load_config(_write(tmp_path, "topics: [a]\n", "default.yaml"))
    assert unnamed.ledger.topic_for(unnamed.kafka) == "meisa-bridge.sent-emails"
    given = load_config(_write(tmp_path, "ledger:\n  topic: keys\n", "given.yaml"))
    assert given.ledger.topic_for({"group.id": "anything"}) == "keys"


def test_turning_the_ledger_off_is_explicit_and_a_topic_with_it_is_an_error(
    tmp_path: Path,
) -> None:
    off = load_config(_write(tmp_path, "ledger:\n  enabled: false\n"))
    assert off.ledger.topic_for(off.kafka) is None
    path = _write(tmp_path, "ledger:\n  enabled: false\n  topic: keys\n", "both.yaml")
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert (err.line, err.field) == (3, "ledger.topic")
    assert "ledger.enabled: false" in err.message


TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(group=st.text(st.characters(min_codepoint=32, max_codepoint=0x17F, exclude_characters="$")))
def test_a_group_id_names_a_valid_ledger_topic_or_is_refused_at_its_line(
    tmp_path: Path, group: str
) -> None:
    doc = {"topics": ["a"], "kafka": {"bootstrap.servers": "b:9092", "group.id": group}}
    text = yaml.safe_dump(doc, sort_keys=False, width=1_000_000)
    line = next(n for n, text_line in enumerate(text.splitlines(), 1) if "group.id" in text_line)
    path = _write(tmp_path, text)
    try:
        config = load_config(path)
    except ConfigErrors as exc:
        (err,) = exc.errors
        assert (err.line, err.field) == (line, "kafka.group.id")
        assert "set ledger.topic" in err.message
        assert not TOPIC_NAME.fullmatch(f"{group}.sent-emails")
        return
    topic = config.ledger.topic_for(config.kafka)
    assert topic == f"{group or 'meisa-bridge'}.sent-emails"
    assert TOPIC_NAME.fullmatch(topic)


def test_egress_settings_load_with_ca_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", encoding="utf-8"
    )
    path = _write(
        tmp_path,
        "meisa:\n  proxy: http://u:pw-secret@proxy.internal:3128\n"
        "  no_proxy: localhost, .svc.cluster.local,10.0.0.0/8\n  ca_file: certs/ca.pem\n",
    )
    meisa = load_config(path).meisa
    assert meisa.proxy.get_secret_value() == "http://u:pw-secret@proxy.internal:3128"
    assert meisa.no_proxy == ("localhost", ".svc.cluster.local", "10.0.0.0/8")
    assert meisa.ca_file == str(tmp_path / "certs" / "ca.pem")
    assert "pw-secret" not in repr(meisa)


def test_an_https_proxy_on_the_h1_engine_is_an_error_naming_the_engines_that_take_it(
    tmp_path: Path,
) -> None:
    text = "meisa:\n  transport: h1\n  proxy: https://u:pw-secret@proxy.internal:3128\n"
    with pytest.raises(ConfigErrors) as info:
        load_config(_write(tmp_path, text))
    (err,) = info.value.errors
    assert (err.line, err.field) == (3, "meisa.proxy")
    assert "pyreqwest or httpx" in err.message
    assert "pw-secret" not in err.message


def test_no_proxy_also_takes_a_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "meisa:\n  no_proxy: [localhost, 127.0.0.1]\n")
    assert load_config(path).meisa.no_proxy == ("localhost", "127.0.0.1")


def test_an_empty_proxy_from_an_unset_variable_means_no_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    path = _write(tmp_path, "meisa:\n  proxy: ${HTTPS_PROXY:-}\n")
    assert not load_config(path).meisa.proxy


def test_egress_errors_name_their_line_and_never_show_the_proxy_password(
    tmp_path: Path,
) -> None:
    (tmp_path / "not-pem.txt").write_text("hello\n", encoding="utf-8")
    path = _write(
        tmp_path,
        "meisa:\n  proxy: socks5://u:pw-secret@proxy:1080\n  ca_file: not-pem.txt\n"
        "  no_proxy: {a: b}\n",
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    found = {e.field: (e.line, e.message) for e in info.value.errors}
    assert found["meisa.proxy"][0] == 2
    assert "socks5://..." in found["meisa.proxy"][1]
    assert "pw-secret" not in str(info.value)
    assert found["meisa.ca_file"][0] == 3
    assert "no PEM certificate" in found["meisa.ca_file"][1]
    assert found["meisa.no_proxy"][0] == 4


def test_a_missing_ca_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "meisa:\n  ca_file: /nonexistent/ca.pem\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert (err.line, err.field) == (2, "meisa.ca_file")
    assert "/nonexistent/ca.pem" in err.message


def test_the_removed_aiohttp_engine_is_an_error_naming_the_remaining_engines(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "topics: [a]\nmeisa:\n  transport: aiohttp\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert (err.line, err.field) == (3, "meisa.transport")
    assert "aiohttp engine was removed" in err.message
    assert "h1, pyreqwest, httpx" in err.message
