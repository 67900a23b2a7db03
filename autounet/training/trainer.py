"""``train_fold``: train one configuration on one fold, built from the parts in this package.

The loop is small: per epoch, set the learning rate, run the training
iterations, run the validation iterations, then (rank 0 only) checkpoint and
log. Each part has one job: the batch stream (:mod:`.workers`), the steps and
loss, the optimiser and schedule, checkpointing, the run log.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from autounet.errors import UserError
from autounet.hardware import cpu_cores, detect_accelerator
from autounet.network import build_network
from autounet.paths import DatasetLocation
from autounet.training import distributed
from autounet.preprocessing.store import CaseStore
from autounet.training.batches import BatchRecipe
from autounet.training.budget import format_duration
from autounet.training.budget_clock import (BudgetClock, fastest_threads, measure_step_seconds, time_batch_size,
                                           measure_validation_cost)
from autounet.training.checkpoint import (EpochRecord, ResumePoint, TrainingState, has_training_state,
                                          load_training_state, restore_rng, save_training_state, save_weights)
from autounet.training.config import RUNTIME_FIELDS, TrainingConfig
from autounet.training.console import EpochProgress
from autounet.training.cpu_speed import speed_up_for_cpu
from autounet.training.distributed import Ranks
from autounet.training.loss import DeepSupervisionLoss
from autounet.training.optim import make_optimizer, poly_lr, set_lr
from autounet.training.pseudo_dice import dice_from_counts, update_ema
from autounet.training.run_log import plot_progress, summary_line, write_log_csv
from autounet.training.setup import (FoldSetup, check_resumable, prepare_fold, stored_config, write_config,
                                     write_run_files)
from autounet.training.steps import StepParts, train_step, validation_step
from autounet.training.workers import BatchStream
from autounet.utils.progress import console


@dataclass
class Run:
    """One rank's live training: inputs, config, network (unwrapped), step parts and state."""

    setup: FoldSetup
    config: TrainingConfig
    ranks: Ranks
    net: torch.nn.Module
    parts: StepParts
    state: TrainingState


