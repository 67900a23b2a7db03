"""Fitting patch and batch to a budget: never over it, monotone in memory, clear error when nothing fits."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.errors import PlanningError
from autounet.planning.fit import fit_to_budget, shrink_sequence
from autounet.planning.memory import estimate_training_memory_gb

LARGE_DATASET = 1e12  # voxels: the 5 % batch cap never binds, so memory alone decides


def fit(budget: float, spacing=(1.0, 1.0, 1.0), shape=(160, 192, 160)):
    return fit_to_budget(list(spacing), list(shape), 1, 3, budget, LARGE_DATASET)


def test_shrink_sequence_only_shrinks():
    sequence = shrink_sequence([3.0, 0.8, 0.8], [60, 400, 400])
    volumes = [np.prod(t.patch_size) for t in sequence]
    assert all(a > b for a, b in zip(volumes, volumes[1:]))
    assert all(t.num_stages >= 2 for t in sequence)


@pytest.mark.parametrize("spacing, shape", [((1.0, 1.0, 1.0), (160, 192, 160)), ((3.0, 0.8, 0.8), (60, 400, 400))])
def test_more_memory_never_gives_less_patch_times_batch(spacing, shape):
    previous = 0.0
    for budget in (2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 16.0, 24.0):
        fitted = fit(budget, spacing, shape)
        assert fitted.estimated_memory_gb <= budget
        assert fitted.estimated_memory_gb == pytest.approx(
            estimate_training_memory_gb(fitted.network, fitted.patch_size, fitted.batch_size))
        voxels = float(np.prod(fitted.patch_size)) * fitted.batch_size
        assert voxels >= previous, budget
        previous = voxels


def test_batch_grows_until_the_next_one_would_not_fit():
    fitted = fit(8.0, shape=(40, 56, 40))
    assert fitted.patch_size == [40, 56, 40]
    assert estimate_training_memory_gb(fitted.network, fitted.patch_size, fitted.batch_size + 1) > 8.0


def test_too_small_budget_is_refused():
    with pytest.raises(PlanningError, match="too small for any network"):
        fit(0.5)


def test_dataset_cap_limits_the_batch():
    fitted = fit_to_budget([1.0, 1.0, 1.0], [36, 50, 35], 1, 3, 8.0, dataset_voxels=36 * 50 * 35 * 40)
    assert fitted.batch_size == max(2, round(0.05 * 36 * 50 * 35 * 40 / (40 * 56 * 40)))
