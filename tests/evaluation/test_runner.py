"""run_jobs: serial while cheap, worker processes when the rest would take long."""

import os

from autounet.evaluation import runner


def pid_and_square(job: int) -> tuple[int, int]:
    if job == 3:
        raise ValueError("three")
    return os.getpid(), job * job


def test_serial_by_default_for_quick_jobs():
    outcomes = list(runner.run_jobs(pid_and_square, list(range(6)), None, "quick"))
    assert [o.result[1] for o in outcomes if o.ok] == [0, 1, 4, 16, 25]
    assert {o.result[0] for o in outcomes if o.ok} == {os.getpid()}
    assert [str(o.error) for o in outcomes if not o.ok] == ["three"]


def test_switches_to_processes_when_the_rest_would_take_long(monkeypatch):
    monkeypatch.setattr(runner, "PARALLEL_WORTH_S", -1.0)
    monkeypatch.setattr(runner, "default_workers", lambda: 2)
    outcomes = list(runner.run_jobs(pid_and_square, list(range(6)), None, "slow"))
    assert sorted(o.result[1] for o in outcomes if o.ok) == [0, 1, 4, 16, 25]
    pids = [o.result[0] for o in outcomes if o.ok]
    assert pids[:2] == [os.getpid()] * 2 and os.getpid() not in pids[2:]
    assert [str(o.error) for o in outcomes if not o.ok] == ["three"]
