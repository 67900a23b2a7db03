"""Trained models as one zip file: exported from a data root, installed into another.

The zip holds ``<DatasetXXX_Name>/<configuration>/fold_<K>/`` with plans.json, dataset.json,
training_config.json and the chosen checkpoint's safetensors weights, the dataset's inference choice
(inference.json) when find-best wrote one, and a manifest ``autounet_model.json``. Nothing in it is pickled.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from autounet.errors import UserError
from autounet.inference.model_folder import (CHECKPOINTS, TRAINING_CONFIG_FILE, fold_folders, is_fold_folder,
                                             trained_configurations, trained_fold, weights_file)
from autounet.utils.atomic import atomic_path, remove_abandoned_temporaries, write_bytes
from autounet.utils.serde import load_dataclass, to_json_value

MANIFEST_FILE = "autounet_model.json"
FOLD_FILES = ("plans.json", "dataset.json", TRAINING_CONFIG_FILE)
DATASET_FILES = ("inference.json",)
"""Files of the dataset's results folder that travel with the model (find-best's choice)."""
ALLOWED_SUFFIXES = (".json", ".safetensors")


@dataclass
class ModelManifest:
    """What an exported model zip holds."""

    dataset: str
    configurations: list[str]
    folds: dict[str, list[str]]
    checkpoint: str
    files: list[str] = field(default_factory=list)


def previous_stages(dataset_results: Path, configurations: Sequence[str]) -> list[str]:
    """The first stages the cascades among ``configurations`` predict with (from their folds' plans.json).

    Example:
        >>> previous_stages(Path("results/Dataset004_Hippocampus"), ["3d_cascade_fullres"])  # doctest: +SKIP
        ['3d_lowres']
    """
    from autounet.planning.plans import load_plans

    found: list[str] = []
    for configuration in configurations:
        folders = fold_folders(Path(dataset_results) / configuration)
        if not folders:
            continue
        previous = load_plans(folders[0] / "plans.json").configuration(configuration).previous_stage
        if previous and previous not in configurations and previous not in found:
            found.append(previous)
    return found


def export_model(dataset_results: Path, target: Path, configurations: Sequence[str] | None = None,
                 folds: Sequence[int | str] | None = None, checkpoint: str = "final") -> ModelManifest:
    """Write the trained folds of ``dataset_results`` (all configurations, or the chosen ones) to zip ``target``.

    A cascade travels with every fold of its first stage, which it predicts with.

    Example:
        >>> export_model(Path("results/Dataset004_Hippocampus"), Path("hippo.zip"), ["3d_fullres"])  # doctest: +SKIP
    """
    dataset_results = Path(dataset_results)
    dataset = dataset_results.name
    available = trained_configurations(dataset_results)
    chosen = list(configurations) if configurations else available
    unknown = [c for c in chosen if c not in available]
    if not chosen or unknown:
        raise UserError(f"{dataset_results}: no trained configuration {', '.join(unknown) or ''} to export "
                        f"(trained: {', '.join(available) or 'none'}).")
    first_stages = previous_stages(dataset_results, chosen)
    chosen = first_stages + chosen
    entries: dict[str, Path] = {}
    fold_labels: dict[str, list[str]] = {}
    for configuration in chosen:
        folders = fold_folders(dataset_results / configuration)
        if folds is not None and configuration not in first_stages:
            wanted = {str(f) for f in folds}
            folders = [f for f in folders if f.name.split("_", 1)[1] in wanted]
        if not folders:
            raise UserError(f"{dataset_results / configuration}: none of folds {list(folds or [])} is trained.")
        fold_labels[configuration] = []
        for folder in folders:
            fold = trained_fold(folder, checkpoint)
            fold_labels[configuration].append(fold.fold)
            prefix = f"{dataset}/{configuration}/{folder.name}"
            entries[f"{prefix}/{fold.weights.name}"] = fold.weights
            for name in FOLD_FILES:
                if not (folder / name).is_file():
                    raise UserError(f"{folder / name}: missing; the fold folder is incomplete.")
                entries[f"{prefix}/{name}"] = folder / name
    for name in DATASET_FILES:
        if (dataset_results / name).is_file():
            entries[f"{dataset}/{name}"] = dataset_results / name
    manifest = ModelManifest(dataset, chosen, fold_labels, checkpoint, sorted(entries))
    # The manifest is dated like the newest file it lists (not now), so exporting the same model twice, or again
    # after an interrupted export, writes the same bytes.
    newest = max(path.stat().st_mtime for path in entries.values())
    manifest_entry = zipfile.ZipInfo(MANIFEST_FILE, date_time=_zip_time(newest))
    manifest_entry.compress_type, manifest_entry.external_attr = zipfile.ZIP_DEFLATED, 0o600 << 16  # as writestr
    remove_abandoned_temporaries(Path(target).parent, Path(target).name)  # the rest of a killed export
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(manifest_entry, json.dumps(to_json_value(manifest), indent=2))
            for name, path in entries.items():
                method = zipfile.ZIP_STORED if name.endswith(".safetensors") else zipfile.ZIP_DEFLATED
                archive.write(path, name, compress_type=method)
    return manifest


def _zip_time(timestamp: float) -> tuple[int, int, int, int, int, int]:
    """A file time as a zip entry's local date and time (a zip cannot hold times before 1980)."""
    return max(time.localtime(timestamp)[:6], (1980, 1, 1, 0, 0, 0))


def _checked_member(name: str, archive_path: Path, dataset: str) -> PurePosixPath:
    """A zip entry's path, refused when it could land outside the dataset's folder or is not a model file."""
    path = PurePosixPath(name)
    if path.is_absolute() or "\\" in name or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UserError(f"{archive_path}: entry '{name}' has an absolute or parent ('..') path; refusing to install.")
    if name == MANIFEST_FILE:
        return path
    if not path.parts or path.parts[0] != dataset or path.suffix not in ALLOWED_SUFFIXES:
        raise UserError(f"{archive_path}: entry '{name}' is not a file of model {dataset}; refusing to install.")
    return path


def read_manifest(archive_path: Path) -> ModelManifest:
    """The manifest of a model zip; a clear error when the file is not one."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            data = json.loads(archive.read(MANIFEST_FILE))
        return load_dataclass(ModelManifest, data)
    except (OSError, zipfile.BadZipFile, KeyError, json.JSONDecodeError, TypeError) as error:
        raise UserError(f"{archive_path}: not an autounet model zip ({error}).") from error


def install_model(archive_path: Path, results_folder: Path, overwrite: bool = False) -> ModelManifest:
    """Unpack a model zip into ``results_folder/<DatasetXXX_Name>/``; returns its manifest.

    Every entry is checked before anything is written. A fold already installed (its folder complete: it has
    training_config.json) with other files than the zip's is kept unless ``overwrite``; one installed with the
    same files is left as it is, so installing again, or after an install that was killed, completes. A fold
    folder without training_config.json is the rest of an interrupted install and is written again.
    """
    archive_path = Path(archive_path)
    manifest = read_manifest(archive_path)
    if manifest.checkpoint not in CHECKPOINTS:
        raise UserError(f"{archive_path}: unknown checkpoint '{manifest.checkpoint}' in its manifest.")
    with zipfile.ZipFile(archive_path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        paths = {m.filename: _checked_member(m.filename, archive_path, manifest.dataset) for m in members}
        target_root = Path(results_folder)
        targets = {m.filename: target_root.joinpath(*paths[m.filename].parts) for m in members
                   if m.filename != MANIFEST_FILE}
        unchanged = [name for name, target in targets.items() if _holds(target, archive, name)]
        replaced = []
        for configuration, labels in manifest.folds.items():
            for label in labels:
                folder = target_root / manifest.dataset / configuration / f"fold_{label}"
                differing = [name for name, target in targets.items()
                             if target.parent == folder and name not in unchanged]
                if not differing or not is_fold_folder(folder):
                    continue
                if not overwrite:
                    raise UserError(f"{weights_file(folder, manifest.checkpoint)}: another model is already "
                                    f"installed there; pass --overwrite to replace it.")
                replaced.append(folder)
        for folder in replaced:
            # Marked incomplete first, so a replacement cut short never looks like a whole fold of mixed files.
            (folder / TRAINING_CONFIG_FILE).unlink()
            unchanged = [name for name in unchanged if targets[name] != folder / TRAINING_CONFIG_FILE]
        for folder in {target.parent for target in targets.values()}:
            remove_abandoned_temporaries(folder)  # the rest of a killed install
        # training_config.json marks a fold folder as complete, so it is written after the weights.
        ordered = sorted((name for name in targets if name not in unchanged),
                         key=lambda name: targets[name].name == TRAINING_CONFIG_FILE)
        for name in ordered:
            write_bytes(targets[name], archive.read(name))
    return manifest


def _holds(target: Path, archive: zipfile.ZipFile, name: str) -> bool:
    """Whether ``target`` exists with exactly the bytes of the archive's entry ``name``."""
    if not target.is_file() or target.stat().st_size != archive.getinfo(name).file_size:
        return False
    return target.read_bytes() == archive.read(name)
