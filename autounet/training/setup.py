"""Everything a fold's training needs, resolved and checked before the first iteration."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from autounet.dataset.spec import DatasetSpec, load_spec
from autounet.errors import MissingArtifactError, UserError
from autounet.paths import DatasetLocation
from autounet.planning.plans import (ConfigurationPlan, Plans, load_dataset_plans, load_plans, plans_path,
                                     save_plans)
from autounet.preprocessing.store import CaseStore
from autounet.training.cascade import prepare_previous_stage
from autounet.training.config import TrainingConfig, fold_name
from autounet.network.loss import LossSettings
from autounet.training.splits import FoldSplit, fold_cases, load_or_create_splits
from autounet.utils.atomic import remove_abandoned_temporaries, write_bytes, write_json
from autounet.utils.progress import track
from autounet.utils.serde import load_dataclass, to_json_value

CONFIG_FILE = "training_config.json"


@dataclass
class FoldSetup:
    """The resolved inputs of one fold's training."""

    location: DatasetLocation
    plans: Plans
    plan: ConfigurationPlan
    spec: DatasetSpec
    spec_folder: Path
    store_folder: Path
    split: FoldSplit
    fold_dir: Path
    loss: LossSettings
    class_names: list[str]
    global_batch_size: int
    previous_stage_values: list[int] | None = None
    """For a cascade: the previous stage's label values, one extra input channel each (see :mod:`.cascade`)."""


def fold_directory(location: DatasetLocation, configuration: str, fold: int | str) -> Path:
    """``results/DatasetXXX/<configuration>/fold_K``."""
    return location.results / configuration / fold_name(fold)


def dataset_spec_folder(location: DatasetLocation) -> Path:
    """Where dataset.json is read from: the preprocessed folder if it has a copy, else the raw dataset."""
    if (location.preprocessed / "dataset.json").is_file():
        return location.preprocessed
    return location.raw


def loss_settings(spec: DatasetSpec, num_outputs: int, batch_dice: bool,
                  config: TrainingConfig | None = None) -> tuple[LossSettings, list[str]]:
    """The loss's view of the labels (regions or classes, ignore label) with the config's loss terms, and the
    names of what is scored."""
    if spec.has_regions:
        named = [(k, v if isinstance(v, list) else [v]) for k, v in spec.labels.items()
                 if k not in ("background", "ignore")]
        settings = LossSettings(num_outputs, [v for _, v in named], spec.ignore_label, batch_dice)
        names = [k for k, _ in named]
    else:
        settings = LossSettings(num_outputs, None, spec.ignore_label, batch_dice)
        names = [spec.label_name(v) for v in spec.foreground_labels]
    return with_loss_terms(settings, config or TrainingConfig()), names


def with_loss_terms(settings: LossSettings, config: TrainingConfig) -> LossSettings:
    """``settings`` with the config's Dice smoothing and loss weights (the labels' part unchanged)."""
    weights = config.loss_weights
    return dataclasses.replace(settings, smooth=config.dice_smooth, cross_entropy_weight=weights.cross_entropy,
                               dice_weight=weights.dice, deep_supervision_decay=weights.deep_supervision_decay)


def check_cases(store: CaseStore, case_ids: list[str]) -> None:
    """Open every case (headers and memory maps only), so a corrupted one is named before training starts."""
    for case_id in track(case_ids, "checking cached cases"):
        case = store.load(case_id, mmap=True)
        if case.seg is None:
            raise UserError(f"{store.folder / case_id}: cached case has no labels; run `autounet preprocess "
                            f"--overwrite`.")


