"""The training config: every hyper-parameter of a run in one typed dataclass, saved with the run.

Schedule presets set the schedule (epochs x iterations per epoch); any field can
be overridden from the CLI or the Python API without a subclass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from autounet.errors import UserError
from autounet.measure.settings import BatchSearchSettings
from autounet.planning.time_budget import MIN_TRAINING_ITERATIONS, time_budget_seconds
from autounet.training.schedule_fit import TimeBudgetTiming
from autounet.training.settings import AugmentationSettings, LossWeights, TimeScheduleSettings


@dataclass(frozen=True)
class SchedulePreset:
    """A schedule preset: epochs x training iterations per epoch, and validation iterations per epoch."""

    epochs: int
    iterations_per_epoch: int
    val_iterations: int


SCHEDULE_PRESETS: dict[str, SchedulePreset] = {
    "quick": SchedulePreset(epochs=5, iterations_per_epoch=20, val_iterations=5),
    "standard": SchedulePreset(epochs=250, iterations_per_epoch=250, val_iterations=50),
    "full": SchedulePreset(epochs=1000, iterations_per_epoch=250, val_iterations=50),
}
"""``full`` is the nnU-Net recipe (1000 epochs of 250 iterations); ``quick`` finishes in minutes on a CPU."""


DEFAULT_LEARNING_RATES = {"sgd": 0.01, "adamw": 1e-3}
"""The initial learning rate each optimiser starts from unless one is given (nnU-Net's 0.01 for SGD)."""
SHORT_SCHEDULE_OPTIMIZER = "adamw"
"""Time budgets and short schedule presets train with AdamW: measured on Hippocampus 2d (batch 16, 200 iterations),
AdamW at 1e-3 reached Dice 0.74 where SGD with momentum 0.99 was still at 0 (docs/benchmarks.md)."""
SHORT_SCHEDULE_ITERATIONS = 10_000
"""Presets with fewer training iterations than this are short (``quick``); ``standard`` and ``full`` keep
nnU-Net's SGD, the recipe validated at those lengths."""


@dataclass
class TrainingConfig:
    """Everything that decides how one fold is trained.

    ``batch_size=None`` takes the plan's batch size; ``num_workers=None``
    chooses data workers from the CPU cores; ``batch_dice=None`` means
    Dice over the whole batch for 2D configurations, per sample for 3D ones
    (as nnU-Net plans it).

    Example:
        >>> cfg = TrainingConfig.from_budget("quick", learning_rate=0.005)
        >>> (cfg.epochs, cfg.iterations_per_epoch, cfg.learning_rate)
        (5, 20, 0.005)
    """

    configuration: str = "3d_fullres"
    fold: int | str = 0
    budget: str = "standard"
    epochs: int = 250
    iterations_per_epoch: int = 250
    val_iterations: int = 50
    learning_rate: float = 0.01
    optimizer: str = "sgd"
    """``sgd`` (nnU-Net's: Nesterov momentum) or ``adamw`` (momentum and Nesterov are then unused)."""
    momentum: float = 0.99
    nesterov: bool = True
    weight_decay: float = 3e-5
    poly_exponent: float = 0.9
    grad_clip: float = 12.0
    batch_size: int | None = None
    oversample_foreground: float = 0.33
    """Share of each batch whose patch is centred on a foreground voxel."""
    augment: bool = True
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    """Probabilities and ranges of each augmentation transform (used when ``augment``)."""
    augment_on: str = "auto"
    """Where the augmentation runs: ``cpu`` (the data workers, batchgenerators), ``gpu`` (batched tensor operations
    on the training device, :mod:`~autounet.training.device_augment`; the workers only crop) or ``auto`` (``gpu``
    when training on CUDA without a cascade, else ``cpu``); a run records the choice it made."""
    loss_weights: LossWeights = field(default_factory=LossWeights)
    batch_dice: bool | None = None
    dice_smooth: float = 1e-5
    pseudo_dice_ema: float = 0.9
    compile: bool = False
    cpu_fast_kernels: bool = True
    """On the CPU: group norms for instance norms and channels-last tensors (same maths, faster; see cpu_speed)."""
    amp: bool = True
    num_workers: int | None = None
    seed: int = 12345
    device: str = "auto"
    gpus: int = 1
    save_probabilities: bool = False
    pretrained: str | None = None
    """A trained model to start from (fine-tuning): a fold or configuration folder, a model zip or an nnU-Net
    results folder (see :mod:`autounet.training.pretrained`)."""
    head_warmup_iterations: int = 0
    """With ``pretrained``: the first this many training iterations update only the segmentation heads (the loaded
    weights stay frozen), so that fresh heads' first large gradients do not disturb what the model had learned."""
    tracker: str = "none"
    """Where each epoch's metrics also go: ``none``, ``tensorboard`` or ``mlflow`` (optional packages)."""
    time_budget_seconds: float | None = None
    """A time budget (``--budget 30m``): the schedule is fitted to this machine when the run starts."""
    run_time_budget_seconds: float | None = None
    """The whole ``run --budget`` that ``time_budget_seconds`` is this fold's share of (None when the fold was
    trained on its own); a rerun of the same ``run`` continues the fold whatever share it would get now."""
    validation_tta: bool = True
    """Mirror the final validation predictions (a time budget turns it off when it would cost too much)."""
    time_schedule: TimeScheduleSettings = field(default_factory=TimeScheduleSettings)
    """How a time budget's schedule is fitted and kept (unused by presets)."""
    batch_search: BatchSearchSettings = field(default_factory=BatchSearchSettings)
    """How a time budget chooses its batch when ``batch_size`` is None and the plan has none timed."""
    budget_timing: TimeBudgetTiming | None = None
    """What a time budget measured and chose (written once the schedule is fitted)."""

    @classmethod
    def from_budget(cls, budget: str = "standard", **overrides) -> "TrainingConfig":
        """A config with ``budget``'s schedule, then ``overrides`` (fields left at None are ignored).

        ``budget`` is a preset name or a duration (``30m``, ``2h``, ``1h30m``): a duration's schedule is
        provisional until training measures the machine and fits it.
        """
        seconds = time_budget_seconds(budget)
        preset = SCHEDULE_PRESETS.get(budget)
        short = seconds is not None or (preset is not None
                                        and preset.epochs * preset.iterations_per_epoch < SHORT_SCHEDULE_ITERATIONS)
        optimizer = overrides.get("optimizer") or (SHORT_SCHEDULE_OPTIMIZER if short else "sgd")
        optimizer_fields = {"optimizer": optimizer, "learning_rate": DEFAULT_LEARNING_RATES.get(optimizer, 0.01)}
        if seconds is not None:
            config = cls(budget=budget, epochs=1, iterations_per_epoch=MIN_TRAINING_ITERATIONS, val_iterations=1,
                         time_budget_seconds=seconds, **optimizer_fields)
            return config.with_overrides(**overrides)
        if budget not in SCHEDULE_PRESETS:
            raise UserError(f"unknown budget '{budget}' (choose from {', '.join(SCHEDULE_PRESETS)}).")
        config = cls(budget=budget, epochs=preset.epochs, iterations_per_epoch=preset.iterations_per_epoch,
                     val_iterations=preset.val_iterations, **optimizer_fields)
        return config.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> "TrainingConfig":
        """A copy with the given fields replaced; None values keep the current value."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown training config fields: {', '.join(sorted(unknown))}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """Raise :class:`UserError` for values no run can use."""
        problems = []
        for name in ("epochs", "iterations_per_epoch", "gpus"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.val_iterations < 0:
            problems.append("val_iterations must be 0 or more")
        if self.learning_rate <= 0:
            problems.append("learning_rate must be positive")
        if self.batch_size is not None and self.batch_size < 1:
            problems.append("batch_size must be at least 1")
        if not 0.0 <= self.oversample_foreground <= 1.0:
            problems.append("oversample_foreground must be between 0 and 1")
        if self.optimizer not in ("sgd", "adamw"):
            problems.append(f"optimizer must be sgd or adamw, not '{self.optimizer}'")
        if self.device not in ("auto", "cuda", "mps", "cpu"):
            problems.append("device must be auto, cuda, mps or cpu")
        if self.head_warmup_iterations < 0:
            problems.append("head_warmup_iterations must be 0 or more")
        elif self.head_warmup_iterations and not self.pretrained:
            problems.append("head_warmup_iterations (--head-warmup) needs a pretrained model (--pretrained)")
        if self.augment_on not in AUGMENT_ON:
            problems.append(f"augment_on must be {', '.join(AUGMENT_ON[:-1])} or {AUGMENT_ON[-1]}")
        problems += self.augmentation.problems()
        if min(self.loss_weights.cross_entropy, self.loss_weights.dice) < 0 or (
                self.loss_weights.cross_entropy + self.loss_weights.dice <= 0):
            problems.append("loss_weights must be 0 or more, and not both 0")
        if not 0.0 < self.loss_weights.deep_supervision_decay <= 1.0:
            problems.append("loss_weights.deep_supervision_decay must be in (0, 1]")
        if problems:
            raise UserError("training config: " + "; ".join(problems) + ".")

    def resolved_augment_on(self, device_type: str, cascade: bool) -> str:
        """``cpu`` or ``gpu``: where this run augments on ``device_type`` (``auto`` resolved).

        Example:
            >>> [TrainingConfig().resolved_augment_on(d, False) for d in ("cuda", "cpu")]
            ['gpu', 'cpu']
        """
        if self.augment_on == "gpu" and cascade:
            raise UserError("--augment-on gpu does not augment a cascade's previous-stage input yet; use "
                            "--augment-on cpu (the default for cascades).")
        if self.augment_on != "auto":
            return self.augment_on
        return "gpu" if device_type == "cuda" and not cascade else "cpu"


AUGMENT_ON = ("auto", "gpu", "cpu")
"""Where augmentation may run (see :attr:`TrainingConfig.augment_on`)."""

RUNTIME_FIELDS = ("epochs", "num_workers", "device", "gpus", "compile", "cpu_fast_kernels", "save_probabilities",
                  "tracker")
"""Fields a resumed run may change; the rest must stay as the run was started to continue it exactly."""


def fold_name(fold: int | str) -> str:
    """The results sub-folder of a fold: ``fold_0`` ... or ``fold_all``."""
    return f"fold_{fold}"


def parse_fold(text: int | str) -> int | str:
    """A fold from user input: a non-negative integer, or ``all`` (train on every case)."""
    if isinstance(text, int) or str(text).isdigit():
        return int(text)
    if str(text).lower() == "all":
        return "all"
    raise UserError(f"fold '{text}' is not a fold number or 'all'.")
