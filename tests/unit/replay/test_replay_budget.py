from __future__ import annotations

import io
import math

import pytest

from bridge.errors import ConfigError
from bridge.meisa.calls import KINDS
from bridge.meisa.models import PingInfo
from bridge.meisa.schedule import RateScheduler
from bridge.replay.budget import Budget, budget_from, format_duration
from bridge.replay.command import parse_time
from bridge.replay.progress import Progress
from bridge.settings import MeisaSettings


def test_default_key_budget_paces_about_one_call_a_second() -> None:
    budget = budget_from(MeisaSettings(), PingInfo())
    assert budget.seconds_for(60) == pytest.approx(60.5)
    assert budget.seconds_for(1000) == pytest.approx(1000 * 60.5 / 60)


def test_the_hourly_limit_less_the_trigger_reserve_decides_long_backfills() -> None:
    budget = budget_from(MeisaSettings(), PingInfo())
    # 900 of the 1,000/h are open to upserts (10% is kept for triggers): 4,100 more at 900 per
    # hour, the governor's hour being 0.5 s longer than 3,600 (its guard against clock skew).
    assert budget.seconds_for(5000) == pytest.approx(4100 * 3600.5 / 900)
    assert budget.seconds_for(900, full=False) == pytest.approx(3600.5)


def test_overrides_and_share_scale_the_budget() -> None:
    settings = MeisaSettings(rate_limit_per_minute=600, rate_limit_per_hour=36000, rate_share=0.5)
    budget = budget_from(settings, PingInfo())
    assert budget == Budget(600, 36000, "config", 0.5)
    assert budget.rate == pytest.approx(18000 * 0.9 / 3600.5)
    assert budget.describe() == "600/min, 36000/h (config, this replica's share 0.5)"


def test_a_small_share_keeps_the_governors_floor_of_one_request_per_window() -> None:
    # A 1% share of 60/min is 0.6 a minute, but the governor grants one request per window at
    # least: a replay on such a replica takes a window per call, not 1.7 windows.
    budget = budget_from(MeisaSettings(rate_share=0.01), PingInfo(rate_limit_per_hour=None))
    assert budget.seconds_for(3) == pytest.approx(3 * 60.5)
    assert budget.rate == pytest.approx(1 / 60.5)


def test_the_estimate_is_the_governors_pace_for_upserts() -> None:
    budget = Budget(120, None, "ping", 0.5)
    core = RateScheduler(per_minute=120, per_hour=None, share=0.5)
    ((allowed, window),) = core.allowances(KINDS["upsert"].priority)
    assert budget.seconds_for(600) == pytest.approx(600 * window / allowed)


def test_no_key_and_no_overrides_assume_the_spec_defaults() -> None:
    assert budget_from(MeisaSettings(), None) == Budget(60, 1000, "default")


def test_no_key_and_one_override_keep_the_spec_default_for_the_other_limit() -> None:
    # Without GET /ping nothing says the hourly limit is gone: 1,000/h still holds.
    assert budget_from(MeisaSettings(rate_limit_per_minute=30), None) == Budget(30, 1000, "config")
    assert budget_from(MeisaSettings(rate_limit_per_hour=500), None) == Budget(60, 500, "config")


def test_unlimited_budget_takes_no_time() -> None:
    budget = Budget(None, None, "ping")
    assert budget.seconds_for(10**6) == 0
    assert math.isinf(budget.rate)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (5, 125, 3725, math.inf)] == [
        "5s",
        "2m05s",
        "1h02m",
        "unknown",
    ]


def test_parse_time() -> None:
    now = 1_800_000_000.0
    assert parse_time("earliest", now=now) is None
    assert parse_time("now", now=now) is None
    assert parse_time("2h", now=now) == (now - 7200) * 1000
    assert parse_time("2026-01-31T00:00:00Z", now=now) == 1_769_817_600_000
    assert parse_time("2026-01-31", now=now) == 1_769_817_600_000
    with pytest.raises(ConfigError):
        parse_time("yesterday", now=now)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_logs_periodically_off_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = Progress(
        stream=io.StringIO(), clock=clock, budget=Budget(60, 1000, "ping"), tty=False, interval=10
    )
    caplog.set_level("INFO", logger="bridge.replay")
    for i in range(100):
        clock.now = i * 0.5
        progress.update(events_read=i, events_total=100)
    assert len(caplog.records) == 5  # t = 0, 10, 20, 30, 40
    assert "events 80/100" in caplog.records[-1].getMessage()


def test_progress_bar_on_a_terminal_shows_calls_left_and_eta() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(stream=out, clock=clock, budget=Budget(60, None, "ping"), tty=True)
    progress.update(phase="send", calls_sent=0, calls_left=120)
    clock.now = 10.0
    progress.update(calls_sent=10, calls_left=110)
    assert progress.eta() == pytest.approx(110 * 60.5 / 60)  # paced budget is slower than this pace
    progress.finish()
    line = out.getvalue().split("\r")[-1]
    assert "calls sent 10, left 110, ETA 1m51s" in line
    assert line.endswith("\n")


@pytest.mark.parametrize(
    ("settings", "ping"),
    [
        (MeisaSettings(), PingInfo()),
        (MeisaSettings(rate_limit_per_minute=30), PingInfo(rate_limit_per_hour=None)),
        (MeisaSettings(rate_limit_per_hour=500, rate_share=0.5), PingInfo()),
        (MeisaSettings(), PingInfo(rate_limit_per_minute=None, rate_limit_per_hour=None)),
    ],
)
def test_the_budget_uses_the_limits_the_governor_paces_with(
    settings: MeisaSettings, ping: PingInfo
) -> None:
    from bridge.meisa.governor import RateGovernor

    governor = RateGovernor.from_ping(ping, settings)
    budget = budget_from(settings, ping)
    expected = None
    if budget.per_minute is not None:  # the share of it, floored to one at least
        expected = max(1, math.floor(budget.per_minute * budget.share))
    assert governor.per_minute == expected
