"""Choose a reader or writer from a file's ending."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import ImageReadError
from autounet.io import natural2d, nibabel_io, sitk_io, tiff3d
from autounet.io.geometry import Geometry
from autounet.utils.progress import console

SITK_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
NATURAL_2D_ENDINGS = (".png", ".bmp", ".jpg", ".jpeg")
TIFF_ENDINGS = (".tif", ".tiff")
SUPPORTED_ENDINGS = SITK_ENDINGS + NATURAL_2D_ENDINGS + TIFF_ENDINGS
LOSSY_ENDINGS = (".jpg", ".jpeg")
"""Endings read as images but never as label maps: JPEG's lossy compression changes label values (which is why
nnU-Net does not accept JPEG at all). Segmentations of JPEG images are written as PNG."""


def file_ending(path: str | os.PathLike) -> str:
    """The supported ending of ``path`` (``.nii.gz`` counts as one), or '' if unsupported."""
    name = Path(path).name.lower()
    return next((e for e in SUPPORTED_ENDINGS if name.endswith(e)), "")


def is_lossy(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a JPEG file, which can hold an image but not a label map."""
    return file_ending(path) in LOSSY_ENDINGS


def segmentation_path(path: str | os.PathLike) -> Path:
    """Where a segmentation meant for ``path`` is written: ``path`` itself, or for a JPEG name the same name
    ending in ``.png`` (label maps must be stored losslessly).

    Example:
        >>> segmentation_path("out/photo.jpg").name
        'photo.png'
    """
    path = Path(path)
    if not is_lossy(path):
        return path
    return path.with_name(path.name[: -len(file_ending(path))] + ".png")


def read_volume(path: str | os.PathLike, reader: str = "auto") -> tuple[np.ndarray, Geometry]:
    """Read one file as ``(channels, z, y, x)`` in its stored dtype, plus its geometry.

    ``reader`` may force ``"sitk"`` or ``"nibabel"`` for NIfTI files.
    """
    path = Path(path)
    ending = file_ending(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found.")
    if reader == "nibabel" and ending in (".nii", ".nii.gz"):
        return nibabel_io.read(path)
    if ending in SITK_ENDINGS:
        return sitk_io.read(path)
    if ending in NATURAL_2D_ENDINGS:
        return natural2d.read(path)
    if ending in TIFF_ENDINGS:
        return _read_tiff(path)
    raise ImageReadError(f"{path}: unsupported file type; use one of {', '.join(SUPPORTED_ENDINGS)}.")


def _read_tiff(path: Path) -> tuple[np.ndarray, Geometry]:
    """A TIFF is a 2D image when it is one plane (grey or RGB) without a spacing sidecar, else a 3D stack."""
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            shape = tif.series[0].shape
    except Exception as error:  # noqa: BLE001
        raise ImageReadError(f"{path}: cannot be read as TIFF ({error}).") from error
    is_plane = len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))
    if is_plane and not tiff3d._sidecar(path).exists():
        return natural2d.read(path)
    return tiff3d.read(path)


def read_image(paths: Sequence[str | os.PathLike], reader: str = "auto") -> tuple[np.ndarray, Geometry]:
    """Read a case's channel files and stack them into one float32 ``(channels, z, y, x)`` array.

    The geometry is that of the first file. Files of one case must agree in
    shape (checked here); ``autounet verify`` also checks their geometry.
    """
    arrays, geometry = [], None
    for path in paths:
        array, geo = read_volume(path, reader)
        if arrays and array.shape[1:] != arrays[0].shape[1:]:
            raise ImageReadError(f"{path}: shape {array.shape[1:]} differs from {paths[0]} ({arrays[0].shape[1:]}).")
        arrays.append(array.astype(np.float32, copy=False))
        geometry = geometry or geo
    if not arrays:
        raise ImageReadError("no image files were given.")
    return np.concatenate(arrays, axis=0), geometry  # type: ignore[return-value]


def read_label(path: str | os.PathLike, reader: str = "auto") -> tuple[np.ndarray, Geometry]:
    """Read a label map as an integer array ``(z, y, x)`` plus its geometry.

    Labels stored as floats are accepted when every value is a whole number; JPEG files are refused.
    """
    if is_lossy(path):
        raise ImageReadError(f"{path}: a label map cannot be a JPEG file, whose lossy compression changes label "
                             f"values; save it as PNG.")
    array, geometry = read_volume(path, reader)
    if array.shape[0] != 1:
        raise ImageReadError(f"{path}: a label map must have one channel, found {array.shape[0]}.")
    array = array[0]
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)):
            raise ImageReadError(f"{path}: label map contains NaN or infinite values.")
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise ImageReadError(f"{path}: label map holds non-integer values (e.g. {array[rounded != array].flat[0]}).")
        array = rounded
    if array.min(initial=0) < 0:
        raise ImageReadError(f"{path}: label map holds negative values (e.g. {int(array.min())}).")
    return array.astype(np.uint8 if array.max(initial=0) < 256 else np.int16), geometry


def write_segmentation(labels: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> Path:
    """Write a label map ``(z, y, x)`` with ``geometry`` to ``path`` (format from its ending), atomically, and
    return the path written: for a JPEG name the PNG of :func:`segmentation_path`, with a note on the console.
    """
    requested = Path(path)
    path = segmentation_path(requested)
    if path != requested:
        console.print(f"{requested}: segmentations are not written as JPEG (lossy), written as {path.name} instead.")
    ending = file_ending(path)
    labels = np.asarray(labels)
    labels = labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16)
    if ending in SITK_ENDINGS:
        sitk_io.write_labels(labels, geometry, path)
    elif ending in NATURAL_2D_ENDINGS or (ending in TIFF_ENDINGS and geometry.is_2d):
        natural2d.write_labels(labels, geometry, path)
    elif ending in TIFF_ENDINGS:
        tiff3d.write_labels(labels, geometry, path)
    else:
        raise ImageReadError(f"{path}: cannot write this file type; use one of {', '.join(SUPPORTED_ENDINGS)}.")
    return path
