"""NIfTI through nibabel: an alternative reader giving the same arrays and geometry as SimpleITK."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autounet.errors import ImageReadError
from autounet.io.geometry import Geometry

# nibabel's affine maps voxel (i, j, k) to RAS+; SimpleITK and autounet use LPS+.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def read(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read a NIfTI file as ``(channels, z, y, x)`` with SimpleITK-compatible geometry."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj)
    except Exception as error:  # nibabel raises many types for broken files
        raise ImageReadError(f"{path}: cannot be read as NIfTI ({error}).") from error
    if data.ndim != 3:
        raise ImageReadError(f"{path}: has {data.ndim} dimensions; the nibabel reader takes 3D volumes.")
    affine = image.affine
    linear = _RAS_TO_LPS @ affine[:3, :3]
    spacing_xyz = np.linalg.norm(linear, axis=0)
    direction = linear / spacing_xyz
    origin = _RAS_TO_LPS @ affine[:3, 3]
    array = np.transpose(data, (2, 1, 0))[None]  # (x, y, z) -> (z, y, x)
    return array, Geometry(tuple(float(s) for s in spacing_xyz[::-1]), tuple(float(o) for o in origin),
                           tuple(float(v) for v in direction.ravel()))
