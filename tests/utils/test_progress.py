"""Progress inside one slow step of a loop (the tiles of a large case)."""

from __future__ import annotations

import autounet.utils.progress as progress


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_fast_step_shows_nothing_and_a_slow_one_prints_lines_in_a_log(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    monkeypatch.setattr(progress, "is_interactive", lambda: False)
    for _ in progress.track_within(range(50), "tiles", total=50):
        clock.now += 0.01  # 0.5 s in all
    assert capsys.readouterr().err == ""
    seen = []
    for n in progress.track_within(range(1, 11), "tiles", total=10, after_seconds=3, every_seconds=10):
        seen.append(n)
        clock.now += 4.0  # 40 s in all: lines at 12 s, 24 s and 36 s of the step, none after the last part
    assert seen == list(range(1, 11))
    assert capsys.readouterr().err.splitlines() == ["  tiles: 3/10 (12 s)", "  tiles: 6/10 (24 s)",
                                                    "  tiles: 9/10 (36 s)"]


def test_in_a_terminal_a_slow_step_joins_the_running_bar_and_leaves_it(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    monkeypatch.setattr(progress, "is_interactive", lambda: True)
    bar = progress.make_progress(transient=True)
    monkeypatch.setattr(progress, "_bars", [bar])
    completed = []
    for _ in progress.track_within(range(6), "tiles", total=6, after_seconds=3):
        clock.now += 1.0
        completed.append([(t.description, t.completed) for t in bar.tasks])
    # From the third part on (3 s) the bar has a "tiles" task that follows the count.
    assert completed[:2] == [[], []]
    assert completed[3] == [("  tiles", 3)] and completed[5] == [("  tiles", 5)]
    assert bar.tasks == []
