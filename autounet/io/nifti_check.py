"""NIfTI integrity checks that SimpleITK does not make.

SimpleITK (ITK 5.4) reads a truncated ``.nii``/``.nii.gz`` without complaint,
filling the missing voxels with zeros, and turns NaN and infinite voxels into
zeros. These checks catch both from the file itself.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_FLOAT_CODES = {16, 64, 1536}
"""NIfTI datatype codes of float32, float64 and float128 voxels."""
_NIFTI1_DATA_START, _NIFTI2_DATA_START = 352, 544
"""Where a single-file NIfTI-1 / NIfTI-2 image's voxel data starts at the earliest (header + extension flag)."""


@dataclass(frozen=True)
class NiftiLayout:
    """Where a NIfTI file's voxel data lies and what it holds, from its header."""

    data_offset: int
    data_bytes: int
    is_float: bool


def parse_header(start: bytes) -> NiftiLayout | None:
    """The data layout from the first 544 bytes of a single-file NIfTI-1 or NIfTI-2 image; None if not one."""
    for order in "<>":
        if len(start) >= 348 and struct.unpack_from(order + "i", start, 0)[0] == 348:
            dims = struct.unpack_from(order + "8h", start, 40)
            datatype, bitpix = struct.unpack_from(order + "2h", start, 70)
            offset = max(int(struct.unpack_from(order + "f", start, 108)[0]), _NIFTI1_DATA_START)
            break
        if len(start) >= 540 and struct.unpack_from(order + "i", start, 0)[0] == 540:
            datatype, bitpix = struct.unpack_from(order + "2h", start, 12)
            dims = struct.unpack_from(order + "8q", start, 16)
            offset = max(struct.unpack_from(order + "q", start, 168)[0], _NIFTI2_DATA_START)
            break
    else:
        return None
    rank = dims[0]
    if not 1 <= rank <= 7 or bitpix <= 0 or bitpix % 8:
        return None
    voxels = int(np.prod([max(int(d), 0) for d in dims[1:rank + 1]], dtype=np.int64))
    return NiftiLayout(offset, voxels * (bitpix // 8), datatype in _FLOAT_CODES)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_layout(path: Path) -> NiftiLayout | None:
    """The data layout of the NIfTI file at ``path``; None when its header cannot be read or parsed."""
    try:
        return parse_header(_read_start(path))
    except (OSError, EOFError, zlib.error, struct.error):
        return None


def _read_start(path: Path) -> bytes:
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as f:
        return f.read(_NIFTI2_DATA_START)


def truncation_problem(path: Path) -> str | None:
    """Why the NIfTI file at ``path`` is cut short or corrupt, or None when it holds all the data its header declares.

    Cheap for intact files: an uncompressed file is checked by its size, a
    gzip file by the uncompressed size in its trailer; only when that does not
    match is the file decompressed to count its bytes. A header that is not
    NIfTI gives None, and the reader reports it.
    """
    try:
        layout = parse_header(_read_start(path))
    except EOFError:
        return "is truncated (its compressed data ends inside the header)"
    except (gzip.BadGzipFile, zlib.error) as error:
        return f"is corrupt ({error})"
    except OSError as error:
        return f"cannot be opened ({error.strerror or error})"
    if layout is None:
        return None
    needed = layout.data_offset + layout.data_bytes
    if not _is_gzip(path):
        size = path.stat().st_size
        return None if size >= needed else _short(size, needed)
    with open(path, "rb") as f:
        f.seek(-4, 2)
        if struct.unpack("<I", f.read(4))[0] == needed % 2**32:
            return None
    size = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                size += len(chunk)
    except EOFError:
        return f"is truncated (its compressed data ends early; the header needs {needed} bytes)"
    except (gzip.BadGzipFile, zlib.error) as error:
        return f"is corrupt ({error})"
    return None if size >= needed else _short(size, needed)


def _short(size: int, needed: int) -> str:
    return f"is truncated ({size} bytes, its header needs {needed})"


def nonfinite_voxels(path: Path) -> int:
    """How many voxels of the NIfTI file at ``path`` are NaN or infinite (0 for integer data, without reading it)."""
    layout = read_layout(path)
    if layout is None or not layout.is_float:
        return 0
    import nibabel as nib

    data = np.asarray(nib.load(str(path)).dataobj)
    return int(np.count_nonzero(~np.isfinite(data)))
