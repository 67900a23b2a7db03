"""The faster CPU thread setting, all of torch's threads or one, as measured now."""

from __future__ import annotations

from typing import Callable

import torch

from autounet.measure.step_timing import StepSeconds


def fastest_threads(measure: Callable[[], StepSeconds], device: torch.device) -> StepSeconds:
    """Run ``measure()`` with torch's threads and with one thread on the CPU; keep the faster setting.

    On a CPU shared with other jobs, several threads waiting for each other can be many times slower than
    one thread; a time budget takes whichever is faster now.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        return measure()
    torch.set_num_threads(1)
    single = measure()
    torch.set_num_threads(threads)
    several = measure()
    if single.training_iteration < several.training_iteration:
        torch.set_num_threads(1)
        return single
    return several
