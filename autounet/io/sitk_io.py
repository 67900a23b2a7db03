"""Medical volumes (NIfTI, NRRD, MHA) through SimpleITK."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autounet.errors import ImageReadError
from autounet.io.geometry import Geometry
from autounet.io.nifti_check import truncation_problem
from autounet.utils.atomic import atomic_path


def read(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read one file as ``(channels, z, y, x)`` plus its geometry (2D files get one z slice)."""
    if path.name.lower().endswith((".nii", ".nii.gz")):
        # SimpleITK fills the missing part of a truncated NIfTI file with zeros instead of failing.
        problem = truncation_problem(path)
        if problem:
            raise ImageReadError(f"{path}: {problem}.")
    import SimpleITK as sitk  # imported on first use, so processes that never read images start faster

    try:
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise ImageReadError(f"{path}: cannot be read as an image ({reason[:200]}).") from error
    dim = image.GetDimension()
    components = image.GetNumberOfComponentsPerPixel()
    if components > 1:  # vector pixels -> channels first
        array = np.moveaxis(array, -1, 0)
    else:
        array = array[None]
    if dim == 2:
        array = array[:, None]
        spacing = (999.0, *image.GetSpacing()[::-1])
        origin = (*image.GetOrigin(), 0.0)
        d = image.GetDirection()
        direction = (d[0], d[1], 0.0, d[2], d[3], 0.0, 0.0, 0.0, 1.0)
        return array, Geometry(spacing, origin, direction, is_2d=True)
    if dim != 3:
        raise ImageReadError(f"{path}: has {dim} dimensions; autounet reads 2D and 3D images (4D: one file per channel).")
    return array, Geometry(tuple(image.GetSpacing()[::-1]), tuple(image.GetOrigin()), tuple(image.GetDirection()))


def write_labels(labels: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write a label map ``(z, y, x)`` with ``geometry``, atomically."""
    import SimpleITK as sitk

    if geometry.is_2d:
        image = sitk.GetImageFromArray(labels[0])
        image.SetSpacing(tuple(geometry.spacing[1:][::-1]))
        image.SetOrigin(tuple(geometry.origin[:2]))
        d = geometry.direction
        image.SetDirection((d[0], d[1], d[3], d[4]))
    else:
        image = sitk.GetImageFromArray(labels)
        image.SetSpacing(tuple(float(s) for s in geometry.spacing[::-1]))
        image.SetOrigin(tuple(geometry.origin))
        image.SetDirection(tuple(geometry.direction))
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