def prepare_fold(location: DatasetLocation, config: TrainingConfig) -> FoldSetup:
    """Load plans, dataset.json, the cached cases and the fold's split; raise a clear error for anything missing."""
    configuration = config.configuration
    if not plans_path(location.preprocessed).is_file():
        raise MissingArtifactError(f"{plans_path(location.preprocessed)}: not found; run `autounet plan "
                                   f"{location.name}` and `autounet preprocess {location.name}` before training.")
    plans = load_dataset_plans(location.preprocessed)
    plan = plans.configuration(configuration)
    spec_folder = dataset_spec_folder(location)
    spec = load_spec(spec_folder)
    store = CaseStore(location.preprocessed / plan.data_identifier)
    case_ids = store.case_ids()
    if not case_ids:
        raise MissingArtifactError(f"{store.folder}: no preprocessed cases; run `autounet preprocess "
                                   f"{location.name} -c {configuration}` first.")
    splits = load_or_create_splits(location.preprocessed, case_ids) if config.fold != "all" else []
    split = fold_cases(splits, config.fold, case_ids, location.preprocessed)
    check_cases(store, sorted(set(split.train) | set(split.val)))
    previous_values = None
    if plan.previous_stage:
        previous_values = prepare_previous_stage(location, plan, spec, store, sorted(set(split.train) | set(split.val)),
                                                 splits or load_or_create_splits(location.preprocessed, case_ids))
    batch_dice = plan.is_2d if config.batch_dice is None else config.batch_dice
    loss, names = loss_settings(spec, plan.network.num_classes, batch_dice, config)
    expected = spec.num_outputs
    if plan.network.num_classes != expected:
        raise UserError(f"{plans_path(location.preprocessed)}: configuration '{configuration}' has "
                        f"{plan.network.num_classes} outputs but dataset.json needs {expected}; re-run "
                        f"`autounet plan`.")
    if len(plan.patch_size) != plan.network.conv_dim:
        raise UserError(f"{plans_path(location.preprocessed)}: configuration '{configuration}' has a "
                        f"{len(plan.patch_size)}-axis patch for a {plan.network.conv_dim}D network.")
    return FoldSetup(location, plans, plan, spec, spec_folder, store.folder, split,
                     fold_directory(location, configuration, config.fold), loss, names,
                     config.batch_size or plan.batch_size, previous_values)


def write_run_files(setup: FoldSetup, config: TrainingConfig) -> None:
    """Copy plans.json and dataset.json into the fold folder and save the training config (rank 0 only); remove
    the temporary files a killed run left there."""
    setup.fold_dir.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(setup.fold_dir)
    save_plans(setup.plans, setup.fold_dir)
    write_bytes(setup.fold_dir / "dataset.json", (setup.spec_folder / "dataset.json").read_bytes())
    write_config(setup.fold_dir, config)


def write_config(fold_dir: Path, config: TrainingConfig) -> None:
    """Save ``config`` as the fold's training_config.json (atomically)."""
    write_json(Path(fold_dir) / CONFIG_FILE, to_json_value(config))


def stored_config(fold_dir: Path) -> TrainingConfig | None:
    """The training config a run in ``fold_dir`` was started with, if there is one."""
    path = Path(fold_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return load_dataclass(TrainingConfig, json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, KeyError) as error:
        raise UserError(f"{path}: is not a training config autounet wrote ({error}).") from error


def check_resumable(setup: FoldSetup, stored: TrainingConfig) -> None:
    """Refuse to continue a run whose configuration or plan differs from the one asked for now."""
    path = setup.fold_dir / CONFIG_FILE
    if stored.configuration != setup.plan.name:
        raise UserError(f"{path}: this run trained configuration '{stored.configuration}', not "
                        f"'{setup.plan.name}'; resume it with -c {stored.configuration} or train in a new folder.")
    previous = load_plans(setup.fold_dir).configuration(stored.configuration)
    for attribute in ("patch_size", "network", "data_identifier", "spacing"):
        if to_json_value(getattr(previous, attribute)) != to_json_value(getattr(setup.plan, attribute)):
            raise UserError(f"{setup.fold_dir / 'plans.json'}: the plan's {attribute} changed since this run "
                            f"started; it cannot be resumed. Train from scratch (delete {setup.fold_dir}).")

