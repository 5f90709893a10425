"""dlq list / show / redrive on the real broker and the sandbox, through the CLI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
import replay_env as env

from bridge.dlq import DeadLetter, DeadLetterProducer, Failure
from bridge.errors import DecodeError, MappingError, PoisonError
from bridge.events import Headers, Record
from bridge.kafka.producer import KafkaProducer

pytestmark = pytest.mark.integration


def _dead_letter(bootstrap: str, dlq: str, letters: list[DeadLetter]) -> None:
    async def go() -> None:
        producer = DeadLetterProducer(KafkaProducer({"bootstrap.servers": bootstrap}), dlq)
        for letter in letters:
            await producer.send(letter)
        producer.close()

    asyncio.run(go())


def _map_letter(
    topic: str,
    offset: int,
    ev: dict[str, Any],
    *,
    headers: Headers = (),
    timestamp: int | None = None,
    error: PoisonError | None = None,
    attempts: int = 1,
) -> DeadLetter:
    """What the bridge writes when the `profile` rule fails on `ev` read at `offset`."""
    key = ev["data"]["user_id"].encode()
    record = Record(topic, 0, offset, key, orjson.dumps(ev), headers, timestamp)
    failure = Failure(
        error=error or MappingError("bad"), stage="map", rule="profile", attempts=attempts
    )
    return DeadLetter(record, failure)


def _json(*args: Any) -> Any:
    done = env.cli("dlq", *args, "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_redrive_after_a_rule_fix_leaves_nothing_behind_and_runs_once(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    topic, dlq = make_topic(), make_topic()
    events = [env._event("user.updated", u, u, tier="pro") for u in range(5)]
    env.produce(kafka_bootstrap, topic, events)
    # What the bridge wrote when the old `profile` rule failed on these, plus two undecodable.
    letters = [
        _map_letter(
            topic,
            i,
            ev,
            headers=(("trace", b"t1"),),
            timestamp=1_700_000_000_000,
            error=MappingError("data.plan: missing"),
        )
        for i, ev in enumerate(events)
    ]
    letters += [
        DeadLetter(
            Record(topic=topic, partition=0, offset=100 + i, key=None, value=b"\xff garbage"),
            Failure(error=DecodeError("not JSON"), stage="decode"),
        )
        for i in range(2)
    ]
    _dead_letter(kafka_bootstrap, dlq, letters)
    config = replay_config(topic, dlq=dlq)

    listed = _json("list", "--config", config)
    assert [
        (r["stage"], r["rule"], r["origin"], r["attempts"], r["status"]) for r in listed[:1]
    ] == [("map", "profile", f"{topic}/0/0", 1, "pending")]
    assert len(listed) == 7

    plan = _json("redrive", "--config", config, "--rule", "profile", "--dry-run")
    assert (plan["selected"], plan["calls"]) == (5, {"upsert": 5})
    assert env.requests_by_endpoint(sandbox) == {}

    done = _json("redrive", "--config", config, "--rule", "profile")
    assert (done["selected"], done["outcomes"], done["calls"]) == (5, {"ok": 5}, {"upsert": 5})
    assert env.requests_by_endpoint(sandbox) == plan["calls"]
    assert {c["email"] for c in sandbox.contacts()} == {f"user{u}@example.com" for u in range(5)}

    pending = _json("list", "--config", config)
    assert {r["stage"] for r in pending} == {"decode"}  # none of the profile records left
    again = _json("redrive", "--config", config, "--rule", "profile")
    assert (again["selected"], again["calls"]) == (0, {})
    assert env.requests_by_endpoint(sandbox) == {"upsert": 5}

    # Still undecodable: each goes back to the DLQ with attempts + 1, the old one is marked.
    failed = _json("redrive", "--config", config, "--error-class", "PoisonError")
    assert (failed["selected"], failed["outcomes"]) == (2, {"failed": 2})
    everything = _json("list", "--config", config, "--all")
    fresh = [r for r in everything if r["status"] == "pending"]
    assert sorted((r["origin"], r["attempts"]) for r in fresh) == [
        (f"{topic}/0/100", 2),
        (f"{topic}/0/101", 2),
    ]
    assert sum(r["status"] == "redriven:failed" for r in everything) == 2


def test_show_decodes_headers_and_masks_emails(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    topic, dlq = make_topic(), make_topic()
    ev = env._event("user.updated", 7, 1, tier="pro")
    _dead_letter(kafka_bootstrap, dlq, [_map_letter(topic, 42, ev, attempts=3)])
    config = replay_config(topic, dlq=dlq)
    shown = env.cli("dlq", "show", "--config", config, "--partition", "0", "--offset", "0")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert (body["origin"], body["attempts"], body["error_class"]) == (
        f"{topic}/0/42",
        3,
        "MappingError",
    )
    assert "user7@example.com" not in shown.stdout
    assert body["value"]["seq"] == 1
    revealed = env.cli(
        "dlq", "show", "--config", config, "--partition", "0", "--offset", "0", "--reveal"
    )
    assert "user7@example.com" in revealed.stdout


def test_list_show_and_dry_run_need_no_api_key_but_redrive_does(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    # A deployment config says ${MEISA_API_KEY}; an operator's shell often lacks it.
    topic, dlq = make_topic(), make_topic()
    ev = env._event("user.updated", 3, 1, tier="pro")
    _dead_letter(kafka_bootstrap, dlq, [_map_letter(topic, 5, ev)])
    config = replay_config(topic, api_key="${MEISA_API_KEY}", dlq=dlq)
    no_key = env.without_api_key()
    listed = env.cli("dlq", "list", "--config", config, "--format", "json", env=no_key)
    assert listed.returncode == 0, listed.stderr
    assert [r["origin"] for r in json.loads(listed.stdout)] == [f"{topic}/0/5"]
    shown = env.cli(
        "dlq", "show", "--config", config, "--partition", "0", "--offset", "0", env=no_key
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["value"]["seq"] == 1
    redrive = ("dlq", "redrive", "--config", config)
    plan = env.cli(*redrive, "--dry-run", "--format", "json", env=no_key)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["calls"] == {"upsert": 1}
    refused = env.cli(*redrive, env=no_key)
    assert refused.returncode == 2
    assert "MEISA_API_KEY" in refused.stderr
    assert env.requests_by_endpoint(sandbox) == {}
