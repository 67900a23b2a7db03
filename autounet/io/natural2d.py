"""2D natural images (PNG, BMP, TIFF, JPEG): grey or RGB, no physical spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autounet.errors import ImageReadError
from autounet.io.geometry import SPACING_2D_THROUGH_PLANE, Geometry
from autounet.utils.atomic import atomic_path


def _geometry() -> Geometry:
    return Geometry((SPACING_2D_THROUGH_PLANE, 1.0, 1.0), is_2d=True)


def read(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read a 2D image as ``(channels, 1, y, x)``; RGB(A) becomes 3 channels (alpha dropped)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise ImageReadError(f"{path}: cannot be read as an image ({error}).") from error
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        array = np.moveaxis(array[..., :3], -1, 0)
    else:
        raise ImageReadError(f"{path}: a 2D image of shape {array.shape} is neither grey nor RGB.")
    return array[:, None], _geometry()


def write_labels(labels: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write a label map ``(1, y, x)`` as an 8- or 16-bit grey image, atomically."""
    from PIL import Image

    plane = labels[0]
    dtype = np.uint8 if plane.max(initial=0) < 256 else np.uint16
    with atomic_path(path) as tmp:
        Image.fromarray(plane.astype(dtype)).save(tmp, format=_PIL_FORMATS[Path(path).suffix.lower()])


_PIL_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