def default_data_workers(device_kind: str, ranks: Ranks) -> int:
    """Data workers per rank: on a GPU most of the cores; on the CPU one, since compute needs the cores."""
    if device_kind == "cpu":
        return 1
    return max(1, min(12, cpu_cores() // ranks.world_size - 1))


def _device(kind: str, ranks: Ranks) -> torch.device:
    if kind == "cuda":
        torch.cuda.set_device(ranks.local_rank)
        return torch.device("cuda", ranks.local_rank)
    if ranks.distributed and kind == "mps":
        raise UserError("distributed training (--gpus > 1 or torchrun) is not supported on Apple MPS.")
    return torch.device(kind)


def _resume_point(setup: FoldSetup, config: TrainingConfig, resume: bool) -> tuple[TrainingConfig, ResumePoint | None]:
    """The config to train with and where to start: from scratch, or the folder's latest checkpoint."""
    if not has_training_state(setup.fold_dir):
        if resume:
            console.print(f"{setup.fold_dir}: no checkpoint to resume; starting from scratch.")
        return config, None
    stored = stored_config(setup.fold_dir)
    if stored is None:
        raise UserError(f"{setup.fold_dir}: has a checkpoint but no training_config.json; cannot resume.")
    point = load_training_state(setup.fold_dir)
    done = point.state.epochs_done
    if not resume:
        if done < stored.epochs:
            raise UserError(f"{setup.fold_dir}: holds an unfinished run ({done} of {stored.epochs} epochs); pass "
                            f"--resume to continue it, or delete the folder to start over.")
        if config.epochs <= done:
            raise UserError(f"{setup.fold_dir}: already holds a finished run of {done} epochs; pass --epochs N "
                            f"(more than {done}) to extend it, or delete the folder to train again.")
        console.print(f"{setup.fold_dir}: extending the finished run from {done} to {config.epochs} epochs.")
    check_resumable(setup, stored)
    config = stored.with_overrides(**{name: getattr(config, name) for name in RUNTIME_FIELDS})
    return config, point


def build_run(setup: FoldSetup, config: TrainingConfig, ranks: Ranks, device: torch.device,
               point: ResumePoint | None) -> Run:
    torch.manual_seed(config.seed)
    net = build_network(setup.plan.network).to(device)
    fast_cpu = config.cpu_fast_kernels and device.type == "cpu"
    if fast_cpu:
        net = speed_up_for_cpu(net)
    optimizer = make_optimizer(net, config)
    scaler = torch.amp.GradScaler("cuda") if config.amp and device.type == "cuda" else None
    state = TrainingState(config.configuration, config.fold)
    if point is not None:
        net.load_state_dict(point.model_state)
        optimizer.load_state_dict(point.optimizer_state)
        restore_rng(point.rng)
        state = point.state
        if scaler is not None and state.grad_scaler:
            scaler.load_state_dict(state.grad_scaler)
    model: torch.nn.Module = net
    if ranks.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        model = torch.compile(model)
    loss = DeepSupervisionLoss(setup.loss, len(setup.plan.network.output_scales()))
    parts = StepParts(model, loss, optimizer, scaler, device, setup.plan.network.output_scales(), config.grad_clip,
                      channels_last=fast_cpu)
    return Run(setup, config, ranks, net, parts, state)


def _mean_across(values: list[float], ranks: Ranks) -> float:
    total = distributed.sum_across(torch.tensor([sum(values), len(values)], dtype=torch.float64), ranks)
    return float(total[0] / total[1]) if total[1] > 0 else math.nan


def run_epoch(run: Run, stream: BatchStream, epoch: int, clock: BudgetClock | None = None) -> EpochRecord:
    """Train and validate one epoch; returns its log record (identical on every rank).

    With a budget ``clock`` the epoch stops early (without validation iterations) when time runs out.
    """
    config, parts = run.config, run.parts
    lr = poly_lr(config.learning_rate, epoch, config.epochs, config.poly_exponent)
    set_lr(parts.optimizer, lr)
    start, waited, losses, cut = time.perf_counter(), 0.0, [], False
    run.net.train()
    seconds_per_epoch = run.state.log[-1].seconds if run.state.log else None
    with EpochProgress(epoch, config.epochs, config.iterations_per_epoch, seconds_per_epoch,
                       enabled=run.ranks.is_main) as bar:
        for iteration in range(config.iterations_per_epoch):
            before = time.perf_counter()
            batch = next(stream)
            waited += time.perf_counter() - before
            losses.append(train_step(parts, batch))
            bar.advance(losses[-1])
            if clock is not None and not clock.iteration_done(iteration + 1):
                cut = True
                break
    train_seconds = time.perf_counter() - start
    run.net.eval()
    val_losses, counts = [], torch.zeros(3, len(run.setup.class_names), dtype=torch.float64)
    val_iterations = 0 if cut else config.val_iterations
    for _ in range(val_iterations):
        loss, batch_counts = validation_step(parts, run.net, next(stream))
        val_losses.append(loss)
        counts += batch_counts
    run.net.train()
    dice = dice_from_counts(distributed.sum_across(counts, run.ranks))
    scored = [d for d in dice if not math.isnan(d)]
    mean_dice = sum(scored) / len(scored) if scored else math.nan
    ema = update_ema(run.state.ema_pseudo_dice, mean_dice, config.pseudo_dice_ema)
    return EpochRecord(epoch, _mean_across(losses, run.ranks), _mean_across(val_losses, run.ranks), dice, ema,
                       lr, time.perf_counter() - start, waited / train_seconds if train_seconds > 0 else 0.0,
                       completed=not cut)


def finish_epoch(run: Run, record: EpochRecord) -> None:
    """Update the state; on rank 0 write the best/latest checkpoints, log.csv and progress.png."""
    state = run.state
    state.epochs_done = record.epoch + 1
    state.ema_pseudo_dice = record.ema_pseudo_dice
    state.log.append(record)
    if run.parts.scaler is not None:
        state.grad_scaler = run.parts.scaler.state_dict()
    improved = not math.isnan(record.ema_pseudo_dice) and (
        state.best_ema_pseudo_dice is None or record.ema_pseudo_dice > state.best_ema_pseudo_dice)
    if improved:
        state.best_ema_pseudo_dice, state.best_epoch = record.ema_pseudo_dice, record.epoch
    if not run.ranks.is_main:
        return
    folder = run.setup.fold_dir
    weights = run.net.state_dict()
    if improved:
        save_weights(weights, folder / "model_best.safetensors")
    save_weights(weights, folder / "model_latest.safetensors")
    save_training_state(folder, state, weights, run.parts.optimizer)
    write_log_csv(state.log, run.setup.class_names, folder / "log.csv")
    plot_progress(state.log, run.setup.class_names, folder / "progress.png")
    console.print(summary_line(record, run.setup.class_names, run.config.epochs), highlight=False,
                  markup=False, soft_wrap=True)


def fit_to_budget(run: Run, clock: BudgetClock, batch: int) -> TrainingConfig:
    """Measure this machine, fit the schedule to the budget's remaining time, save and print it."""
    setup, plan = run.setup, run.setup.plan
    steps = fastest_threads(lambda: measure_step_seconds(plan.network, list(plan.patch_size), batch,
                                                         run.parts.device, fast_cpu=run.parts.channels_last),
                            run.parts.device)
    validation = measure_validation_cost(plan, CaseStore(setup.store_folder), list(setup.split.val),
                                         run.parts.device)
    timing = clock.fit(steps, batch, validation)
    timing.threads = torch.get_num_threads() if run.parts.device.type == "cpu" else None
    run.config = run.config.with_overrides(epochs=timing.epochs, iterations_per_epoch=timing.iterations_per_epoch,
                                           val_iterations=timing.val_iterations,
                                           validation_tta=timing.validation_tta, budget_timing=timing)
    write_config(setup.fold_dir, run.config)
    console.print(timing.describe(), highlight=False)
    return run.config


def choose_budget_batch(run: Run) -> int:
    """A duration budget's batch when none was given: the one ``plan --budget`` timed, else measured now."""
    setup = run.setup
    budget = setup.plans.time_budget
    timed = budget.selected(setup.plan.name) if budget is not None else None
    if timed is not None and 0 < timed.batch_size <= setup.plan.batch_size:
        batch, source = timed.batch_size, "as `autounet plan --budget` timed it"
    else:
        batch, timings = time_batch_size(setup.plan.network, list(setup.plan.patch_size), setup.plan.batch_size,
                                         run.parts.device, fast_cpu=run.parts.channels_last)
        source = "timed: " + ", ".join(f"{t.batch_size} -> {1000 * t.seconds_per_sample:.1f} ms/sample"
                                       for t in timings)
    setup.global_batch_size = batch
    run.config = run.config.with_overrides(batch_size=batch)
    if budget is None or round(budget.budget_seconds) != round(run.config.time_budget_seconds or 0):
        console.print(f"budget: the network is the one planned for memory; `autounet plan {setup.plans.dataset_name} "
                      f"--budget {format_duration(run.config.time_budget_seconds or 0)}` fits it to this budget "
                      f"(narrower or smaller patches when the planned one buys too few iterations).",
                      highlight=False)
    console.print(f"budget: batch {batch} (the plan's {setup.plan.batch_size} is sized for memory; the smallest "
                  f"batch at full samples per second buys the most updates; {source})", highlight=False)
    return batch


def keep_within_budget(run: Run, clock: BudgetClock, completed: bool) -> None:
    """After an epoch: take the clock's epoch total (re-fitted after the first real iterations, or cut short)."""
    planned = run.config.epochs
    epochs = clock.epoch_done(completed)
    run.config = run.config.with_overrides(epochs=epochs, budget_timing=clock.timing)
    write_config(run.setup.fold_dir, run.config)
    if epochs != planned and run.ranks.is_main:
        measured = clock.timing.measured_seconds_per_iteration
        early = (" The machine slowed down too late to re-fit the rate: the run stops before its rate has annealed "
                 "fully." if clock.timing.last_epoch_unplanned else "")
        console.print(f"budget: {measured:.3f} s per real iteration here; the schedule now ends after {epochs} "
                      f"epochs (was {planned}) so that training and validation fit the budget.{early}",
                      highlight=False)


def train_rank(location: DatasetLocation, config: TrainingConfig, resume: bool, ranks: Ranks) -> Run:
    """Everything one training process does, from setup to ``model_final``; returns the finished run."""
    clock = BudgetClock(config.time_budget_seconds) if config.time_budget_seconds else None
    if clock is not None and ranks.distributed:
        raise UserError("a duration --budget trains in one process; use a preset (quick, standard, full) or "
                        "--epochs with --gpus > 1.")
    accelerator = detect_accelerator(config.device)
    device = _device(accelerator.kind, ranks)
    if device.type == "cpu":
        torch.set_num_threads(max(1, cpu_cores() // ranks.world_size))
    distributed.init(ranks, device.type)
    try:
        setup = prepare_fold(location, config)
        config, point = _resume_point(setup, config, resume)
        if ranks.is_main:
            write_run_files(setup, config)
            if device.type == "cpu" and setup.plan.network.conv_dim == 3:
                console.print(f"training on the CPU ({torch.get_num_threads()} threads): 3D training there is "
                              f"slow; a GPU is many times faster.")
        distributed.barrier(ranks)
        run = build_run(setup, config, ranks, device, point)
        if run.state.epochs_done >= config.epochs:
            if ranks.is_main:
                console.print(f"{setup.fold_dir}: already trained {run.state.epochs_done} epochs; pass --epochs "
                              f"with a larger number to extend it.")
            return run
        if clock is not None and point is None and config.batch_size is None:
            choose_budget_batch(run)
            config = run.config
        batch = distributed.rank_batch_size(setup.global_batch_size, ranks)
        if batch < 1:
            raise UserError(f"batch size {setup.global_batch_size} is smaller than the {ranks.world_size} "
                            f"processes; use fewer --gpus or a larger --batch-size.")
        recipe = BatchRecipe(setup.store_folder, setup.split.train, setup.split.val, list(setup.plan.patch_size),
                             batch, config.oversample_foreground, config.augment, config.seed, ranks.rank,
                             setup.previous_stage_values)
        workers = config.num_workers if config.num_workers is not None else default_data_workers(device.type, ranks)
        if clock is not None and point is None:
            config = fit_to_budget(run, clock, batch)
        with BatchStream(recipe, run.state.epochs_done, config.iterations_per_epoch, config.val_iterations,
                         workers) as stream:
            epoch = run.state.epochs_done
            timed = clock if clock is not None and clock.timing is not None else None
            while epoch < run.config.epochs:
                if timed is not None:
                    timed.epoch_started()
                record = run_epoch(run, stream, epoch, timed)
                finish_epoch(run, record)
                epoch += 1
                if timed is not None:
                    keep_within_budget(run, timed, record.completed)
        if ranks.is_main:
            save_weights(run.net.state_dict(), setup.fold_dir / "model_final.safetensors")
        distributed.barrier(ranks)
        return run
    finally:
        distributed.shutdown()
