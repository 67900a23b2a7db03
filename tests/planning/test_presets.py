"""Network presets (``plan --preset``): the residual-encoder rules, the memory target, and plans that record them."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.errors import UserError
from autounet.network import build_network
from autounet.network.residual_unet import ResidualBlock, ResidualEncoderUNet
from autounet.planning.configurations import plan_configurations
from autounet.planning.fit import max_batch_by_dataset
from autounet.planning.memory import estimate_training_memory_gb
from autounet.planning.plans import HardwareInfo, Plans, load_plans, save_plans
from autounet.planning.presets import PRESETS, preset, preset_memory_budget
from tests.planning.fingerprints import make_fingerprint, mri_like


@pytest.fixture(scope="module")
def resenc_m():
    return plan_configurations(mri_like(), num_classes=3, budget_gb=8.0, names=["3d_fullres"],
                               preset_name="resenc-m")["3d_fullres"]


def test_presets_are_chosen_by_name_and_an_unknown_one_is_one_sentence():
    assert preset(None).name == "default" and preset("ResEnc-L").name == "resenc-l"
    assert [PRESETS[n].memory_target_gb for n in ("resenc-m", "resenc-l", "resenc-xl")] == [11.0, 24.0, 40.0]
    with pytest.raises(UserError, match="--preset must be one of default, resenc-m, resenc-l, resenc-xl, not 'big'"):
        preset("big")


def test_encoder_blocks_follow_nnunet_and_repeat_the_last_count():
    assert preset("resenc-xl").encoder_counts(3) == [1, 3, 4]
    assert preset("resenc-m").encoder_counts(8) == [1, 3, 4, 6, 6, 6, 6, 6]
    assert preset("default").encoder_counts(5) == [2] * 5


@pytest.mark.parametrize("explicit, device, offered, expected", [
    (True, "cuda", 11.0, 11.0),    # --gpu-memory replaces the target
    (True, "cpu", 60.0, 60.0),
    (False, "cuda", 11.0, 11.0),   # a smaller GPU caps it
    (False, "cuda", 80.0, 24.0),   # a larger GPU does not raise it
    (False, "cpu", 8.0, 24.0),     # no GPU: the target
])
def test_the_memory_target_meets_the_hardware(explicit, device, offered, expected):
    gb, note = preset_memory_budget(preset("resenc-l"), offered, explicit, device)
    assert gb == expected and "resenc-l" in note


def test_the_default_preset_keeps_the_budget_it_is_given():
    assert preset_memory_budget(preset("default"), 80.0, False, "cuda") == (80.0, "")


def test_resenc_plan_has_residual_encoder_blocks_and_one_decoder_conv(resenc_m):
    network = resenc_m.network
    assert network.architecture == "residual_encoder"
    assert network.n_conv_per_stage == preset("resenc-m").encoder_counts(network.num_stages)
    assert network.n_conv_per_stage_decoder == [1] * (network.num_stages - 1)
    assert resenc_m.estimated_memory_gb <= 8.0


def test_resenc_batch_fills_memory_without_the_five_percent_cap(resenc_m):
    """nnU-Net's ResEnc planners drop the 5 % cap: the batch grows until the next one would not fit."""
    fingerprint = mri_like()
    dataset_voxels = np.prod(resenc_m.median_shape, dtype=float) * len(fingerprint.cases)  # as the planner counts
    assert resenc_m.batch_size > max_batch_by_dataset(resenc_m.patch_size, dataset_voxels)
    assert estimate_training_memory_gb(resenc_m.network, resenc_m.patch_size, resenc_m.batch_size + 1) > 8.0
    default = plan_configurations(fingerprint, 3, 8.0, ["3d_fullres"])["3d_fullres"]
    assert default.network.architecture == "plain" and default.network.n_conv_per_stage == [2] * 4


def test_a_batch_never_covers_more_than_the_whole_dataset():
    fingerprint = make_fingerprint((36, 50, 35), (1.0, 1.0, 1.0), n_cases=3)
    plan = plan_configurations(fingerprint, 3, 40.0, ["3d_fullres"], preset_name="resenc-xl")["3d_fullres"]
    dataset_voxels = np.prod(plan.median_shape, dtype=float) * len(fingerprint.cases)
    assert plan.batch_size == max_batch_by_dataset(plan.patch_size, dataset_voxels, 1.0)
    assert estimate_training_memory_gb(plan.network, plan.patch_size, plan.batch_size) < 40.0


