"""3D TIFF stacks, with spacing from an optional JSON sidecar ``NAME.json`` holding ``{"spacing": [z, y, x]}``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autounet.errors import ImageReadError
from autounet.io.geometry import Geometry
from autounet.utils.atomic import atomic_path, write_json


def _sidecar(path: Path) -> Path:
    name = path.name
    for ending in (".tiff", ".tif"):
        if name.lower().endswith(ending):
            name = name[: -len(ending)]
    return path.with_name(name + ".json")


def read(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read a TIFF stack as ``(1, z, y, x)``; spacing from the sidecar, else 1 along every axis."""
    import tifffile

    try:
        array = tifffile.imread(str(path))
    except Exception as error:  # tifffile raises several types for broken files
        raise ImageReadError(f"{path}: cannot be read as TIFF ({error}).") from error
    spacing = (1.0, 1.0, 1.0)
    sidecar = _sidecar(path)
    if sidecar.exists():
        try:
            spacing = tuple(float(s) for s in json.loads(sidecar.read_text())["spacing"])
        except (ValueError, KeyError, TypeError) as error:
            raise ImageReadError(f"{sidecar}: must hold {{\"spacing\": [z, y, x]}} ({error}).") from error
    if array.ndim != 3:
        raise ImageReadError(f"{path}: a 3D TIFF needs 3 dimensions, found shape {array.shape}.")
    return array[None], Geometry(spacing)  # type: ignore[arg-type]


def write_labels(labels: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write a label stack ``(z, y, x)`` and its spacing sidecar, atomically."""
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(str(tmp), labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16))
    write_json(_sidecar(Path(path)), {"spacing": list(geometry.spacing)})
