"""Plan for time: measure each candidate configuration's training iteration here and choose what a budget buys.

The rule (:func:`choose_configuration`) is provisional until ``bench/quality.py`` has measured it: a 3D
network sees the whole volume's context but needs many iterations to converge, a 2D one converges in fewer
iterations; so ``3d_fullres`` is chosen when the budget buys it at least :data:`MIN_3D_ITERATIONS`
iterations, else ``2d``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autounet.errors import UserError
from autounet.training.budget import MIN_TRAINING_ITERATIONS, format_duration

if TYPE_CHECKING:
    from autounet.planning.plans import ConfigurationPlan

CANDIDATES = ("2d", "3d_fullres")
MIN_3D_ITERATIONS = 1000
"""3d_fullres is chosen once the budget buys it this many iterations (nnU-Net's schedule compressed to 250
3D iterations reached Dice 0.791 on Hippocampus; 2D networks converge in fewer). To be confirmed by bench/quality.py."""
TRAINING_SHARE = 0.8
"""The share of a fold's budget counted for training iterations; the rest is setup, pseudo-Dice and validation."""
RULE = (f"3d_fullres when the budget buys it at least {MIN_3D_ITERATIONS} training iterations, else 2d "
        f"(provisional: to be confirmed by bench/quality.py)")


@dataclass
class ConfigurationTiming:
    """One configuration measured on this machine: seconds per iteration and the iterations the budget buys."""

    configuration: str
    seconds_per_iteration: float
    seconds_per_forward: float
    iterations: int
    batch_size: int = 0
    """The batch timed and trained under the budget (see :func:`~autounet.training.budget_clock.time_batch_size`);
    0 in plans written before the batch was chosen for time, meaning the plan's batch."""


@dataclass
class TimeBudgetPlan:
    """What ``plan --budget DURATION`` measured and chose (in plans.json as ``time_budget``)."""

    budget_seconds: float
    """The budget for training and validating one fold."""
    device: str
    timings: list[ConfigurationTiming] = field(default_factory=list)
    chosen: str = ""
    rule: str = RULE

    def describe(self) -> str:
        parts = ", ".join(f"{t.configuration} batch {t.batch_size} {t.seconds_per_iteration:.3f} s/iteration -> "
                          f"{t.iterations} iterations" for t in self.timings)
        return f"budget {format_duration(self.budget_seconds)} per fold on {self.device}: {parts}; chosen: " \
               f"{self.chosen} (rule: {self.rule})"


def iterations_bought(budget_seconds: float, seconds_per_iteration: float) -> int:
    """Training iterations that fit a fold's budget at ``seconds_per_iteration``.

    Example:
        >>> iterations_bought(1800, 0.5)
        2880
    """
    return int(budget_seconds * TRAINING_SHARE / seconds_per_iteration)


def choose_configuration(timings: list[ConfigurationTiming]) -> str:
    """The configuration to train, by :data:`RULE`; a UserError when the budget buys too few iterations of any.

    Monotone in the budget: more time means more iterations for each, so once 3d_fullres is chosen a larger
    budget keeps it.
    """
    usable = {t.configuration: t for t in timings if t.iterations >= MIN_TRAINING_ITERATIONS}
    if not usable:
        fastest = min(timings, key=lambda t: t.seconds_per_iteration)
        enough = 2 * MIN_TRAINING_ITERATIONS * fastest.seconds_per_iteration / TRAINING_SHARE
        raise UserError(f"the budget buys fewer than {MIN_TRAINING_ITERATIONS} training iterations of any "
                        f"configuration ({fastest.configuration}: {fastest.seconds_per_iteration:.2f} s per "
                        f"iteration); give at least --budget {format_duration(enough)}.")
    full = usable.get("3d_fullres")
    if full is not None and (full.iterations >= MIN_3D_ITERATIONS or "2d" not in usable):
        return "3d_fullres"
    return "2d" if "2d" in usable else next(iter(usable))


def plan_time_budget(configurations: dict[str, ConfigurationPlan], budget_seconds: float,
                     device: str = "cpu") -> TimeBudgetPlan:
    """Measure each candidate configuration's training iteration on ``device`` and choose one for the budget."""
    import torch

    from autounet.training.budget_clock import fastest_threads, measure_step_seconds, time_batch_size
    from autounet.utils.progress import track

    names = [name for name in CANDIDATES if name in configurations]
    if not names:
        raise UserError(f"a duration budget plans among {', '.join(CANDIDATES)}; none of them was planned.")
    torch_device = torch.device("cuda" if device == "cuda" else device)
    threads = torch.get_num_threads()
    timings = []
    for name in track(names, description="timing training iterations"):
        plan = configurations[name]
        torch.set_num_threads(threads)
        batch, _ = time_batch_size(plan.network, list(plan.patch_size), plan.batch_size, torch_device)
        steps = fastest_threads(lambda: measure_step_seconds(plan.network, list(plan.patch_size), batch,
                                                             torch_device), torch_device)
        timings.append(ConfigurationTiming(name, steps.training_iteration, steps.forward,
                                           iterations_bought(budget_seconds, steps.training_iteration), batch))
    torch.set_num_threads(threads)
    return TimeBudgetPlan(budget_seconds, device, timings, choose_configuration(timings))
