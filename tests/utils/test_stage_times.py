"""StageTimes: each second counted once, in the innermost stage running."""

from __future__ import annotations

import autounet.utils.stage_times as stage_times
from autounet.utils.stage_times import StageTimes, describe_stages


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nested_stages_are_counted_once_and_add_up_to_the_elapsed_time(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(stage_times.time, "perf_counter", clock)
    times = StageTimes()
    with times.measure("preprocess"):
        clock.now += 2.0
        with times.measure("network"):  # e.g. a cascade's first stage inside the second's preprocessing
            clock.now += 5.0
        clock.now += 1.0
    with times.measure("network"):
        clock.now += 3.0
    with times.measure("write"):
        clock.now += 0.5
    assert times.seconds == {"preprocess": 3.0, "network": 8.0, "write": 0.5}
    assert sum(times.seconds.values()) == clock.now


def test_a_stage_that_raises_is_still_counted(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(stage_times.time, "perf_counter", clock)
    times = StageTimes()
    try:
        with times.measure("read"):
            clock.now += 1.5
            raise ValueError("unreadable")
    except ValueError:
        pass
    assert times.seconds == {"read": 1.5}


def test_description_gives_seconds_and_shares_in_the_order_stages_ran():
    assert describe_stages({"read": 1.0, "network": 3.0}) == "read 1.0 s (25%), network 3.0 s (75%)"
