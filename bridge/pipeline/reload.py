"""Reloading the rules of a running bridge: on SIGHUP, and with `reload.watch` when a file changes.

A reload reads the config file again and keeps only its rules: every other setting needs a
restart. The rules pass the checks `run` makes at start-up or are refused:

- the whole file loads (every error is logged at ERROR as `FILE:LINE: ...`, as `validate`
  prints them);
- it has rules (an empty list would commit every event with no call);
- the API key has every scope they need (GET /ping is asked again; when Meisa does not answer,
  the scopes it gave last are used, with a WARNING).

Rules that pass are handed to `apply` (the pipeline's intake) between two messages: a message
already mapped keeps its calls, every message read afterwards is mapped with the new rules. One
INFO line names the rules' version (bridge.rules.loader.rules_version) and
`meisa_bridge_rules_version{version}` exports it. A refused reload keeps the rules in use and sets
`meisa_bridge_rules_reload_failed` to 1 until a reload succeeds; it never stops the bridge.

Requests that come while a reload runs are folded into one more reload after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from bridge.config import BridgeConfig, load_config
from bridge.errors import BridgeError, ConfigError, ConfigErrors
from bridge.meisa.client import MeisaClient
from bridge.meisa.models import PingInfo
from bridge.meisa.scopes import format_missing, missing_scopes
from bridge.observability import Metrics
from bridge.rules.engine import RuleSet

log = logging.getLogger("bridge.reload")

# What the key's scopes are, asked of Meisa (GET /ping); raises when Meisa does not answer.
KeyScopes = Callable[[], Awaitable[frozenset[str]]]
# (device, inode, size, mtime) of each watched file; None for a file that is not there.
Signature = tuple[tuple[int, int, int, int] | None, ...]


class RulesReloader:
    """Reloads `source`'s rules on `request()`; `run()` serves requests until cancelled."""

    def __init__(
        self,
        *,
        source: str,
        rules: RuleSet,
        apply: Callable[[RuleSet], None],
        key_scopes: KeyScopes,
        scopes: frozenset[str],
        metrics: Metrics,
        settings: BridgeConfig | None = None,
        load: Callable[[str], BridgeConfig] = load_config,
    ) -> None:
        """`settings`: the running configuration, to warn when a reloaded file changes more
        than its rules (None: no such warning, e.g. a shadow run's adjusted settings)."""
        self.source = source
        self._settings = settings
        self.rules = rules
        self._apply = apply
        self._key_scopes = key_scopes
        self._scopes = scopes  # the key's scopes as Meisa last gave them
        self._metrics = metrics
        self._load = load
        self._wanted = asyncio.Event()
        metrics.rules_version(rules.version)
        metrics.rules_reload_failed(False)
        log.info(
            "rules version %s from %s (%d rules); SIGHUP reloads them", rules.version,
            rules.source, len(rules),
        )  # fmt: skip

    def request(self) -> None:
        """Ask for a reload (a signal handler, the file watch): it runs on `run()`'s task."""
        self._wanted.set()

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Load, check and apply the rules; False when they were refused (the old ones stay)."""
        refusal = await self._refusal()
        if refusal is not None:
            result, errors = refusal
            for line in errors:
                log.error("%s", line)
            log.error(
                "rules reload refused (%s): still using version %s from %s",
                result,
                self.rules.version,
                self.rules.source,
            )
            self._metrics.rules_reload(result)
            self._metrics.rules_reload_failed(True)
            return False
        return True

    async def _refusal(self) -> tuple[str, list[str]] | None:
        """None once new rules are in use; else (why, the ERROR lines)."""
        try:
            config = await asyncio.to_thread(self._load, self.source)
        except ConfigError as exc:
            found = exc.errors if isinstance(exc, ConfigErrors) else [exc]
            return "invalid", [err.format() for err in found]
        self._other_settings(config)
        rules = config.rules
        if not rules:
            return "invalid", [f"{self.source}: no rules (add `rules:` or `rules_file:`)"]
        missing = missing_scopes(rules.scopes_needed(), await self._current_scopes())
        if missing:
            return "missing_scope", format_missing(missing).splitlines()
        self._swap(rules)
        return None

    def _other_settings(self, config: BridgeConfig) -> None:
        if self._settings is None:
            return
        same = RuleSet()
        if dataclasses.replace(config, rules=same) != dataclasses.replace(
            self._settings, rules=same
        ):
            log.warning(
                "%s: settings other than the rules changed; they apply at the next restart",
                self.source,
            )

    async def _current_scopes(self) -> frozenset[str]:
        try:
            self._scopes = await self._key_scopes()
        except BridgeError as exc:
            log.warning(
                "rules reload: GET /ping failed (%s); checking the scopes the key had before", exc
            )
        return self._scopes

    def _swap(self, rules: RuleSet) -> None:
        old = self.rules
        self._apply(rules)
        self.rules = rules
        self._metrics.rules_version(rules.version)
        self._metrics.rules_reload("ok")
        self._metrics.rules_reload_failed(False)
        for scope in rules.scopes_needed():
            self._metrics.scope_missing(scope, False)
        if rules.version == old.version:
            log.info("rules reloaded from %s: unchanged, version %s", rules.source, rules.version)
            return
        log.info(
            "rules reloaded from %s: %d rules, version %s (was %s)",
            rules.source,
            len(rules),
            rules.version,
            old.version,
        )

    # -- the file watch ------------------------------------------------------------------------

    def files(self) -> tuple[str, ...]:
        """The config file and, when the rules live in a file of their own, that file."""
        if self.rules.source in (self.source, "<memory>"):
            return (self.source,)
        return (self.source, self.rules.source)

    def signature(self) -> Signature:
        return tuple(_stat(path) for path in self.files())

    async def watch(self, interval: float) -> None:
        """Request a reload when the files changed and then stayed the same for `interval`
        (a file being written is not read half-way). A ConfigMap update swaps a symlink: the
        file's inode changes, which counts."""
        loaded = seen = self.signature()
        while True:
            await asyncio.sleep(interval)
            now = self.signature()
            if now == seen and now != loaded:
                loaded = now
                self.request()
            seen = now


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = Path(path).stat()  # follows symlinks: a ConfigMap's `..data` swap shows here
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def start_reloading(
    config: BridgeConfig,
    *,
    apply: Callable[[RuleSet], None],
    client: MeisaClient,
    info: PingInfo,
    metrics: Metrics,
    signals: bool,
    shadow: bool = False,
) -> list[asyncio.Task[None]]:
    """`run`'s reloads: the tasks that serve SIGHUP (with `signals`) and, with `reload.watch`,
    the file watch. A shadow run's settings are its own, so they are not compared."""

    async def key_scopes() -> frozenset[str]:
        return (await client.ping()).scopes

    reloader = RulesReloader(
        source=config.source,
        rules=config.rules,
        apply=apply,
        key_scopes=key_scopes,
        scopes=info.scopes,
        metrics=metrics,
        settings=None if shadow else config,
    )
    tasks = [asyncio.create_task(reloader.run(), name="reload")]
    if config.reload.watch:
        interval = config.reload.watch_interval_seconds
        tasks.append(asyncio.create_task(reloader.watch(interval), name="reload-watch"))
    if signals:
        from bridge.signals import hangup_requested

        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.request)
        if hangup_requested():  # it came during start-up: the file may have changed since
            reloader.request()
    return tasks