def test_a_larger_preset_trains_more_voxels_per_step(resenc_m):
    larger = plan_configurations(mri_like(), 3, 24.0, ["3d_fullres"], preset_name="resenc-l")["3d_fullres"]
    step = lambda p: np.prod(p.patch_size) * p.batch_size  # noqa: E731
    assert step(larger) > 2 * step(resenc_m) and larger.estimated_memory_gb <= 24.0


def test_the_planned_network_builds_with_the_planned_blocks(resenc_m):
    with torch.device("meta"):
        model = build_network(resenc_m.network, initialize=False)
    assert isinstance(model, ResidualEncoderUNet)
    blocks = sum(isinstance(m, ResidualBlock) for m in model.modules())
    assert blocks == sum(resenc_m.network.n_conv_per_stage)


def test_plans_record_the_preset_and_old_plans_load_as_default(tmp_path, resenc_m):
    fingerprint = mri_like()
    named = copy.deepcopy(resenc_m)
    named.name = "3d_fullres_resenc-m"
    plans = Plans(dataset_name="Dataset900_Handmade", hardware=HardwareInfo(device="cpu"), memory_budget_gb=8.0,
                  configurations={named.name: named}, intensity_stats=fingerprint.channels, preset="resenc-m")
    path = save_plans(plans, tmp_path)
    loaded = load_plans(tmp_path)
    assert loaded.preset == "resenc-m"
    assert loaded.configuration("3d_fullres_resenc-m").network.architecture == "residual_encoder"
    old = json.loads(path.read_text())
    del old["preset"]
    for configuration in old["configurations"].values():
        del configuration["network"]["architecture"]
    path.write_text(json.dumps(old))
    assert load_plans(tmp_path).preset == "default"
    assert load_plans(tmp_path).configuration("3d_fullres_resenc-m").network.architecture == "plain"


def test_plan_command_takes_the_preset_and_gpu_memory_replaces_its_target(nifti_dataset, data_root):
    runner = CliRunner()
    result = runner.invoke(app, ["plan", str(nifti_dataset), "--preset", "resenc-l", "--gpu-memory", "4",
                                 "-c", "3d_fullres", "-w", "1"])
    assert result.exit_code == 0, result.output
    assert "preset resenc-l planned for 4 GB (--gpu-memory) instead of its 24 GB target" in result.output
    plans = load_plans(data_root / "preprocessed" / nifti_dataset.name)
    assert plans.preset == "resenc-l" and plans.memory_budget_gb == 4.0
    plan = plans.configuration("3d_fullres_resenc-l")
    assert plan.network.architecture == "residual_encoder" and plan.estimated_memory_gb <= 4.0


def test_plan_command_refuses_an_unknown_preset_in_one_sentence(nifti_dataset, data_root):
    result = CliRunner().invoke(app, ["plan", str(nifti_dataset), "--preset", "resenc-s", "-w", "1"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--preset must be one of default, resenc-m, resenc-l, resenc-xl, not 'resenc-s'." in result.output


def test_planning_for_the_target_does_not_also_say_the_hardware_budget():
    from autounet.planning.memory_budget import MemoryBudget
    from autounet.planning.planner import apply_preset

    cpu = MemoryBudget(8.0, HardwareInfo(device="cpu"), ["no GPU found: planning for a GPU with 8 GB"])
    planned = apply_preset(cpu, "resenc-l", explicit=False)
    assert planned.gb == 24.0 and planned.notes == ["preset resenc-l: planning for its 24 GB target"]
    small = MemoryBudget(11.0, HardwareInfo(device="cuda", total_memory_gb=11.0), ["planning for a GPU with 11 GB"])
    capped = apply_preset(small, "resenc-l", explicit=False)
    assert capped.gb == 11.0 and len(capped.notes) == 2 and "less than the preset's 24 GB" in capped.notes[1]
    assert apply_preset(small, None, explicit=False) is small
