"""The private torch API the memory model depends on behaves as it assumes; this fails first on a torch release
that changes it."""

from __future__ import annotations

import torch

from autounet.planning.memory import LiveBytesTracker
from autounet.planning.torch_dispatch import TorchDispatchMode, tensors_in


def test_a_dispatch_mode_sees_every_operator_and_its_result_tensors():
    seen = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            seen.append((str(func), [tuple(t.shape) for t in tensors_in(result)]))
            return result

    with Recorder():
        x = torch.ones(2, 3, device="meta")
        values, indices = torch.max(x, dim=1)
    assert values.shape == indices.shape == (2,)
    assert any("ones" in name and shapes == [(2, 3)] for name, shapes in seen), seen
    assert any("max" in name and shapes == [(2,), (2,)] for name, shapes in seen), seen


def test_the_tracker_counts_live_storage_bytes_and_their_release():
    with LiveBytesTracker() as tracker:
        a = torch.empty(1000, dtype=torch.float32, device="meta")
        b = torch.empty(500, dtype=torch.float16, device="meta")
        del a
        c = torch.empty(10, dtype=torch.float32, device="meta")
    assert tracker.peak == 4000 + 1000
    assert tracker.timeline == [4000, 5000, 1040]
    del b, c


def test_tensors_in_nested_results():
    t = torch.zeros(1)
    assert tensors_in(t) == [t]
    assert tensors_in((t, [t, None], {"a": t}, 3)) == [t, t, t]
