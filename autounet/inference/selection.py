"""Which trained model ``autounet predict`` uses when not told exactly: dataset, configurations, folders."""

from __future__ import annotations

from pathlib import Path

from autounet.errors import MissingArtifactError, UserError
from autounet.inference.model_folder import fold_folders, is_fold_folder, trained_configurations
from autounet.paths import DataRoot, locate_dataset

PREFERRED = ("3d_fullres", "2d")
"""The default configuration when find-best has not chosen: 3d_fullres for 3D data, 2d for 2D data."""


def trained_datasets(root: DataRoot) -> list[str]:
    """Datasets under the root's results folder with at least one trained configuration."""
    if not root.results.is_dir():
        return []
    return sorted(p.name for p in root.results.iterdir() if p.is_dir() and trained_configurations(p))


def model_folder(root: DataRoot, dataset: str | None, model_dir: Path | None) -> Path:
    """The folder to predict with: ``-m`` as given, the results folder of ``-d``, or the only trained dataset."""
    if model_dir is not None:
        if not Path(model_dir).is_dir():
            raise UserError(f"{model_dir}: no such model folder.")
        return Path(model_dir)
    if dataset is not None:
        location = locate_dataset(dataset, root)
        if not trained_configurations(location.results):
            raise MissingArtifactError(f"{location.results}: no trained model for {location.name}; run "
                                       f"`autounet train {location.name}` first.")
        return location.results
    found = trained_datasets(root)
    if len(found) == 1:
        return root.results / found[0]
    if not found:
        raise MissingArtifactError(f"{root.results}: no trained dataset; train one or give -m MODEL_DIR.")
    raise UserError(f"{root.results}: several trained datasets ({', '.join(found)}); choose one with -d.")


def is_dataset_results(folder: Path) -> bool:
    """True for a dataset's results folder (it holds configuration folders), False for a configuration or fold."""
    return not is_fold_folder(folder) and not fold_folders(folder) and bool(trained_configurations(folder))


def default_configurations(dataset_results: Path, chosen: list[str] | None = None) -> list[str]:
    """``chosen`` (e.g. by find-best) when given, else 3d_fullres or 2d, else the only trained configuration."""
    available = trained_configurations(dataset_results)
    if chosen:
        missing = [c for c in chosen if c not in available]
        if missing:
            raise MissingArtifactError(f"{dataset_results}: configuration(s) {', '.join(missing)} chosen but not "
                                       f"trained (trained: {', '.join(available) or 'none'}).")
        return list(chosen)
    for name in PREFERRED:
        if name in available:
            return [name]
    if len(available) == 1:
        return available
    raise UserError(f"{dataset_results}: trained configurations {', '.join(available)}; choose with -c.")
