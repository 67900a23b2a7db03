"""Predict every case of a folder (or a list of files) and write the segmentations beside each other."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import UserError
from autounet.inference.inputs import InputCase, collect_cases, read_case
from autounet.inference.predictor import Predictor
from autounet.io import write_segmentation
from autounet.utils.atomic import write_bytes
from autounet.utils.progress import track

PROBABILITIES_KEY = "probabilities"


@dataclass
class FolderSummary:
    """What a folder prediction did: cases written, skipped (already done) and failed (with the reason)."""

    predicted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def seconds_per_case(self) -> float:
        return self.seconds / max(len(self.predicted), 1)


def save_probabilities(probabilities: np.ndarray, path: Path) -> None:
    """Write probabilities ``(K, Z, Y, X)`` as a compressed ``.npz`` (key ``probabilities``), atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{PROBABILITIES_KEY: probabilities.astype(np.float32, copy=False)})
    write_bytes(path, buffer.getvalue())


def load_probabilities(path: Path) -> np.ndarray:
    """The probabilities saved by :func:`save_probabilities`."""
    with np.load(path, allow_pickle=False) as npz:
        return npz[PROBABILITIES_KEY]


def cases_to_predict(inputs: Sequence[Path], output: Path) -> list[InputCase]:
    """The cases in ``inputs``, after checking that there are some and that ``output`` is not an input folder."""
    target = Path(output).resolve()
    for path in inputs:
        folder = Path(path).resolve()
        folder = folder if folder.is_dir() else folder.parent
        if folder == target:
            raise UserError(f"{output}: output folder is the input folder; choose another, inputs are never "
                            f"overwritten.")
    cases = collect_cases(inputs)
    if not cases:
        raise UserError(f"{', '.join(str(p) for p in inputs)}: no image files found.")
    return cases


def _outputs(case: InputCase, output: Path, with_probabilities: bool) -> list[Path]:
    files = [output / case.output_name()]
    if with_probabilities:
        files.append(output / f"{case.case_id}.npz")
    return files


def predict_folder(predictor: Predictor, inputs: Sequence[Path], output: Path, probabilities: bool = False,
                   skip_existing: bool = False) -> FolderSummary:
    """Segment every case in ``inputs`` (folders and files) into ``output`` as ``CASE<ending>``.

    A case that cannot be read or has the wrong channels is reported in ``failed`` and the others go on.

    Example:
        >>> summary = predict_folder(predictor, [Path("imagesTs")], Path("predictions"))  # doctest: +SKIP
        >>> summary.failed
        []
    """
    output = Path(output)
    cases = cases_to_predict(inputs, output)
    output.mkdir(parents=True, exist_ok=True)
    summary = FolderSummary()
    start = time.perf_counter()
    for case in track(cases, "predict"):
        targets = _outputs(case, output, probabilities)
        if skip_existing and all(path.is_file() for path in targets):
            summary.skipped.append(case.case_id)
            continue
        try:
            image, geometry = read_case(case)
            predictor.check_channels(image.shape[0], str(case.files[0]))
            prediction = predictor.predict(image, geometry, probabilities, case.case_id)
        except UserError as error:
            summary.failed.append(str(error))
            continue
        write_segmentation(prediction.labels, geometry, targets[0])
        if probabilities:
            save_probabilities(prediction.probabilities, targets[1])
        summary.predicted.append(case.case_id)
    summary.seconds = time.perf_counter() - start
    return summary
