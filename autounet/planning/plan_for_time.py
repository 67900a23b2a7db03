"""Plan for time: measure candidate networks' training iterations here and choose what a budget buys.

Two rules, each backed by runs in docs/benchmarks.md ("Quality at a time budget"):

* **Network and patch for time** (:func:`fit_for_time`): a network that buys only a few hundred iterations stays
  under-trained, so each configuration walks down :func:`~autounet.planning.variants.cheaper_variants` (half
  the width, then a 2x coarser grid where the labels survive it or else half the patch edges) until one buys
  :data:`TARGET_ITERATIONS` -- but never stops above a coarser grid the labels survive: on PH2 the full
  resolution, which buys enough at 2 hours, scored below the 4x coarser grid at 30 minutes.
* **2d or 3d_fullres** (:func:`choose_configuration`): 3d_fullres only once its fitted network buys
  :data:`MIN_3D_ITERATIONS`; below that a 2D network trained for many more iterations was better.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autounet.errors import UserError
from autounet.measure.batch_search import candidate_batches, time_batch_size
from autounet.measure.step_timing import measure_step_seconds
from autounet.measure.threads import fastest_threads
from autounet.network.cost import sample_cost
from autounet.planning.time_budget import MIN_TRAINING_ITERATIONS, TimeBudgetTooSmallError
from autounet.planning.time_plan import TIME_PLANNING, ConfigurationTiming, TimeBudgetPlan, TimePlanningSettings
from autounet.planning.timing_allowance import TimingAllowance

if TYPE_CHECKING:
    from autounet.planning.plans import ConfigurationPlan

CANDIDATES = ("2d", "3d_fullres")
TARGET_ITERATIONS = TIME_PLANNING.target_iterations
MIN_3D_ITERATIONS = TIME_PLANNING.min_3d_iterations
SKIP_SHARE = TIME_PLANNING.skip_share
TRAINING_SHARE = TIME_PLANNING.training_share
RULE = TIME_PLANNING.rule()
"""The default :class:`~autounet.planning.time_plan.TimePlanningSettings`' thresholds by name (its fields say the
evidence behind each); every function here takes ``settings`` to use others."""


def iterations_bought(budget_seconds: float, seconds_per_iteration: float,
                      settings: TimePlanningSettings = TIME_PLANNING) -> int:
    """Training iterations that fit a fold's budget at ``seconds_per_iteration``.

    Example:
        >>> iterations_bought(1800, 0.5)
        2880
    """
    return int(budget_seconds * settings.training_share / seconds_per_iteration)


def choose_configuration(timings: list[ConfigurationTiming], shrunk_patches: frozenset[str] = frozenset(),
                         settings: TimePlanningSettings = TIME_PLANNING) -> str:
    """The configuration to train among the selected ``timings``, by ``settings.rule()``; a UserError when the
    budget buys too few iterations of any.

    ``shrunk_patches`` names the configurations whose patch was halved for time: a 3D network with a halved
    patch is not the one the 3d rule was measured with (a 10x14x10 patch buys many iterations but little
    context), so 3d_fullres is then chosen only when 2d is not usable. Monotone in the budget: more time means
    more iterations and larger patches, so once 3d_fullres is chosen a larger budget keeps it.
    """
    usable = {t.configuration: t for t in timings if t.iterations >= MIN_TRAINING_ITERATIONS}
    if not usable:
        fastest = min(timings, key=lambda t: t.seconds_per_iteration)
        enough = 2 * MIN_TRAINING_ITERATIONS * fastest.seconds_per_iteration / settings.training_share
        raise TimeBudgetTooSmallError(f"it buys fewer than {MIN_TRAINING_ITERATIONS} training iterations of any "
                                      f"configuration ({fastest.configuration}: {fastest.seconds_per_iteration:.2f} "
                                      f"s per iteration), before setup and validation", enough)
    full = usable.get("3d_fullres")
    enough_3d = (full is not None and full.iterations >= settings.min_3d_iterations
                 and "3d_fullres" not in shrunk_patches)
    if full is not None and (enough_3d or "2d" not in usable):
        return "3d_fullres"
    return "2d" if "2d" in usable else next(iter(usable))


def _timing(plan: ConfigurationPlan, budget_seconds: float, seconds_per_iteration: float, batch: int,
            seconds_per_forward: float = 0.0, estimated: bool = False,
            batch_seconds: dict[int, float] | None = None,
            settings: TimePlanningSettings = TIME_PLANNING) -> ConfigurationTiming:
    """The record of ``plan`` at ``batch`` taking ``seconds_per_iteration`` (not yet selected)."""
    from autounet.planning.variants import patch_spacing

    return ConfigurationTiming(plan.name, seconds_per_iteration, seconds_per_forward,
                               iterations_bought(budget_seconds, seconds_per_iteration, settings), batch,
                               list(plan.patch_size), list(plan.network.features_per_stage), patch_spacing(plan),
                               selected=False, estimated=estimated, batch_seconds=batch_seconds or {})


def time_configuration(plan: ConfigurationPlan, budget_seconds: float, torch_device,
                       batch: int, deadline: float | None = None) -> ConfigurationTiming:
    """Seconds per training iteration and per forward pass of ``plan`` at ``batch``, measured here with the
    faster of one and all CPU threads (cut short at ``deadline``, a ``time.perf_counter()``)."""
    import torch

    threads = torch.get_num_threads()
    steps = fastest_threads(lambda: measure_step_seconds(plan.network, list(plan.patch_size), batch, torch_device,
                                                         deadline=deadline), torch_device)
    torch.set_num_threads(threads)
    return _timing(plan, budget_seconds, steps.training_iteration, batch, steps.forward)


def quick_timing(plan: ConfigurationPlan, budget_seconds: float, torch_device,
                 deadline: float | None = None) -> ConfigurationTiming:
    """The batch search's own timing of ``plan`` (all threads, no forward pass: ``seconds_per_forward`` 0), enough
    to reject a network that buys far too few iterations without timing it thoroughly (cut short at
    ``deadline``)."""
    batch, batch_timings = time_batch_size(plan.network, list(plan.patch_size), plan.batch_size, torch_device,
                                           deadline=deadline)
    timed = {t.batch_size: t.seconds_per_iteration for t in batch_timings}
    return _timing(plan, budget_seconds, timed[batch], batch, batch_seconds=timed)


def predicted_timing(plan: ConfigurationPlan, budget_seconds: float, reference_plan: ConfigurationPlan,
                     reference: ConfigurationTiming,
                     settings: TimePlanningSettings = TIME_PLANNING) -> ConfigurationTiming:
    """``plan``'s seconds per iteration at its smallest batch, predicted from ``reference`` (a measured timing
    of ``reference_plan``) in proportion to the work per sample."""
    batch = candidate_batches(plan.batch_size)[0]
    per_sample = reference.seconds_per_iteration / reference.batch_size
    weight = settings.element_weight
    ratio = (sample_cost(plan.network, plan.patch_size, weight)
             / sample_cost(reference_plan.network, reference_plan.patch_size, weight))
    return _timing(plan, budget_seconds, per_sample * ratio * batch, batch, estimated=True, settings=settings)


def fit_for_time(plan: ConfigurationPlan, budget_seconds: float, torch_device,
                 timings: list[ConfigurationTiming], label_dice=None,
                 settings: TimePlanningSettings = TIME_PLANNING, allowance: TimingAllowance | None = None,
                 shared_by: int = 1) -> ConfigurationPlan:
    """The first of :func:`~autounet.planning.variants.cheaper_variants` that buys ``settings.target_iterations``
    and has no coarser grid below it on the ladder (the cheapest when none does), timed thoroughly; the rejected
    variants' timings (quick, or predicted when far too slow, ``settings.skip_share``, or above a coarser grid)
    and then the selected one's are appended to ``timings``. ``label_dice`` is passed on to the ladder (coarser
    grids).

    With an ``allowance`` (shared with ``shared_by - 1`` configurations still to plan), a network is measured only
    when the allowance covers it; otherwise its predicted timing stands. The cheapest network is always measured
    (it is the others' reference), and a remembered timing (:mod:`~autounet.measure.timing_cache`) costs nothing.
    """
    from autounet.planning.variants import cheaper_variants, grid_factor

    allowance = allowance or TimingAllowance()
    ladder = cheaper_variants(plan, label_dice)
    coarsest_grid = max(range(len(ladder)), key=lambda i: (grid_factor(plan, ladder[i]), -i))
    def counted(timing: ConfigurationTiming) -> ConfigurationTiming:
        timing.iterations = iterations_bought(budget_seconds, timing.seconds_per_iteration, settings)
        return timing

    target = settings.target_iterations
    deadline = allowance.deadline()
    cheapest = counted(quick_timing(ladder[-1], budget_seconds, torch_device, deadline=deadline))
    for index, variant in enumerate(ladder):
        if index == len(ladder) - 1:
            quick = cheapest
            break
        predicted = predicted_timing(variant, budget_seconds, ladder[-1], cheapest, settings)
        if index < coarsest_grid or predicted.iterations < settings.skip_share * target:
            timings.append(predicted)
            continue
        if allowance.affords(predicted.seconds_per_iteration, shared_by):
            quick = counted(quick_timing(variant, budget_seconds, torch_device, deadline=deadline))
        else:
            quick = predicted
        if quick.iterations >= target:
            break
        timings.append(quick)
    if not quick.estimated and allowance.affords(quick.seconds_per_iteration, shared_by):
        selected = counted(time_configuration(variant, budget_seconds, torch_device, quick.batch_size,
                                              deadline=deadline))
        selected.batch_seconds = quick.batch_seconds
    else:
        selected = quick
    selected.selected = True
    timings.append(selected)
    return variant


def halved_patches(planned: dict[str, ConfigurationPlan], fitted: dict[str, ConfigurationPlan]) -> frozenset[str]:
    """The configurations whose patch :func:`fit_for_time` changed (for :func:`choose_configuration`)."""
    return frozenset(name for name, plan in fitted.items() if plan.patch_size != planned[name].patch_size)


def plan_time_budget(configurations: dict[str, ConfigurationPlan], budget_seconds: float, device: str = "cpu",
                     label_dice=None, settings: TimePlanningSettings = TIME_PLANNING,
                     allowance: TimingAllowance | None = None,
                     ) -> tuple[TimeBudgetPlan, dict[str, ConfigurationPlan]]:
    """Time each candidate configuration and its cheaper variants on ``device``; fit each to the budget and
    choose one. Returns the record for plans.json and the time-fitted plans of the candidates.

    ``label_dice(factor)``, the labels' Dice on an in-plane grid ``factor`` times coarser
    (``Fingerprint.label_dice_when_coarsened``), lets a 2d network trade resolution for context. ``allowance``
    limits the time spent measuring (``run --budget`` counts planning inside its budget); the configurations
    share it equally."""
    import torch

    from autounet.utils.progress import track

    names = [name for name in CANDIDATES if name in configurations]
    if not names:
        raise UserError(f"a time budget plans among {', '.join(CANDIDATES)}; none of them was planned.")
    torch_device = torch.device("cuda" if device == "cuda" else device)
    timings: list[ConfigurationTiming] = []
    allowance = allowance or TimingAllowance()
    fitted = {name: fit_for_time(configurations[name], budget_seconds, torch_device, timings, label_dice, settings,
                                 allowance, shared_by=len(names) - index)
              for index, name in enumerate(track(names, description="timing training iterations"))}
    chosen = choose_configuration([t for t in timings if t.selected], halved_patches(configurations, fitted),
                                  settings)
    return TimeBudgetPlan(budget_seconds, device, timings, chosen, settings.rule(), settings), fitted
