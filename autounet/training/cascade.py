"""Training a cascade's second stage: the previous stage's cross-validation predictions, cached on its grid.

``3d_cascade_fullres`` learns from the image plus what ``3d_lowres`` predicted for it. As in nnU-Net, that
prediction must be realistic, so it is each training case's cross-validation prediction: the label map
``results/<dataset>/3d_lowres/fold_K/validation/CASE<ending>`` written at the end of the fold that held
the case out. Each is brought onto the fullres grid with the shared preprocessing
(:func:`~autounet.preprocessing.pipeline.labels_on_grid`: the case's crop box, its nonzero mask, label
resampling to the fullres spacing) and cached beside the fullres case as ``CASE_prev.npy``. A cached map
is rebuilt when the prediction or the preprocessed case is newer than it.
"""

from __future__ import annotations

from pathlib import Path

from autounet.dataset.spec import DatasetSpec
from autounet.errors import MissingArtifactError, UserError
from autounet.paths import DatasetLocation
from autounet.planning.plans import ConfigurationPlan, plans_path
from autounet.preprocessing.store import CaseStore
from autounet.training.splits import FoldSplit
from autounet.utils.progress import track


def previous_stage_predictions(results: Path, previous_stage: str, ending: str) -> dict[str, Path]:
    """case id -> the previous stage's cross-validation label map, from every ``fold_K/validation/`` folder."""
    from autounet.evaluation.cv_results import VALIDATION_FOLDER, fold_folders

    found: dict[str, Path] = {}
    for folder in fold_folders(Path(results) / previous_stage).values():
        for path in sorted((folder / VALIDATION_FOLDER).glob(f"*{ending}")):
            found.setdefault(path.name[: -len(ending)], path)
    return found


def folds_validating(cases: list[str], splits: list[FoldSplit]) -> list[int]:
    """The folds of ``splits`` whose validation sets hold any of ``cases``, sorted.

    Example:
        >>> folds_validating(["b"], [FoldSplit(["b"], ["a"]), FoldSplit(["a"], ["b"])])
        [1]
    """
    wanted = set(cases)
    return [index for index, split in enumerate(splits) if wanted & set(split.val)]


def _missing_error(location: DatasetLocation, previous: str, missing: list[str], splits: list[FoldSplit]) -> UserError:
    folds = folds_validating(missing, splits)
    shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
    fold_text = ", ".join(str(f) for f in folds) if folds else "0-4"
    first = folds[0] if folds else 0
    return MissingArtifactError(
        f"{location.results / previous}: no cross-validation predictions for {len(missing)} training case(s) "
        f"of the cascade ({shown}); train {previous} fold(s) {fold_text} first (e.g. `autounet train "
        f"{location.name} -c {previous} --fold {first}`).")


def _is_current(cache: Path, sources: list[Path]) -> bool:
    return cache.is_file() and all(cache.stat().st_mtime >= s.stat().st_mtime for s in sources)


def check_cascade_inputs(location: DatasetLocation, plan: ConfigurationPlan, spec: DatasetSpec) -> list[int]:
    """The previous stage's one-hot values; a clear error when the network's input channels do not fit them."""
    values = spec.predicted_foreground_values
    expected = spec.num_channels + len(values)
    if plan.network.in_channels != expected:
        raise UserError(f"{plans_path(location.preprocessed)}: cascade '{plan.name}' has a network with "
                        f"{plan.network.in_channels} input channels, but needs {expected} (the image's "
                        f"{spec.num_channels} plus one per foreground label of '{plan.previous_stage}'); "
                        f"re-run `autounet plan`.")
    return values


def prepare_previous_stage(location: DatasetLocation, plan: ConfigurationPlan, spec: DatasetSpec,
                           store: CaseStore, case_ids: list[str], splits: list[FoldSplit]) -> list[int]:
    """Cache the previous stage's prediction of every case in ``case_ids`` on ``plan``'s grid; return the
    label values that become extra input channels (in order).

    Raises :class:`MissingArtifactError` naming the previous stage's folds to train first when any case has
    no cross-validation prediction.

    Example:
        >>> prepare_previous_stage(location, plan, spec, store, split.train + split.val, splits)  # doctest: +SKIP
        [1, 2]
        >>> store.load_previous_stage(split.train[0]).shape                                        # doctest: +SKIP
        (1, 40, 56, 40)
    """
    from autounet.dataset.cases import find_cases
    from autounet.io import read_image, read_label
    from autounet.preprocessing.pipeline import label_dtype, labels_on_grid

    values = check_cascade_inputs(location, plan, spec)
    previous = str(plan.previous_stage)
    predictions = previous_stage_predictions(location.results, previous, spec.file_ending)
    missing = sorted(c for c in case_ids if c not in predictions)
    if missing:
        raise _missing_error(location, previous, missing, splits)
    stale = [c for c in case_ids if not _is_current(store.previous_stage_file(c),
                                                     [predictions[c], store.folder / f"{c}.json"])]
    if not stale:
        return values
    if not (location.raw / "imagesTr").is_dir():
        raise MissingArtifactError(f"{location.raw / 'imagesTr'}: not found; the cascade needs the raw images to "
                                   f"bring the {previous} predictions onto its grid.")
    raw_cases = {case.case_id: case for case in find_cases(location.raw, spec)}
    for case_id in track(stale, f"caching {previous} predictions"):
        if case_id not in raw_cases:
            raise MissingArtifactError(f"{location.raw / 'imagesTr'}: case '{case_id}' is not there.")
        image, _ = read_image(raw_cases[case_id].image_files)
        labels, _ = read_label(predictions[case_id])
        grid = labels_on_grid(labels, image, store.load_properties(case_id), plan)
        store.save_previous_stage(case_id, grid.astype(label_dtype(max(values, default=0)), copy=False))
    return values
