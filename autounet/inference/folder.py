"""Predict every case of a folder (or a list of files) and write the segmentations beside each other."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import UserError
from autounet.inference.inputs import InputCase, collect_cases, read_case, unsupported_files
from autounet.inference.memory import remove_scratch_leftovers
from autounet.inference.predictor import Predictor
from autounet.io import SPACING_2D_THROUGH_PLANE, Geometry, write_segmentation
from autounet.io.registry import NATURAL_2D_ENDINGS
from autounet.utils.atomic import check_writable, remove_abandoned_temporaries, write_bytes
from autounet.utils.progress import console, track

PROBABILITIES_KEY = "probabilities"


@dataclass
class FolderSummary:
    """What a folder prediction did: cases written, skipped (already done) and failed (with the reason)."""

    predicted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds per stage over the cases predicted (read, preprocess, sliding window, restore, write, ...)."""

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
    """The cases in ``inputs``, after checking that there are some, that ``output`` is not an input folder and
    that it can be written (it is created if missing), so that nothing is computed for outputs that cannot be
    kept."""
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
    check_writable(output)
    return cases


def trained_on_2d_images(predictor: Predictor) -> bool:
    """Whether the model was trained on 2D images (PNG and the like, or single-slice files)."""
    model = predictor.models[0].trained
    return model.plan.spacing[0] >= SPACING_2D_THROUGH_PLANE or model.spec.file_ending in NATURAL_2D_ENDINGS


def trained_on_volumes(predictor: Predictor) -> bool:
    """Whether the model was trained on 3D volumes (a 3D configuration; a 2d one may have been on either)."""
    return any(not model.trained.plan.is_2d for model in predictor.models)


def check_dimensionality(predictor: Predictor, image: np.ndarray, geometry: Geometry, source: Path) -> None:
    """Refuse a 2D image for a model trained on volumes and a volume for a model trained on 2D images."""
    slices = image.shape[1]
    if trained_on_volumes(predictor) and (geometry.is_2d or slices == 1):
        raise UserError(f"{source}: is a 2D image (one slice), but the model was trained on 3D volumes; "
                        f"predict 3D images with it, or train a model on 2D images.")
    if trained_on_2d_images(predictor) and not geometry.is_2d and slices > 1:
        raise UserError(f"{source}: is a 3D volume ({slices} slices), but the model was trained on 2D images; "
                        f"predict 2D images with it.")


def _outputs(case: InputCase, output: Path, with_probabilities: bool) -> list[Path]:
    files = [output / case.output_name()]
    if with_probabilities:
        files.append(output / f"{case.case_id}.npz")
    return files


def predict_folder(predictor: Predictor, inputs: Sequence[Path], output: Path, probabilities: bool = False,
                   skip_existing: bool = False) -> FolderSummary:
    """Segment every case in ``inputs`` (folders and files) into ``output`` as ``CASE<ending>``.

    A case that cannot be read, has the wrong channels or dimensionality, or holds NaN/Inf intensities is
    reported in ``failed`` (as is a file in an input folder that is not an image) and the others go on.
    Temporary files and scratch folders a killed prediction left in ``output`` are removed.

    Example:
        >>> summary = predict_folder(predictor, [Path("imagesTs")], Path("predictions"))  # doctest: +SKIP
        >>> summary.failed
        []
    """
    output = Path(output)
    cases = cases_to_predict(inputs, output)
    remove_abandoned_temporaries(output)  # what a killed prediction was writing
    remove_scratch_leftovers(output)
    renamed = [case for case in cases if not case.output_name().endswith(case.ending)]
    if renamed:
        console.print(f"note: {len(renamed)} JPEG input(s): their segmentations are written as PNG "
                      f"(e.g. {renamed[0].output_name()}), since label maps must be stored losslessly.",
                      highlight=False, soft_wrap=True)
    summary = FolderSummary()
    summary.failed += [f"{path}: is not an image file autounet reads (unknown ending); skipped, move it out of "
                       f"the input folder." for path in unsupported_files(inputs)]
    start = time.perf_counter()
    times = predictor.times
    before = dict(times.seconds)
    for case in track(cases, "predict"):
        targets = _outputs(case, output, probabilities)
        if skip_existing and all(path.is_file() for path in targets):
            summary.skipped.append(case.case_id)
            continue
        try:
            with times.measure("read"):
                image, geometry = read_case(case)
            predictor.check_channels(image.shape[0], str(case.files[0]))
            check_dimensionality(predictor, image, geometry, case.files[0])
            prediction = predictor.predict(image, geometry, probabilities, case.case_id)
        except UserError as error:
            summary.failed.append(str(error))
            continue
        with times.measure("write"):
            write_segmentation(prediction.labels, geometry, targets[0])
            if probabilities:
                save_probabilities(prediction.probabilities, targets[1])
        summary.predicted.append(case.case_id)
    summary.seconds = time.perf_counter() - start
    summary.stage_seconds = {stage: seconds - before.get(stage, 0.0) for stage, seconds in times.seconds.items()}
    return summary
