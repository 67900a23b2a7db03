"""The ``autounet train`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from autounet.cli.common import DatasetArgument, RootOption, TrackerOption, dataset_location, out

BUDGET_HELP = ("Schedule preset: quick (5 x 20 iterations), standard (250 x 250) or full (1000 x 250, nnU-Net's); "
               "or a time budget per fold (30m, 2h, 1h30m): the schedule is fitted to what this machine does in it.")
SET_HELP = ("Set any training config field, NAME=VALUE (repeatable): e.g. augmentation.p_rotation=0.3, "
            "augmentation.scale_range=[0.8,1.25], loss_weights.dice=2, time_schedule.tta_max_share=0.1. "
            "All fields and defaults: docs/train.md.")
SCHEDULE_FIELDS = ("epochs", "iterations_per_epoch", "val_iterations")


def _folds(values: list[str]) -> list[int | str]:
    from autounet.training.config import parse_fold

    folds = [parse_fold(part) for value in values for part in value.split(",") if part.strip()]
    return list(dict.fromkeys(folds))


def _default_configuration(location) -> str:
    from autounet.planning.plans import load_dataset_plans

    return load_dataset_plans(location.preprocessed).default_configuration()


def train(
    dataset: DatasetArgument,
    fold: Annotated[list[str], typer.Option("--fold", "-f", help="Fold index from splits.json, or 'all' to train "
                                            "on every case; repeat or comma-separate for several folds "
                                            "(--fold 0,1,2,3,4).")] = ["0"],
    configuration: Annotated[Optional[str], typer.Option("--configuration", "-c", help="Configuration from "
                             "plans.json \\[default: the one plan --budget chose, else 3d_fullres (2d for 2D "
                             "data) of the latest planned preset, e.g. 3d_fullres_resenc-m].",
                             show_default=False)] = None,
    budget: Annotated[Optional[str], typer.Option("--budget", help=BUDGET_HELP, show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Epochs (beyond a finished run's: "
                      "extends it with --resume).", show_default=False)] = None,
    iterations_per_epoch: Annotated[Optional[int], typer.Option("--iterations-per-epoch", min=1,
                                    show_default=False, help="Training iterations per epoch.")] = None,
    val_iterations: Annotated[Optional[int], typer.Option("--val-iterations", min=0, show_default=False,
                              help="Validation iterations per epoch (pseudo-Dice).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", min=0.0, show_default=False,
                                                help="Initial learning rate \\[default: 0.01 for sgd, 0.001 "
                                                     "for adamw].")] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", show_default=False,
                         help="sgd (nnU-Net's, Nesterov momentum 0.99) or adamw \\[default: sgd; "
                              "adamw with a time budget or quick].")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, show_default=False,
                                                      help="Global batch size \\[default: the plan's].")] = None,
    oversample: Annotated[Optional[float], typer.Option("--oversample", min=0.0, max=1.0, show_default=False,
                          help="Share of each batch forced onto foreground \\[default: 0.33].")] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", min=0.0, show_default=False,
                            help="Optimiser weight decay \\[default: 3e-5].")] = None,
    momentum: Annotated[Optional[float], typer.Option("--momentum", min=0.0, max=1.0, show_default=False,
                        help="SGD momentum \\[default: 0.99].")] = None,
    poly_exponent: Annotated[Optional[float], typer.Option("--poly-exponent", min=0.0, show_default=False,
                             help="Exponent of the polynomial learning-rate decay \\[default: 0.9].")] = None,
    grad_clip: Annotated[Optional[float], typer.Option("--grad-clip", min=0.0, show_default=False,
                         help="Gradient norm clipped to this \\[default: 12].")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", show_default=False, help=SET_HELP)] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Train without data augmentation.")] = False,
    augment_on: Annotated[Optional[str], typer.Option(
        "--augment-on", show_default=False, help="Where augmentation runs: gpu (batched on the training device; the "
        "data workers only crop), cpu (in the data workers) or auto \\[default: auto: gpu when training on CUDA].")
                          ] = None,
    compile_model: Annotated[bool, typer.Option("--compile", help="Compile the network with torch.compile.")] = False,
    no_amp: Annotated[bool, typer.Option("--no-amp", help="Train in float32 on CUDA (AMP is on by default).")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=0, show_default=False,
                       help="Data worker processes per training process \\[default: from the cores; 0 = "
                            "none].")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", show_default=False,
                                                help="Random seed \\[default: 12345].")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the fold's latest checkpoint (a finished run "
                                         "is extended by --epochs alone).")] = False,
    device: Annotated[Optional[str], typer.Option("--device", show_default=False,
                      help="auto, cuda, mps or cpu \\[default: auto].")] = None,
    gpus: Annotated[Optional[int], typer.Option("--gpus", min=1, show_default=False, help="Training processes "
                    "(DistributedDataParallel; one per GPU, or CPU processes with --device cpu).")] = None,
    save_probabilities: Annotated[bool, typer.Option("--save-probabilities", help="Also save the validation "
                                  "cases' probabilities (npz).")] = False,
    pretrained: Annotated[Optional[Path], typer.Option(
        "--pretrained", show_default=False, help="Fine-tune: start from this trained model (a fold or configuration "
        "folder, a model zip, or an nnU-Net results folder); the heads start afresh when the classes differ.")
                          ] = None,
    head_warmup: Annotated[Optional[int], typer.Option(
        "--head-warmup", min=0, show_default=False, help="With --pretrained: train only the segmentation heads for "
        "the first N iterations, the loaded weights frozen \\[default: 0].")] = None,
    tracker: TrackerOption = None,
    root: RootOption = None,
) -> None:
    """Train a configuration on one or more cross-validation folds; results go to results/DATASET/CONFIG/fold_K.

    The default configuration is the one `autounet plan --budget DURATION` chose, when it chose one.

    Example: autounet train Dataset004 --fold 0 --budget 30m
    """
    from autounet.training import TrainingConfig, train_fold
    from autounet.training.overrides import apply_settings
    from autounet.training.setup import fold_directory, stored_config

    from autounet.errors import UserError
    from autounet.planning.time_budget import time_budget_seconds

    location = dataset_location(dataset, root)
    configuration = configuration or _default_configuration(location)
    explicit = {"epochs": epochs, "iterations_per_epoch": iterations_per_epoch, "val_iterations": val_iterations,
                "learning_rate": lr, "optimizer": optimizer, "batch_size": batch_size,
                "oversample_foreground": oversample, "weight_decay": weight_decay, "momentum": momentum,
                "poly_exponent": poly_exponent, "grad_clip": grad_clip, "augment": False if no_augment else None,
                "augment_on": augment_on, "compile": True if compile_model else None,
                "amp": False if no_amp else None, "num_workers": workers, "seed": seed, "device": device,
                "gpus": gpus, "save_probabilities": True if save_probabilities else None, "tracker": tracker,
                "pretrained": str(pretrained.resolve()) if pretrained else None,
                "head_warmup_iterations": head_warmup}
    if time_budget_seconds(budget) is not None and any(explicit[name] is not None for name in SCHEDULE_FIELDS):
        raise UserError(f"--budget {budget} fits the epochs and iterations to the time; leave out --epochs, "
                        f"--iterations-per-epoch and --val-iterations (or give a preset).")
    for fold_value in _folds(fold):
        # An existing run's own settings are the base, so `--resume` or `--epochs N` change only what is given.
        stored = stored_config(fold_directory(location, configuration, fold_value))
        if stored is not None and budget is None:
            config = stored.with_overrides(**explicit)
        else:
            config = TrainingConfig.from_budget(budget or "standard", **explicit)
        config = apply_settings(config, settings or [])
        folder = train_fold(location, configuration, fold_value, config, resume=resume)
        out.print(f"fold {fold_value}: done; results in {folder}")


def register(app: typer.Typer) -> None:
    app.command()(train)
