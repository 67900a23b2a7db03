"""``plan --verify``'s shrink-and-retry logic (the real CUDA measurement needs a GPU; here a stand-in measures)."""

from __future__ import annotations

import pytest

from autounet.errors import UserError
from autounet.planning.configurations import plan_configurations
from autounet.planning.verify_step import verify_configurations
from tests.planning.fingerprints import make_fingerprint

BUDGET = 4.0


def memory_bound_fingerprint():
    return make_fingerprint((160, 192, 160), (1.0, 1.0, 1.0), 400)


def replan(name: str, budget_gb: float):
    return plan_configurations(memory_bound_fingerprint(), 3, budget_gb, [name])[name]


def test_overshooting_configuration_is_replanned_smaller_until_it_fits():
    planned = {"3d_fullres": replan("3d_fullres", BUDGET)}
    first = planned["3d_fullres"]

    def measure_30_percent_over(plan, amp):  # a GPU whose real step needs 30 % more than estimated
        return plan.estimated_memory_gb * 1.3

    verified = verify_configurations(planned, BUDGET, replan, measure=measure_30_percent_over)["3d_fullres"]
    assert verified.measured_memory_gb <= BUDGET
    assert verified.measured_memory_gb == pytest.approx(verified.estimated_memory_gb * 1.3, abs=1e-3)
    smaller = verified.batch_size * verified.patch_size[0] * verified.patch_size[1] * verified.patch_size[2]
    assert smaller < first.batch_size * first.patch_size[0] * first.patch_size[1] * first.patch_size[2]


def test_fitting_configuration_keeps_its_plan_and_records_the_measurement():
    planned = {"3d_fullres": replan("3d_fullres", BUDGET)}
    verified = verify_configurations(planned, BUDGET, replan, measure=lambda plan, amp: 3.5)["3d_fullres"]
    assert verified.measured_memory_gb == 3.5 and verified.patch_size == planned["3d_fullres"].patch_size


def test_a_step_that_never_fits_is_an_error():
    planned = {"3d_fullres": replan("3d_fullres", BUDGET)}
    with pytest.raises(UserError, match="still needs more"):
        verify_configurations(planned, BUDGET, replan, measure=lambda plan, amp: float("inf"))


def test_the_verification_step_trains_on_the_cpu():
    import torch

    from autounet.network import NetworkConfig, build_network
    from autounet.planning.plans import ConfigurationPlan
    from autounet.planning.verify_step import real_training_step

    network = NetworkConfig(3, 1, 3, [4, 8], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]])
    plan = ConfigurationPlan("3d_fullres", "3d_fullres", False, [1.0] * 3, [8, 8, 8], [8, 8, 8], 2, network,
                             ["zscore"], [False])
    torch.manual_seed(0)
    untrained = build_network(network)
    torch.manual_seed(0)
    trained = real_training_step(plan, "cpu", amp=False)  # the same code runs on CUDA under --verify
    pairs = list(zip(untrained.parameters(), trained.parameters()))
    assert all(torch.isfinite(after).all() for _, after in pairs)
    assert any(not torch.equal(before, after) for before, after in pairs)
