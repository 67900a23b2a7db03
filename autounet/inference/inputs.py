"""The images to predict: a folder of ``CASE_XXXX.ext`` channel files, single files, or a list of both.

Channel files of one case are grouped by their case identifier; a file that does not follow the
``CASE_XXXX`` convention is a single-channel case of its own named after the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.dataset.cases import split_channel_name
from autounet.errors import ImageReadError, UserError
from autounet.io import Geometry, file_ending, read_volume, segmentation_path
from autounet.io.nifti_check import nonfinite_voxels


@dataclass(frozen=True)
class InputCase:
    """One case to predict: its identifier, its channel files in channel order, and their file ending."""

    case_id: str
    files: tuple[Path, ...]
    ending: str

    def output_name(self) -> str:
        """The file name of its segmentation: the case identifier with the input's ending (PNG for a JPEG input,
        since label maps are stored losslessly)."""
        return segmentation_path(f"{self.case_id}{self.ending}").name


def _files_of(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files += sorted(p for p in _visible_files(path) if file_ending(p))
        elif path.is_file():
            if not file_ending(path):
                raise ImageReadError(f"{path}: not an image file autounet reads (unsupported ending).")
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder.")
    return files


def _visible_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def unsupported_files(paths: Sequence[Path]) -> list[Path]:
    """Files inside the given folders that autounet cannot read as images (hidden files aside), sorted."""
    return sorted(p for path in paths if Path(path).is_dir() for p in _visible_files(Path(path))
                  if not file_ending(p))


def collect_cases(paths: Sequence[Path]) -> list[InputCase]:
    """The cases in ``paths`` (folders and files), sorted by identifier.

    Example:
        >>> collect_cases([Path("imagesTs")])  # doctest: +SKIP
        [InputCase(case_id='case_001', files=(PosixPath('imagesTs/case_001_0000.nii.gz'),), ending='.nii.gz')]
    """
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    for path in _files_of(paths):
        ending = file_ending(path)
        parsed = split_channel_name(path.name, ending)
        case_id, channel = parsed if parsed else (path.name[: -len(ending)], 0)
        channels = groups.setdefault((case_id, ending), {})
        if channel in channels and channels[channel] != path:
            raise UserError(f"{path}: channel {channel} of case '{case_id}' is given twice "
                            f"(also {channels[channel]}).")
        channels[channel] = path
    cases = [InputCase(case_id, tuple(channels[c] for c in sorted(channels)), ending)
             for (case_id, ending), channels in groups.items()]
    return sorted(cases, key=lambda case: case.case_id)


def read_case(case: InputCase) -> tuple[np.ndarray, Geometry]:
    """The case's image ``(C, Z, Y, X)`` float32 and geometry, its channel files stacked in order.

    Raises a :class:`UserError` naming the file when a channel file is missing, a file is unreadable, holds
    NaN or infinite intensities, or the channels disagree in shape, spacing, origin or direction. (An RGB file
    holds three channels.)
    """
    numbers = [split_channel_name(f.name, case.ending) for f in case.files]
    indices = [n[1] if n else 0 for n in numbers]
    if indices != list(range(len(case.files))):
        missing = sorted(set(range(max(indices) + 1)) - set(indices))
        names = ", ".join(f"{case.case_id}_{m:04d}{case.ending}" for m in missing)
        raise UserError(f"case '{case.case_id}': channel file(s) {names}"
                        f" missing in {case.files[0].parent}.")
    arrays, geometry = [], None
    for path in case.files:
        array, current = read_volume(path)
        check_finite(array, path)
        if geometry is None:
            geometry = current
        else:
            if array.shape[1:] != arrays[0].shape[1:]:
                raise ImageReadError(f"{path}: shape {array.shape[1:]} differs from {case.files[0].name} "
                                     f"({arrays[0].shape[1:]}).")
            differing = current.matches(geometry)
            if differing:
                raise ImageReadError(f"{path}: {' and '.join(differing)} differ(s) from {case.files[0].name}; "
                                     f"all channels of a case must share one geometry.")
        arrays.append(array.astype(np.float32, copy=False))
    return np.concatenate(arrays, axis=0), geometry  # type: ignore[return-value]


def check_finite(array: np.ndarray, path: Path) -> None:
    """Refuse an image with NaN or infinite intensities: normalisation would spread them over the whole case."""
    if path.name.lower().endswith((".nii", ".nii.gz")):
        # SimpleITK's NIfTI reader turns NaN into 0, so the array no longer shows them; the file does.
        bad = nonfinite_voxels(path)
        if bad:
            _refuse_nonfinite(path, bad)
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = 0
    flat = array.reshape(-1)
    step = 1 << 24  # in chunks, so the check costs no full-size mask
    for start in range(0, flat.size, step):
        bad += int(np.count_nonzero(~np.isfinite(flat[start:start + step])))
    if bad:
        _refuse_nonfinite(path, bad)


def _refuse_nonfinite(path: Path, count: int) -> None:
    raise ImageReadError(f"{path}: has {count} NaN or infinite voxel(s); replace them (e.g. with the background "
                         f"value) before predicting.")
