"""Step timings remembered per machine (autounet.measure.timing_cache)."""

from __future__ import annotations

import torch

from autounet.measure import step_timing, timing_cache
from autounet.measure.step_timing import StepSeconds, measure_step_seconds
from autounet.network.config import NetworkConfig

NETWORK = NetworkConfig(2, 1, 2, [4, 8], [[3, 3], [3, 3]], [[1, 1], [2, 2]])


def test_a_network_timed_once_is_not_timed_again(monkeypatch):
    measured = []

    def fake_measure(*args):
        measured.append(args)
        return StepSeconds(0.25, 0.05)

    monkeypatch.setattr(step_timing, "_measure", fake_measure)
    cpu = torch.device("cpu")
    first = measure_step_seconds(NETWORK, [16, 16], 2, cpu)
    again = measure_step_seconds(NETWORK, [16, 16], 2, cpu)
    assert first == again == StepSeconds(0.25, 0.05) and len(measured) == 1
    measure_step_seconds(NETWORK, [16, 16], 4, cpu)  # another batch is another measurement
    measure_step_seconds(NETWORK, [16, 16], 2, cpu, remembered=False)  # benchmarks measure afresh
    assert len(measured) == 3
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        measure_step_seconds(NETWORK, [16, 16], 2, cpu)  # another thread count too
    finally:
        torch.set_num_threads(threads)
    assert len(measured) == 4


def test_the_cache_can_be_turned_off_and_survives_a_damaged_file(monkeypatch, tmp_path):
    monkeypatch.setenv(timing_cache.CACHE_ENV, "none")
    assert timing_cache.cache_file() is None
    timing_cache.remember("key", [1.0, 0.5])
    assert timing_cache.remembered("key") is None

    monkeypatch.setenv(timing_cache.CACHE_ENV, str(tmp_path))
    (tmp_path / timing_cache.FILE_NAME).write_text("{not json")
    assert timing_cache.remembered("key") is None
    timing_cache.remember("key", [1.0, 0.5])
    assert timing_cache.remembered("key") == [1.0, 0.5]
    (tmp_path / timing_cache.FILE_NAME).write_text('{"key": [1.0, -2]}')  # not a timing: ignored
    assert timing_cache.remembered("key") is None


def test_the_key_names_the_machine_and_the_measurement():
    cpu = torch.device("cpu")
    assert timing_cache.timing_key(cpu, batch=2) == timing_cache.timing_key(cpu, batch=2)
    assert timing_cache.timing_key(cpu, batch=2) != timing_cache.timing_key(cpu, batch=4)
    described = timing_cache.machine_description(cpu)
    assert described["torch"] == torch.__version__ and described["cores"] >= 1 and described["processor"]
