"""What ``plan --budget`` measured and chose, as plans.json records it (``time_budget``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from autounet.network.cost import ELEMENT_WEIGHT
from autounet.planning.time_budget import format_duration


@dataclass(frozen=True)
class TimePlanningSettings:
    """The thresholds of planning for time (the evidence for each is in docs/benchmarks.md)."""

    target_iterations: int = 2000
    """A configuration is made cheaper until the budget buys it this many iterations (ISBI 2012 at 30 minutes:
    the 512x512 plan's 228 iterations misclassified 8.2 % of the pixels)."""
    min_3d_iterations: int = 5000
    """3d_fullres is chosen once the budget buys its fitted network this many iterations (Hippocampus at 30
    minutes: 3d_fullres at 1,083 iterations scored below 2d at 6,300)."""
    skip_share: float = 0.25
    """A network predicted (from the cheapest one's timing, scaled by work per sample) to buy under this share of
    ``target_iterations`` is rejected without timing it; the prediction was within 2x on ISBI 2012 and PH2."""
    training_share: float = 0.8
    """The share of a fold's budget counted for training iterations; the rest is setup, pseudo-Dice and
    validation."""
    element_weight: float = ELEMENT_WEIGHT
    """Work of one activation element in convolution multiply-adds, for predicting a network's speed from a
    cheaper one's (:func:`~autounet.network.cost.sample_cost`)."""

    def rule(self) -> str:
        """The choice these thresholds make, in words (recorded in plans.json)."""
        return (f"each configuration made cheaper (half width, then a coarser grid where the labels survive it or "
                f"half patch edges) until it buys {self.target_iterations} iterations, down to the coarsest grid the "
                f"labels survive; 3d_fullres when it buys at least {self.min_3d_iterations} at its planned patch, "
                f"else 2d")


TIME_PLANNING = TimePlanningSettings()


@dataclass
class ConfigurationTiming:
    """One network measured on this machine: seconds per iteration and the iterations the budget buys."""

    configuration: str
    seconds_per_iteration: float
    seconds_per_forward: float
    """One inference forward pass of a patch; 0 for a variant rejected on its quick timing."""
    iterations: int
    batch_size: int = 0
    """The batch timed and trained under the budget (see :func:`~autounet.measure.batch_search.time_batch_size`);
    0 in plans written before the batch was chosen for time, meaning the plan's batch."""
    patch_size: list[int] = field(default_factory=list)
    features_per_stage: list[int] = field(default_factory=list)
    spacing: list[float] = field(default_factory=list)
    """The spacing of the patch's axes (a coarser grid than the plan's when the network was made cheaper so)."""
    selected: bool = True
    """Whether the configuration trains with this network (the others were timed on the way and rejected)."""
    estimated: bool = False
    """Predicted from a cheaper network's timing instead of measured (rejected as far too slow)."""
    batch_seconds: dict[int, float] = field(default_factory=dict)
    """Seconds per iteration of each batch size the batch search timed, from which ``batch_size`` was chosen
    (empty for a predicted timing, and in plans written before it was recorded)."""

    def describe(self) -> str:
        shape = f" patch {'x'.join(map(str, self.patch_size))}" if self.patch_size else ""
        shape += f" at {'x'.join(f'{s:g}' for s in self.spacing)}" if self.spacing else ""
        width = f" {self.features_per_stage[0]} features" if self.features_per_stage else ""
        about = "about " if self.estimated else ""
        searched = ""
        if self.selected and len(self.batch_seconds) > 1:
            searched = " (batches timed: " + ", ".join(f"{batch} -> {1000 * seconds / batch:.0f} ms/sample"
                                                         for batch, seconds in self.batch_seconds.items()) + ")"
        return (f"{self.configuration}{shape}{width} batch {self.batch_size}{searched} {about}"
                f"{self.seconds_per_iteration:.3f} s/iteration -> {self.iterations} iterations")


@dataclass
class TimeBudgetPlan:
    """What ``plan --budget DURATION`` measured and chose (in plans.json as ``time_budget``)."""

    budget_seconds: float
    """The budget for training and validating one fold."""
    device: str
    timings: list[ConfigurationTiming] = field(default_factory=list)
    chosen: str = ""
    rule: str = TIME_PLANNING.rule()
    settings: TimePlanningSettings = field(default_factory=TimePlanningSettings)
    """The thresholds the choice was made with (plans written before they were recorded hold the defaults)."""

    def selected(self, configuration: str) -> ConfigurationTiming | None:
        """The timing of the network ``configuration`` trains with under this budget, if it was timed."""
        return next((t for t in self.timings if t.configuration == configuration and t.selected), None)

    def describe(self) -> str:
        selected = "; ".join(t.describe() for t in self.timings if t.selected)
        rejected = [t.describe() for t in self.timings if not t.selected]
        tried = f" (timed and made cheaper: {'; '.join(rejected)})" if rejected else ""
        return (f"budget {format_duration(self.budget_seconds)} per fold on {self.device}: {selected}{tried}; "
                f"chosen: {self.chosen} (rule: {self.rule})")
