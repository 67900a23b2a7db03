"""Loss, deep supervision and pseudo-Dice on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from autounet.network.loss import (DeepSupervisionLoss, LossSettings, deep_supervision_weights, downsample_labels,
                                    single_scale_loss)
from autounet.training.pseudo_dice import dice_from_counts, patch_counts


def _half_labels() -> torch.Tensor:
    labels = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    labels[..., :, 2:] = 1
    return labels


def test_weights_halve_and_sum_to_one():
    weights = deep_supervision_weights(4)
    assert sum(weights) == pytest.approx(1.0)
    assert [weights[i] / weights[i + 1] for i in range(3)] == pytest.approx([2, 2, 2])


def test_uniform_logits_give_hand_computed_loss():
    labels = _half_labels()
    settings = LossSettings(num_outputs=2, smooth=0.0)
    loss = single_scale_loss(torch.zeros(1, 2, 4, 4), labels, settings)
    # CE = ln 2; foreground Dice = 2 * (0.5 * 8) / (0.5 * 16 + 8) = 0.5
    assert float(loss) == pytest.approx(math.log(2) + 0.5, abs=1e-6)


def test_perfect_logits_give_zero_loss():
    labels = _half_labels()
    logits = torch.cat([(labels == 0).float(), (labels == 1).float()], 1) * 50
    assert float(single_scale_loss(logits, labels, LossSettings(2))) == pytest.approx(0.0, abs=1e-5)


def test_ignore_label_is_excluded():
    labels = _half_labels()
    logits = torch.cat([(labels == 0).float(), (labels == 1).float()], 1) * 50
    with_ignore = labels.clone()
    with_ignore[..., 0, :] = 7
    logits_wrong = logits.clone()
    logits_wrong[..., 0, :] = torch.flip(logits[..., 0, :], [1])  # wrong only where the label is ignored
    settings = LossSettings(2, ignore_label=7)
    assert float(single_scale_loss(logits_wrong, with_ignore, settings)) == pytest.approx(0.0, abs=1e-5)
    assert float(single_scale_loss(logits_wrong, labels, LossSettings(2))) > 1.0


def test_regions_use_sigmoid_and_bce():
    labels = torch.tensor([[[[0, 1], [2, 2]]]])
    settings = LossSettings(2, regions=[[1, 2], [2]], smooth=0.0)
    loss = single_scale_loss(torch.zeros(1, 2, 2, 2), labels, settings)
    # BCE = ln 2; region Dice: (1,2) covers 3 of 4 -> 2*1.5/(2+3) = 0.6, (2) covers 2 -> 2*1/(2+2) = 0.5
    assert float(loss) == pytest.approx(math.log(2) + 1 - 0.55, abs=1e-6)


def test_deep_supervision_targets_and_weighted_sum():
    labels = torch.arange(16).view(1, 1, 4, 4) % 2
    targets = downsample_labels(labels, [[1.0, 1.0], [0.5, 0.5], [0.25, 0.25]])
    assert [tuple(t.shape[2:]) for t in targets] == [(4, 4), (2, 2), (1, 1)]
    assert torch.equal(targets[1], labels[..., ::2, ::2])
    outputs = [torch.randn(1, 2, *t.shape[2:], generator=torch.Generator().manual_seed(i))
               for i, t in enumerate(targets)]
    settings = LossSettings(2)
    combined = DeepSupervisionLoss(settings, 3)(outputs, targets)
    expected = sum(w * single_scale_loss(o, t, settings)
                   for w, o, t in zip([4 / 7, 2 / 7, 1 / 7], outputs, targets))
    assert float(combined) == pytest.approx(float(expected))


def test_pseudo_dice_counts():
    labels = torch.tensor([[[[0, 1, 1, 2]]]])
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, 1, 0, 1] = logits[0, 1, 0, 3] = 5  # predicts 0,1,0,1
    counts = patch_counts(logits, labels, LossSettings(3))
    assert counts[:, 0].tolist() == [1, 1, 1]  # class 1: tp, fp, fn
    assert counts[:, 1].tolist() == [0, 0, 1]
    assert dice_from_counts(counts) == pytest.approx([0.5, 0.0])
    assert math.isnan(dice_from_counts(torch.zeros(3, 1))[0])
