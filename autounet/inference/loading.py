"""Build the :class:`Predictor` the command line asks for (dataset or model folder, configurations, folds)."""

from __future__ import annotations

from pathlib import Path

from autounet.inference.model_folder import load_trained_configuration
from autounet.inference.predictor import Predictor
from autounet.inference.selection import default_configurations, is_dataset_results, model_folder
from autounet.paths import resolve_root


def load_predictor(root: Path | None, dataset: str | None, model_dir: Path | None,
                   configurations: list[str] | None, folds: list[str] | None, checkpoint: str = "final",
                   device: str = "auto", tta: bool = True, step: float = 0.5) -> tuple[Predictor, str]:
    """The predictor for the command line's choices and a one-line description of what it uses.

    Example:
        >>> predictor, text = load_predictor(None, "Dataset004", None, None, None)  # doctest: +SKIP
        >>> text                                                                     # doctest: +SKIP
        'Dataset004_Hippocampus 3d_fullres (folds 0, 1, 2, 3, 4), checkpoint final, TTA on'
    """
    folder = model_folder(resolve_root(root), dataset, model_dir)
    if is_dataset_results(folder):
        names = default_configurations(folder, configurations)
        folders = [folder / name for name in names]
        dataset_name = folder.name
    else:
        folders = [folder]
        dataset_name = str(folder)
    trained = [load_trained_configuration(f, folds, checkpoint) for f in folders]
    predictor = Predictor.from_trained(trained, device, tta, step, checkpoint)
    parts = [f"{t.name} (folds {', '.join(f.fold for f in t.folds)})" for t in trained]
    description = (f"{dataset_name} {' + '.join(parts)}, checkpoint {checkpoint}, TTA {'on' if tta else 'off'}, "
                   f"device {predictor.models[0].device}")
    return predictor, description
