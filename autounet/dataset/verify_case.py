"""Checks that read one case's files: readability, intensities, geometry agreement and label values.

Runs in worker processes, so it takes and returns plain picklable data and
never raises for a bad file: every problem becomes a line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autounet.io import Geometry, read_label, read_volume
from autounet.io.registry import is_lossy
from autounet.io.nifti_check import nonfinite_voxels


@dataclass(frozen=True)
class CaseJob:
    """One case to check. Paths are absolute; messages name them relative to ``dataset_folder``."""

    dataset_folder: Path
    case_id: str
    image_files: tuple[Path, ...]
    label_file: Path | None
    num_channels: int | None
    """Channels dataset.json declares; None when it does not say (or the case misses a file)."""
    label_values: frozenset[int] | None
    """Values a label may hold; None when dataset.json's labels are unusable."""
    ignore_label: int | None = None


@dataclass
class CaseCheck:
    """What checking one case found."""

    case_id: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    is_2d: bool | None = None
    """Whether the case's first image is 2D; None when it could not be read."""
    first_file: str = ""


def check_case(job: CaseJob) -> CaseCheck:
    """Read every file of ``job`` and report each problem as a line starting with the file's relative path."""
    result = CaseCheck(job.case_id)
    name = _Namer(job.dataset_folder)
    reference: tuple[np.ndarray, Geometry, Path] | None = None
    channels = unread = 0
    for path in job.image_files:
        loaded = _read(path, name, result.errors, label=False)
        if loaded is None:
            unread += 1
            continue
        array, geometry = loaded
        channels += array.shape[0]
        _check_intensities(array, path, name, result)
        _check_spacing(geometry, name(path), result.errors)
        if reference is None:
            reference = (array, geometry, path)
            result.is_2d, result.first_file = geometry.is_2d, name(path)
        else:
            _check_agreement(array.shape[1:], geometry, path, reference, name, result.errors)
    if job.num_channels is not None and reference is not None and not unread and channels != job.num_channels:
        result.errors.append(f"{name(job.image_files[0])}: case '{job.case_id}' has {channels} channel(s) in "
                             f"{len(job.image_files)} file(s), but dataset.json declares {job.num_channels} "
                             f"(channel_names).")
    if job.label_file is not None and not is_lossy(job.label_file):  # a JPEG ending is refused in dataset.json
        _check_label(job, reference, name, result)
    return result


class _Namer:
    """Names files relative to the dataset folder, and rewrites reader messages that use full paths."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self, path: Path) -> str:
        return relative_name(self.folder, path)

    def message(self, error: Exception, path: Path) -> str:
        text = str(error).replace(str(path), self(path))
        return text if text.startswith(self(path)) else f"{self(path)}: {text}"


def relative_name(folder: Path, path: Path) -> str:
    """``path`` relative to ``folder`` in POSIX form (as printed in reports), or in full when outside it."""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def _read(path: Path, name: _Namer, errors: list[str], label: bool):
    try:
        return read_label(path) if label else read_volume(path)
    except MemoryError:
        errors.append(f"{name(path)}: too large to read into memory.")
    except Exception as error:  # noqa: BLE001 - every reader failure is a problem with this file
        errors.append(name.message(error, path) if str(error) else f"{name(path)}: cannot be read "
                                                                    f"({type(error).__name__}).")
    return None


def _check_intensities(array: np.ndarray, path: Path, name: _Namer, result: CaseCheck) -> None:
    file = name(path)
    bad = int(np.count_nonzero(~np.isfinite(array))) if np.issubdtype(array.dtype, np.floating) else 0
    if not bad and path.name.lower().endswith((".nii", ".nii.gz")):
        # SimpleITK reads NaN and infinite NIfTI voxels as zeros; look at the stored values.
        try:
            bad = nonfinite_voxels(path)
        except Exception as error:  # noqa: BLE001 - nibabel raises many types for odd files
            result.errors.append(f"{file}: its voxel values cannot be checked ({error}).")
            return
    if bad:
        result.errors.append(f"{file}: {bad} voxel(s) are NaN or infinite.")
        return
    for index, channel in enumerate(array):
        if channel.size and channel.min() == channel.max():
            which = f" channel {index}:" if array.shape[0] > 1 else ""
            result.warnings.append(f"{file}:{which} every voxel has the same value ({channel.flat[0]:g}).")


def _check_spacing(geometry: Geometry, file: str, errors: list[str]) -> None:
    spacing = np.asarray(geometry.spacing, float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        errors.append(f"{file}: spacing {_fmt(geometry.spacing)} is not positive and finite.")


def _check_agreement(shape: tuple[int, ...], geometry: Geometry, path: Path,
                     reference: tuple[np.ndarray, Geometry, Path], name: _Namer, errors: list[str]) -> None:
    ref_array, ref_geometry, ref_path = reference
    if tuple(shape) != tuple(ref_array.shape[1:]):
        errors.append(f"{name(path)}: shape {_shape(shape, geometry)} differs from that of {name(ref_path)}, "
                      f"{_shape(ref_array.shape[1:], ref_geometry)}.")
        return
    if geometry.is_2d != ref_geometry.is_2d:
        errors.append(f"{name(path)}: is {'2D' if geometry.is_2d else '3D'} but {name(ref_path)} is "
                      f"{'2D' if ref_geometry.is_2d else '3D'}.")
        return
    for prop in geometry.matches(ref_geometry):
        errors.append(f"{name(path)}: {prop} {_fmt(getattr(geometry, prop))} differs from that of {name(ref_path)}, "
                      f"{_fmt(getattr(ref_geometry, prop))}.")


def _check_label(job: CaseJob, reference, name: _Namer, result: CaseCheck) -> None:
    path = job.label_file
    loaded = _read(path, name, result.errors, label=True)
    if loaded is None:
        return
    labels, geometry = loaded
    _check_spacing(geometry, name(path), result.errors)
    if reference is not None:
        _check_agreement(labels.shape, geometry, path, reference, name, result.errors)
    present = np.flatnonzero(np.bincount(labels.ravel()))
    if job.label_values is not None:
        undeclared = sorted(set(present.tolist()) - job.label_values)
        if undeclared:
            result.errors.append(f"{name(path)}: holds value(s) {', '.join(map(str, undeclared))} not declared in "
                                 f"dataset.json labels ({', '.join(map(str, sorted(job.label_values)))}).")
    if not any(v not in (0, job.ignore_label) for v in present.tolist()):
        result.warnings.append(f"{name(path)}: no foreground (every voxel is background).")


def _shape(shape, geometry: Geometry) -> str:
    return "x".join(str(s) for s in (shape[1:] if geometry.is_2d and len(shape) == 3 else shape))


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
