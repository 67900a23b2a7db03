"""The Python API of training: :func:`train_fold`."""

from __future__ import annotations

import time
from pathlib import Path

from autounet.errors import UserError
from autounet.paths import DatasetLocation
from autounet.training import distributed
from autounet.training.budget_split import describe_split, spent_seconds
from autounet.training.config import TrainingConfig, parse_fold
from autounet.training.final_validation import validate_fold
from autounet.training.setup import fold_directory, stored_config, write_config
from autounet.training.splits import validation_case_ids
from autounet.training.run_log import TRAINING_LOG
from autounet.utils.logs import debug, log_to
from autounet.utils.progress import console


def _spawned_rank(rank: int, location: DatasetLocation, config: TrainingConfig, resume: bool, port: int) -> None:
    from autounet.training.trainer import train_rank

    distributed.set_spawn_env(rank, config.gpus, port)
    train_rank(location, config, resume, distributed.ranks_from_env())


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def train_fold(location: DatasetLocation, configuration: str, fold: int | str, config: TrainingConfig,
               resume: bool = False) -> Path:
    """Train ``configuration`` on ``fold`` (an index into splits.json, or ``all``); return the fold folder.

    With ``config.gpus > 1`` it starts that many processes (DistributedDataParallel;
    on the CPU with gloo); under torchrun it joins the launcher's processes instead.
    With ``resume`` it continues the folder's latest checkpoint, keeping the stored
    hyper-parameters except :data:`~autounet.training.config.RUNTIME_FIELDS`.
    A numbered fold ends by predicting its validation cases from the raw images into
    ``fold_K/validation/`` and scoring them there (summary.json).

    Example:
        >>> from autounet.paths import locate_dataset, resolve_root
        >>> loc = locate_dataset("Dataset004", resolve_root())                        # doctest: +SKIP
        >>> train_fold(loc, "3d_fullres", 0, TrainingConfig.from_budget("quick"))    # doctest: +SKIP
        PosixPath('.../results/Dataset004_Hippocampus/3d_fullres/fold_0')
    """
    import torch.multiprocessing

    from autounet.training.trainer import train_rank

    config = config.with_overrides(configuration=configuration, fold=parse_fold(fold))
    config.check()
    ranks = distributed.ranks_from_env()
    started, run = time.perf_counter(), None
    if ranks.distributed or config.gpus == 1:
        run = train_rank(location, config, resume, ranks)
    else:
        try:
            torch.multiprocessing.spawn(_spawned_rank, args=(location, config, resume, distributed.free_port()),
                                        nprocs=config.gpus, join=True)
        except torch.multiprocessing.ProcessRaisedException as error:
            raise UserError(f"a training process failed: {_last_line(str(error))}") from error
        except torch.multiprocessing.ProcessExitedException as error:
            raise UserError(f"a training process died: {error}") from error
    fold_dir = fold_directory(location, configuration, config.fold)
    if ranks.is_main and config.fold != "all":
        trained = stored_config(fold_dir) or config
        training_wall = time.perf_counter() - started
        with log_to(fold_dir / TRAINING_LOG, head=False):
            summary = validate_fold(location, fold_dir, validation_case_ids(location.preprocessed, config.fold),
                                    config.save_probabilities, config.device, tta=trained.validation_tta)
            timing = trained.budget_timing
            if timing is not None:
                validation = time.perf_counter() - started - training_wall
                console.print(f"validation took {validation:.1f} s (estimated {timing.validation_seconds:.1f} s)",
                              highlight=False)
                if run is not None and not resume:  # a resumed run's setup and first epochs were another process's
                    timing.spent_seconds = spent_seconds(timing.setup_seconds, run.state.log, training_wall,
                                                         validation)
                    timing.iterations_run = sum(r.iterations for r in run.state.log)
                    write_config(fold_dir, trained)
                    console.print(describe_split(timing.budget_seconds, timing.spent_seconds, timing.iterations_run),
                                  highlight=False)
            if summary is not None:
                debug("validation: mean foreground Dice " + _format_score(summary.foreground_mean.dice) + "; " +
                      ", ".join(f"{c.name} {_format_score(c.dice.mean)}" for c in summary.per_class))
    return fold_dir


def _format_score(value: float | None) -> str:
    return "undefined" if value is None or value != value else f"{value:.4f}"
