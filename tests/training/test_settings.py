"""Hyper-parameters as data: the defaults are the recipe autounet was measured with, and the saved config
round-trips JSON exactly, including configs saved before the groups existed."""

from __future__ import annotations

import json
import math

import pytest
import torch

from autounet.errors import UserError
from autounet.measure.settings import BatchSearchSettings
from autounet.network.cost import ELEMENT_WEIGHT
from autounet.network.loss import DeepSupervisionLoss, LossSettings
from autounet.planning.time_plan import TimePlanningSettings
from autounet.training.config import TrainingConfig
from autounet.training.overrides import apply_settings, settable_names
from autounet.training.settings import AugmentationSettings, LossWeights, TimeScheduleSettings
from autounet.utils.serde import load_dataclass, to_json_value


def test_defaults_are_the_measured_recipe():
    assert AugmentationSettings() == AugmentationSettings(
        rotation_3d_degrees=30.0, rotation_2d_degrees=180.0, anisotropy_threshold=3.0, p_rotation=0.2, scale_range=(0.7, 1.4), p_scale=0.2,
        p_deformation=0.0, deformation_alpha=(0.0, 200.0), deformation_sigma=(9.0, 13.0),
        sampling_enlargement=1 / 0.85, noise_variance=(0.0, 0.1), p_noise=0.1, blur_sigma=(0.5, 1.0), p_blur=0.2,
        p_blur_per_channel=0.5, brightness_range=(0.75, 1.25), p_brightness=0.15, contrast_range=(0.75, 1.25),
        p_contrast=0.15, low_resolution_zoom=(0.5, 1.0), p_low_resolution=0.25, p_low_resolution_per_channel=0.5,
        gamma_range=(0.7, 1.5), p_gamma_inverted=0.1, p_gamma=0.3, mirror=True)
    assert LossWeights() == LossWeights(cross_entropy=1.0, dice=1.0, deep_supervision_decay=0.5)
    assert TimeScheduleSettings() == TimeScheduleSettings(
        max_iterations_per_epoch=250, target_epochs=50, validation_share=0.2, epoch_overhead_guess=0.5,
        epoch_overhead_share=0.1, tta_max_share=0.2, epoch_safety=1.05, recent_epochs=3, refit_early_share=0.25,
        last_epochs_caution=2, calibration_iterations=5)
    assert TimePlanningSettings() == TimePlanningSettings(target_iterations=2000, min_3d_iterations=5000,
                                                          skip_share=0.25, training_share=0.8, element_weight=2000.0)
    assert ELEMENT_WEIGHT == 2000.0
    assert TrainingConfig().batch_search == BatchSearchSettings(throughput_tolerance=1.15, min_batch_size=2)
    config = TrainingConfig()
    assert (config.optimizer, config.learning_rate, config.momentum, config.nesterov, config.weight_decay,
            config.poly_exponent, config.grad_clip, config.oversample_foreground, config.dice_smooth) == \
        ("sgd", 0.01, 0.99, True, 3e-5, 0.9, 12.0, 0.33, 1e-5)


def test_the_augmentation_built_from_the_defaults_is_the_recipe():
    from autounet.training.augment import build_augmentation

    spatial, noise, blur, brightness, contrast, low_res, gamma_inverted, gamma, mirror = \
        build_augmentation([16, 16, 16]).transforms
    assert (spatial.p_rot_per_sample, spatial.p_scale_per_sample, spatial.scale) == (0.2, 0.2, (0.7, 1.4))
    assert spatial.angle_x == (-math.radians(30), math.radians(30))
    assert (noise.p_per_sample, blur.p_per_sample, brightness.p_per_sample, contrast.p_per_sample) == \
        (0.1, 0.2, 0.15, 0.15)
    assert (low_res.p_per_sample, gamma_inverted.p_per_sample, gamma.p_per_sample) == (0.25, 0.1, 0.3)
    assert type(mirror).__name__ == "MirrorTransform"
    assert len(build_augmentation([16, 16], AugmentationSettings(mirror=False)).transforms) == 8


def test_the_config_round_trips_json_exactly_and_old_files_load_with_defaults():
    config = apply_settings(TrainingConfig.from_budget("30m"), ["augmentation.p_rotation=0.35",
                                                               "augmentation.scale_range=[0.8, 1.25]",
                                                               "loss_weights.dice=2", "time_schedule.recent_epochs=4"])
    text = json.dumps(to_json_value(config))
    again = load_dataclass(TrainingConfig, json.loads(text))
    assert again == config and json.dumps(to_json_value(again)) == text
    assert again.augmentation.scale_range == (0.8, 1.25) and again.loss_weights.dice == 2.0
    old = to_json_value(TrainingConfig.from_budget("quick"))
    for name in ("augmentation", "loss_weights", "time_schedule", "batch_search"):
        del old[name]
    loaded = load_dataclass(TrainingConfig, old)
    assert loaded == TrainingConfig.from_budget("quick")


def test_set_reaches_every_field_and_refuses_unknown_or_wrong_values():
    names = settable_names()
    assert {"learning_rate", "augmentation.p_gamma", "loss_weights.deep_supervision_decay",
            "time_schedule.epoch_safety"} <= set(names)
    with pytest.raises(UserError, match="augmentation.p_spin=1"):
        apply_settings(TrainingConfig(), ["augmentation.p_spin=1"])
    with pytest.raises(UserError, match="not a number"):
        apply_settings(TrainingConfig(), ["momentum=fast"])
    with pytest.raises(UserError, match="augmentation.p_noise must be between 0 and 1"):
        apply_settings(TrainingConfig(), ["augmentation.p_noise=1.5"]).check()


def test_loss_weights_weigh_the_terms():
    logits = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4)]
    targets = [torch.randint(0, 3, (2, 1, 8, 8)), torch.randint(0, 3, (2, 1, 4, 4))]
    plain = DeepSupervisionLoss(LossSettings(3), 2)(logits, targets)
    ce_only = DeepSupervisionLoss(LossSettings(3, dice_weight=0.0), 2)(logits, targets)
    dice_only = DeepSupervisionLoss(LossSettings(3, cross_entropy_weight=0.0), 2)(logits, targets)
    assert float(plain) == pytest.approx(float(ce_only + dice_only))
    flat = DeepSupervisionLoss(LossSettings(3, deep_supervision_decay=1.0), 2)
    assert flat.weights == [0.5, 0.5]
