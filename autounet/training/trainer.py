"""``train_fold``: train one configuration on one fold, built from the parts in this package.

The loop is small: per epoch, set the schedule's learning rate, run the training
iterations (until the schedule says stop), run the validation iterations, then
(rank 0 only) checkpoint, log and record the schedule. Each part has one job: the
batch stream (:mod:`.workers`), the steps and loss, the optimiser, the schedule
(:mod:`.schedule`: a preset's, or a time budget's), checkpointing, the run log.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import time
from pathlib import Path
from dataclasses import dataclass

import torch

from autounet.errors import UserError
from autounet.hardware import cpu_cores, detect_accelerator
from autounet.network import build_network
from autounet.network.cpu_speed import speed_up_for_cpu
from autounet.network.loss import DeepSupervisionLoss
from autounet.paths import DatasetLocation
from autounet.training import distributed
from autounet.training.batches import BatchRecipe
from autounet.training.checkpoint import (EpochRecord, ResumePoint, TrainingState, has_training_state,
                                          load_training_state, restore_rng, restore_state_record,
                                          save_training_state, save_weights)
from autounet.training.config import RUNTIME_FIELDS, TrainingConfig
from autounet.training.device_augment import DeviceAugmentation
from autounet.training.console import EpochProgress
from autounet.training.distributed import Ranks
from autounet.training.optim import make_optimizer, set_lr
from autounet.training.pseudo_dice import dice_from_counts, update_ema
from autounet.training.run_log import TRAINING_LOG, plot_progress, summary_line, write_log_csv
from autounet.training.schedule import TrainingSchedule, schedule_for
from autounet.training.setup import (FoldSetup, check_resumable, prepare_fold, stored_config, with_loss_terms,
                                     write_config, write_run_files)
from autounet.training.pretrained import freeze_all_but_heads, load_pretrained
from autounet.training.steps import StepParts, train_step, validation_step
from autounet.training.tracking import open_tracker
from autounet.training.workers import BatchStream
from autounet.utils.locks import exclusive, shared
from autounet.utils.logs import debug, log_to
from autounet.utils.progress import console
from autounet.utils.serde import to_json_value


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
    net = build_network(setup.plan.network)
    if point is None and config.pretrained:
        loaded = load_pretrained(net, Path(config.pretrained), config.configuration, config.fold)
        if ranks.is_main:
            console.print(loaded.describe(), highlight=False, soft_wrap=True)
    net = net.to(device)
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
    # the loss terms of the config this run trains with (a resumed run's stored one)
    loss = DeepSupervisionLoss(with_loss_terms(setup.loss, config), len(setup.plan.network.output_scales()))
    augmentation = (DeviceAugmentation(list(setup.plan.patch_size), config.augmentation)
                    if config.augment and config.augment_on == "gpu" else None)
    parts = StepParts(model, loss, optimizer, scaler, device, setup.plan.network.output_scales(), config.grad_clip,
                      channels_last=fast_cpu, augmentation=augmentation)
    return Run(setup, config, ranks, net, parts, state)


def _mean_across(values: list[float], ranks: Ranks) -> float:
    total = distributed.sum_across(torch.tensor([sum(values), len(values)], dtype=torch.float64), ranks)
    return float(total[0] / total[1]) if total[1] > 0 else math.nan


def run_epoch(run: Run, stream: BatchStream, epoch: int, schedule: TrainingSchedule) -> EpochRecord:
    """Train and validate one epoch; returns its log record (identical on every rank).

    The epoch stops early (without validation iterations) when the schedule says so (a time budget running out).
    """
    config, parts = run.config, run.parts
    lr = schedule.learning_rate(epoch)
    set_lr(parts.optimizer, lr)
    start, waited, losses, cut = time.perf_counter(), 0.0, [], False
    run.net.train()
    done_before = sum(record.iterations or 0 for record in run.state.log)  # the run's iterations, resume-proof
    seconds_per_epoch = run.state.log[-1].seconds if run.state.log else None
    with EpochProgress(epoch, schedule.epochs, schedule.iterations_per_epoch, seconds_per_epoch,
                       enabled=run.ranks.is_main) as bar:
        for iteration in range(schedule.iterations_per_epoch):
            if config.head_warmup_iterations:
                freeze_all_but_heads(run.net, done_before + iteration < config.head_warmup_iterations)
            before = time.perf_counter()
            batch = next(stream)
            waited += time.perf_counter() - before
            losses.append(train_step(parts, batch))
            bar.advance(losses[-1])
            if not schedule.keep_training(iteration + 1):
                cut = True
                break
    train_seconds = time.perf_counter() - start
    run.net.eval()
    val_losses, counts = [], torch.zeros(3, len(run.setup.class_names), dtype=torch.float64)
    val_iterations = 0 if cut else schedule.val_iterations
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
                       completed=not cut, training_seconds=train_seconds, iterations=len(losses))


def finish_epoch(run: Run, record: EpochRecord, epochs: int) -> None:
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
    console.print(summary_line(record, run.setup.class_names, epochs), highlight=False,
                  markup=False, soft_wrap=True)


def complete_finished_run(run: Run) -> None:
    """A run whose resume point holds every epoch: write what a kill after its last checkpoint may have left
    missing or one epoch behind (``model_final``, ``state_latest.json``, ``log.csv``, ``progress.png``), all from
    that checkpoint, so resuming it finishes exactly as the uninterrupted run did."""
    folder, state = run.setup.fold_dir, run.state
    if (folder / "model_final.safetensors").is_file():
        console.print(f"{folder}: already trained {state.epochs_done} epochs; pass --epochs with a larger number to "
                      f"extend it.")
    else:
        console.print(f"{folder}: all {state.epochs_done} epochs were trained before the run stopped; writing its "
                      f"final weights.")
    restore_state_record(folder)
    write_log_csv(state.log, run.setup.class_names, folder / "log.csv")
    plot_progress(state.log, run.setup.class_names, folder / "progress.png")
    if not (folder / "model_final.safetensors").is_file():
        save_weights(run.net.state_dict(), folder / "model_final.safetensors")


def train_rank(location: DatasetLocation, config: TrainingConfig, resume: bool, ranks: Ranks) -> Run:
    """Everything one training process does, from setup to ``model_final``; returns the finished run."""
    started = time.perf_counter()  # a time budget counts from here
    if config.head_warmup_iterations and ranks.distributed:
        raise UserError("--head-warmup trains in one process (DistributedDataParallel needs every weight to get "
                        "a gradient); leave it out with --gpus > 1.")
    if config.time_budget_seconds is not None and ranks.distributed:
        raise UserError("a time budget (--budget 30m) trains in one process; use a schedule preset (quick, "
                        "standard, full) or --epochs with --gpus > 1.")
    accelerator = detect_accelerator(config.device)
    device = _device(accelerator.kind, ranks)
    if device.type == "cpu":
        torch.set_num_threads(max(1, cpu_cores() // ranks.world_size))
    distributed.init(ranks, device.type)
    run = None
    try:
        run = _train_in_group(location, config, resume, ranks, device, started)
        return run
    finally:
        if run is not None and ranks.distributed:
            # The DistributedDataParallel wrapper holds the process group: left for the interpreter's exit to free,
            # gloo's threads can outlive it and abort a finished process (SIGABRT), so it goes before the group.
            run.parts.model = run.net
            gc.collect()
        distributed.shutdown()


def _train_in_group(location: DatasetLocation, config: TrainingConfig, resume: bool, ranks: Ranks,
                    device: torch.device, started: float) -> Run:
    """:func:`train_rank` once the device is chosen and the process group (if any) is up."""
    setup = prepare_fold(location, config)
    with contextlib.ExitStack() as cleanup:
        if ranks.is_main:
            # Other folds may train beside this one; a second run of this fold, or preprocess rewriting the
            # cache under it, is refused naming this process.
            what = f"autounet train {location.name} -c {config.configuration} --fold {config.fold}"
            cleanup.enter_context(shared(location.preprocessed, what))
            cleanup.enter_context(exclusive(setup.fold_dir, what))
            cleanup.enter_context(log_to(setup.fold_dir / TRAINING_LOG))
        config, point = _resume_point(setup, config, resume)
        if ranks.is_main:
            write_run_files(setup, config)
            if device.type == "cpu" and setup.plan.network.conv_dim == 3:
                console.print(f"training on the CPU ({torch.get_num_threads()} threads): 3D training there is "
                              f"slow; a GPU is many times faster.")
        distributed.barrier(ranks)
        if point is not None and point.state.epochs_done >= config.epochs:
            run = build_run(setup, config, ranks, device, point)
            if ranks.is_main:
                complete_finished_run(run)
            return run
        config, schedule = schedule_for(setup, config, device, point is not None, started)
        config = config.with_overrides(augment_on=config.resolved_augment_on(
            device.type, cascade=setup.previous_stage_values is not None))
        if ranks.is_main:
            write_config(setup.fold_dir, config)
            debug(f"device {device}, {torch.get_num_threads()} CPU thread(s); resolved training config: "
                  f"{json.dumps(to_json_value(config), sort_keys=True)}")
        global_batch = config.batch_size or setup.global_batch_size
        batch = distributed.rank_batch_size(global_batch, ranks)
        if batch < 1:
            raise UserError(f"batch size {global_batch} is smaller than the {ranks.world_size} "
                            f"processes; use fewer --gpus or a larger --batch-size.")
        run = build_run(setup, config, ranks, device, point)
        recipe = BatchRecipe(setup.store_folder, setup.split.train, setup.split.val, list(setup.plan.patch_size),
                             batch, config.oversample_foreground, config.augment, config.seed, ranks.rank,
                             setup.previous_stage_values, config.augmentation,
                             augment_on_device=config.augment_on == "gpu")
        workers = config.num_workers if config.num_workers is not None else default_data_workers(device.type, ranks)
        tracker = open_tracker(config.tracker if ranks.is_main else "none", setup.fold_dir,
                               to_json_value(config))
        cleanup.callback(tracker.close)
        with BatchStream(recipe, run.state.epochs_done, schedule.iterations_per_epoch, schedule.val_iterations,
                         workers) as stream:
            for epoch in _epochs(run.state.epochs_done, schedule):
                schedule.epoch_started()
                record = run_epoch(run, stream, epoch, schedule)
                finish_epoch(run, record, schedule.epochs)
                tracker.log_epoch(record, run.setup.class_names)
                schedule.epoch_ended(record.completed)
                if ranks.is_main:
                    write_config(setup.fold_dir, schedule.recorded(config))
        if ranks.is_main:
            save_weights(run.net.state_dict(), setup.fold_dir / "model_final.safetensors")
        distributed.barrier(ranks)
        return run


def _epochs(first: int, schedule: TrainingSchedule):
    """Epoch numbers from ``first`` while the schedule's total (which a time budget may change) is not reached."""
    epoch = first
    while epoch < schedule.epochs:
        yield epoch
        epoch += 1
