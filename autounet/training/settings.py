"""The training hyper-parameters that are groups of numbers: augmentation, loss weights, and how a time budget's
schedule is fitted and kept. Each is a field of :class:`~autounet.training.config.TrainingConfig`, saved with the
run in training_config.json; the defaults are the recipe autounet was measured with (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentationSettings:
    """The augmentation recipe (nnU-Net's defaults): a probability per sample and a range for each transform."""

    rotation_3d_degrees: float = 30.0
    """Maximum rotation about each axis of a 3D patch."""
    rotation_2d_degrees: float = 180.0
    """Maximum in-plane rotation of a 2D patch (and of an anisotropic 3D patch's slices)."""
    anisotropy_threshold: float = 3.0
    """A 3D patch whose largest edge is more than this many times its first (through-plane) edge is augmented
    slice by slice, as nnU-Net does ("dummy 2D"): rotated and scaled in-plane only, its first axis neither
    rotated, scaled nor resampled, and not sampled larger along it."""
    p_rotation: float = 0.2
    scale_range: tuple[float, float] = (0.7, 1.4)
    p_scale: float = 0.2
    p_deformation: float = 0.0
    """Chance per sample of an elastic deformation before rotation and scaling: every output voxel moved by a
    random field (uniform noise in [-1, 1] per axis, Gaussian-smoothed with ``deformation_sigma`` voxels, times
    ``deformation_alpha``). nnU-Net's default recipe does not deform (its v1 ranges are the defaults below)."""
    deformation_alpha: tuple[float, float] = (0.0, 200.0)
    deformation_sigma: tuple[float, float] = (9.0, 13.0)
    sampling_enlargement: float = 1 / 0.85
    """Extra margin of the sampled patch beyond the rotated patch's bounding box, for zooming out."""
    noise_variance: tuple[float, float] = (0.0, 0.1)
    p_noise: float = 0.1
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_blur: float = 0.2
    p_blur_per_channel: float = 0.5
    brightness_range: tuple[float, float] = (0.75, 1.25)
    p_brightness: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0)
    p_low_resolution: float = 0.25
    p_low_resolution_per_channel: float = 0.5
    gamma_range: tuple[float, float] = (0.7, 1.5)
    p_gamma_inverted: float = 0.1
    p_gamma: float = 0.3
    mirror: bool = True
    """Mirror along every spatial axis, each with probability 0.5."""

    def problems(self) -> list[str]:
        """What makes these settings unusable (probabilities outside 0..1, ranges that run backwards)."""
        found = [f"augmentation.{name} must be between 0 and 1" for name, value in vars(self).items()
                 if name.startswith("p_") and not 0.0 <= value <= 1.0]
        found += [f"augmentation.{name} must be (low, high) with low <= high" for name, value in vars(self).items()
                  if isinstance(value, tuple) and not (len(value) == 2 and value[0] <= value[1])]
        return found


@dataclass(frozen=True)
class LossWeights:
    """How the loss terms are summed: cross-entropy (or BCE for regions) and soft Dice per output, and the weight
    of each deep-supervision output, halving (``deep_supervision_decay``) per scale from the full resolution."""

    cross_entropy: float = 1.0
    dice: float = 1.0
    deep_supervision_decay: float = 0.5


@dataclass(frozen=True)
class TimeScheduleSettings:
    """How a time budget's schedule is fitted to the measured seconds and kept while the run trains."""

    max_iterations_per_epoch: int = 250
    """nnU-Net's epoch length; longer budgets add epochs, not longer epochs."""
    target_epochs: int = 50
    """Short budgets split their iterations into about this many epochs, so the rate has steps to anneal."""
    validation_share: float = 0.2
    """Pseudo-Dice validation iterations per training iteration (nnU-Net's 50 per 250)."""
    epoch_overhead_guess: float = 0.5
    """Seconds per epoch for checkpoints, log and plot until whole epochs have been timed."""
    epoch_overhead_share: float = 0.1
    """At most this share of the training time may go to per-epoch overhead (checkpoints, log, plot)."""
    tta_max_share: float = 0.2
    """Validation uses mirroring TTA only when that costs at most this share of the budget."""
    epoch_safety: float = 1.05
    """Remaining epochs are fitted with the recent epochs' time times this, so noise does not overrun the budget."""
    recent_epochs: int = 3
    """Remaining epochs are projected at the median time of this many recent epochs."""
    refit_early_share: float = 0.25
    """While fewer than this share of the epochs are done, the epoch total may also grow (a slow start, e.g.
    another job on the machine, is not held against the whole run)."""
    regrow_until_share: float = 0.75
    """After the first ``refit_early_share`` and until this share of the epochs is done, the total may grow back
    by one epoch at a time when the slowest recent epoch leaves room for two more after the planned ones (time
    freed after a slow stretch is trained); later it only shrinks, keeping the slack that covers a slowdown
    near the end. Chosen on the clock's simulation (tests/training/test_budget.py: 30 % jitter per epoch and a 3x
    slowdown in the last epochs must not overrun), not on the datasets whose runs docs/benchmarks.md reports."""
    last_epochs_caution: int = 2
    """When this many epochs or fewer are left, they are projected at the slowest recent epoch, not the median."""
    calibration_iterations: int = 5
    """Real training iterations (after the first) timed to re-fit the schedule at the start of training."""


TIME_SCHEDULE = TimeScheduleSettings()
