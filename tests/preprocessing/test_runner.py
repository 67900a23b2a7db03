"""The bounded process pool: per-item errors, early stop, a dead worker."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

from autounet.preprocessing.runner import run_bounded
from tests.preprocessing.pool_tasks import die_on_two, square_or_fail


def test_results_and_errors_per_item_in_one_and_two_processes():
    for workers in (1, 2):
        outcomes = {o.item: o for o in run_bounded(square_or_fail, list(range(6)), workers, "test")}
        assert sorted(outcomes) == list(range(6))
        assert {i: o.result for i, o in outcomes.items() if o.ok} == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}
        assert isinstance(outcomes[3].error, ValueError)


def test_a_dead_worker_is_reported_for_the_unfinished_items():
    outcomes = list(run_bounded(die_on_two, list(range(12)), 2, "test"))
    assert sorted(o.item for o in outcomes) == list(range(12))
    broken = [o.item for o in outcomes if isinstance(o.error, BrokenProcessPool)]
    assert 2 in broken and all(o.ok for o in outcomes if o.item not in broken)
