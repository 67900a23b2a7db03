"""Build the :class:`Predictor` the command line asks for (dataset or model folder, configurations, folds),
following find-best's inference.json where the user did not choose otherwise.

It joins two stages (inference's predictor and evaluation's choice), so it sits above both, beside the pipeline
(docs/architecture.md): inference never imports evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from autounet.dataset.spec import DatasetSpec
from autounet.errors import UserError
from autounet.evaluation.choice import load_inference_choice
from autounet.inference.memory import MemoryPolicy
from autounet.inference.model_folder import load_trained_configuration
from autounet.inference.postprocessing import PostprocessingChoice, apply_postprocessing
from autounet.inference.predictor import LabelTransform, Predictor
from autounet.inference.selection import default_configurations, is_dataset_results, model_folder
from autounet.paths import resolve_root


@dataclass
class ModelRequest:
    """What the command line asked for; None means 'the default'."""

    root: Path | None = None
    dataset: str | None = None
    model_dir: Path | None = None
    configurations: list[str] | None = None
    folds: list[str] | None = None
    checkpoint: str = "final"
    device: str = "auto"
    tta: bool = True
    step: float = 0.5
    precision: str = "auto"
    max_memory_bytes: int | None = None
    """Per-class outputs beyond this go to disk (None: 80 % of the available RAM; see inference/memory.py)."""
    scratch_root: Path | None = None
    """Where the scratch folder for per-class outputs on disk is made (``predict``: the output folder)."""


def postprocessor(choice: PostprocessingChoice, spec: DatasetSpec) -> LabelTransform | None:
    """The label transform of a postprocessing choice (None when it does nothing)."""
    if choice.is_identity:
        return None
    foreground = sorted({v for values in spec.labels.values() for v in (values if isinstance(values, list)
                                                                       else [values])} - {0, spec.ignore_label})
    return partial(apply_postprocessing, choice=choice, foreground_values=foreground)


def load_predictor(request: ModelRequest) -> tuple[Predictor, str]:
    """The predictor for the command line's choices and a one-line description of what it uses.

    With a dataset's results folder, configurations and folds default to inference.json's choice (else
    3d_fullres / 2d and all folds), and its postprocessing is applied when its configurations are used.

    Example:
        >>> predictor, text = load_predictor(ModelRequest(dataset="Dataset004"))  # doctest: +SKIP
        >>> text                                                                   # doctest: +SKIP
        'Dataset004_Hippocampus 3d_fullres (folds 0, 1, 2, 3, 4), checkpoint final, TTA on, device cpu'
    """
    folder = model_folder(resolve_root(request.root), request.dataset, request.model_dir)
    folds, choice = request.folds, None
    if is_dataset_results(folder):
        choice = load_inference_choice(folder)
        chosen = choice.configurations if choice else None
        names = default_configurations(folder, request.configurations or chosen)
        if choice and names != chosen:
            choice = None  # find-best's postprocessing and folds were chosen for other configurations
        if choice and folds is None:
            folds = [str(f) for f in choice.folds]
        folders, dataset_name = [folder / name for name in names], folder.name
    else:
        folders, dataset_name = [folder], str(folder)
    trained = [load_trained_configuration(f, folds, request.checkpoint) for f in folders]
    if request.configurations and [t.name for t in trained] != request.configurations:
        raise UserError(f"{folder}: holds configuration {trained[0].name}, not {', '.join(request.configurations)}; "
                        f"give the dataset's results folder with -m to choose configurations.")
    transform = postprocessor(choice.postprocessing, trained[0].spec) if choice else None
    predictor = Predictor.from_trained(trained, request.device, request.tta, request.step, request.checkpoint,
                                       transform, precision=request.precision,
                                       memory=MemoryPolicy(request.max_memory_bytes, request.scratch_root))
    parts = [f"{t.name} (folds {', '.join(f.fold for f in t.folds)})" for t in trained]
    skipped = [str(folder) for t in trained for folder in t.unfinished]
    if skipped:
        parts.append(f"left out without model_{request.checkpoint}.safetensors: {', '.join(skipped)}")
    description = (f"{dataset_name} {' + '.join(parts)}, checkpoint {request.checkpoint}, "
                   f"TTA {'on' if request.tta else 'off'}, device {predictor.models[0].device} "
                   f"({str(predictor.models[0].settings.compute_dtype).replace('torch.', '')}), postprocessing "
                   f"{choice.postprocessing.describe() if choice else 'none'}"
                   f"{' (from inference.json)' if choice else ''}")
    return predictor, description
