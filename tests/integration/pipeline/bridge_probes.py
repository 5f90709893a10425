"""Reading a running bridge's /readyz, /healthz and /metrics over HTTP (urllib only)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families


def probe(port: int, route: str) -> tuple[int | None, Any]:
    """(status, decoded JSON body) of GET /readyz or /healthz; (None, None) if nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=5) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())
    except (urllib.error.URLError, ConnectionError):
        return None, None


def ready(port: int) -> bool:
    return probe(port, "/readyz")[0] == 200


def metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The value of one sample (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
