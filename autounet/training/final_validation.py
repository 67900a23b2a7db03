"""The end of training: predict the fold's validation cases from the raw images and score them.

Uses the inference engineer's :class:`~autounet.inference.predictor.Predictor` (sliding window, TTA, back to
the original geometry) and the evaluation engineer's :func:`~autounet.evaluation.folders.evaluate_folders`;
the results go to ``fold_K/validation/`` (``CASE<ending>``, ``CASE.npz`` with ``save_probabilities``,
``summary.json``, ``metrics.csv``), where ``autounet find-best`` reads them.
"""

from __future__ import annotations

from pathlib import Path

from autounet.dataset.cases import find_cases
from autounet.dataset.spec import load_spec
from autounet.errors import UserError
from autounet.paths import DatasetLocation
from autounet.utils.progress import console

VALIDATION_FOLDER = "validation"


def validate_fold(location: DatasetLocation, fold_dir: Path, case_ids: list[str], save_probabilities: bool,
                  device: str = "auto", tta: bool = True):
    """Predict ``case_ids`` with the fold's final weights and write metrics; returns the evaluation summary.

    ``tta`` mirrors each window (a time budget turns it off when it costs too much of the budget).

    Returns None (with a note) when the raw dataset is not there to read the images and references from.
    """
    from autounet.evaluation.folders import evaluate_folders
    from autounet.evaluation.metrics import classes_from_spec
    from autounet.inference.folder import predict_folder
    from autounet.inference.model_folder import read_fold_identity
    from autounet.inference.predictor import Predictor

    spec = load_spec(fold_dir)
    if not (location.raw / "imagesTr").is_dir():
        console.print(f"note: {location.raw / 'imagesTr'} is not there; skipping the validation predictions.")
        return None
    wanted = set(case_ids)
    cases = [case for case in find_cases(location.raw, spec) if case.case_id in wanted]
    missing = sorted(wanted - {case.case_id for case in cases})
    if missing:
        raise UserError(f"{location.raw / 'imagesTr'}: validation cases {', '.join(missing[:5])} are not there.")
    output = fold_dir / VALIDATION_FOLDER
    # A cascade's validation cases get the first stage of the same fold, which never trained on them.
    fold = read_fold_identity(fold_dir).fold
    predictor = Predictor.from_model_folder(fold_dir, checkpoint="final", device=device, previous_folds=[fold],
                                            tta=tta)
    done = predict_folder(predictor, [f for case in cases for f in case.image_files], output,
                          probabilities=save_probabilities)
    if done.failed:
        raise UserError(f"{output}: {len(done.failed)} validation case(s) could not be predicted: {done.failed[0]}")
    return evaluate_folders(location.raw / "labelsTr", output, classes_from_spec(spec), spec.file_ending,
                            output_dir=output, ignore_label=spec.ignore_label)
