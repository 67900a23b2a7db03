"""How much memory predicting one case takes, and where its per-class outputs live so that it fits.

The one term that grows with the number of classes is the sliding window's per-class output on the
preprocessed grid: ``K x N`` float32 values (twice that when several folds are averaged). When the estimated peak
(:class:`PredictionMemory`) is above the limit (``--max-memory``, else 80 % of the RAM available when the case
starts), those values are kept in a file in a scratch folder beside the output instead (a memory map: the
operating system keeps in RAM the slab of tiles being worked on and writes the rest out), and the peak no longer
grows with ``K x N``. The formula is written out in docs/predict.md ("Memory"); bench/big_volume.py measures it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from autounet.errors import UserError
from autounet.preprocessing.memory import case_peak_bytes

PROCESS_BASE_BYTES = 700 * 2**20
"""Resident memory of a predicting process before its first case: Python, torch, numpy, scipy, SimpleITK and the
networks of a typical plan."""
DEFAULT_RAM_SHARE = 0.8
"""Without ``--max-memory``, the per-class outputs go to disk when the estimate exceeds this share of the RAM
available when the case starts."""


@dataclass(frozen=True)
class PredictionMemory:
    """The sizes that decide one case's memory: voxels of the original image and of its preprocessed grid (and
    the crop box between them), image channels, network outputs, and how many per-class arrays are summed at
    once (1 for one fold, 2 when folds are averaged).

    Example:
        >>> m = PredictionMemory((600, 512, 512), (600, 512, 512), (400, 410, 410), 1, 15, 1)
        >>> round(m.peak_bytes(on_disk=False) / 2**30, 1), round(m.peak_bytes(on_disk=True) / 2**30, 1)
        (7.7, 6.8)
    """

    original_shape: tuple[int, ...]
    cropped_shape: tuple[int, ...]
    preprocessed_shape: tuple[int, ...]
    channels: int
    outputs: int
    summed: int = 1
    tile_bytes: int = 0
    """The sliding window's working memory per forward pass: the pass's outputs, their sums over the mirrorings,
    and the network's feature maps (:func:`tile_working_bytes`)."""

    def per_class_bytes(self) -> int:
        """The per-class outputs on the preprocessed grid: ``summed x K x N x 4``."""
        return self.summed * self.outputs * int(np.prod(self.preprocessed_shape)) * 4

    def peak_bytes(self, on_disk: bool) -> int:
        """The estimated peak resident memory while predicting this case (labels only, one configuration).

        The largest of three phases, plus :data:`PROCESS_BASE_BYTES`: preprocessing
        (:func:`~autounet.preprocessing.memory.case_peak_bytes`); the sliding window (the image ``M x C``, the
        preprocessed image and a padded copy ``2 x N x C``, the tile weights' sum ``N``, the per-class outputs,
        a pass's working memory); restoring labels (the image, the per-class outputs, the running maximum over
        the crop box ``Mc``, the resampler's input and two intermediates, each at most ``P``, the product over
        axes of the larger of the preprocessed and the cropped size, and the label map and a mask, ``M + Mc``
        bytes). Every count is of float32 values unless said. With ``on_disk`` the per-class outputs count
        nothing: the pages of their memory map are the operating system's cache, which it writes out instead of
        running out.
        """
        original, preprocessed = int(np.prod(self.original_shape)), int(np.prod(self.preprocessed_shape))
        cropped = int(np.prod(self.cropped_shape))
        larger = int(np.prod([max(a, b) for a, b in zip(self.preprocessed_shape, self.cropped_shape)]))
        per_class = 0 if on_disk else self.per_class_bytes()
        image = original * self.channels * 4
        preprocessing = case_peak_bytes(self.original_shape, self.cropped_shape, self.preprocessed_shape,
                                        self.channels)
        window = image + 2 * preprocessed * self.channels * 4 + preprocessed * 4 + per_class + self.tile_bytes
        restoring = image + per_class + 4 * cropped + 12 * larger + original + cropped
        return PROCESS_BASE_BYTES + max(preprocessing, window, restoring)


def parse_memory(text: str) -> int:
    """Bytes from a size such as ``8G``, ``500M``, ``1.5GB`` or ``1024`` (bytes); binary units.

    Example:
        >>> parse_memory("8G") == 8 * 2**30, parse_memory("500M") == 500 * 2**20, parse_memory("1.5gb") == 3 * 2**29
        (True, True, True)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        raise UserError(f"--max-memory '{text}' is not a size; give e.g. 8G or 500M.")
    value, unit = float(match.group(1)), match.group(2)
    return int(value * 1024 ** "bkmgt".index(unit or "b"))


def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


@dataclass
class MemoryPolicy:
    """Where a predictor keeps per-class outputs: ``limit_bytes`` (None: :data:`DEFAULT_RAM_SHARE` of the RAM
    available) and the folder in which a scratch folder is made when they go to disk (None: the system's
    temporary folder; ``predict`` uses the output folder)."""

    limit_bytes: int | None = None
    scratch_root: Path | None = None

    def limit(self) -> int:
        return self.limit_bytes if self.limit_bytes is not None else int(DEFAULT_RAM_SHARE * available_bytes())

    def needs_disk(self, memory: PredictionMemory) -> bool:
        return memory.peak_bytes(on_disk=False) > self.limit()

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A fresh scratch folder, removed afterwards whatever happens."""
        root = self.scratch_root or Path(tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=root))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


SCRATCH_PREFIX = ".autounet-scratch-"


def remove_scratch_leftovers(folder: Path) -> int:
    """Delete scratch folders a killed prediction left in ``folder`` (call only while holding the folder's lock,
    so no running prediction owns one); returns how many."""
    leftovers = [p for p in Path(folder).glob(f"{SCRATCH_PREFIX}*") if p.is_dir() and not p.is_symlink()]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)


def tile_working_bytes(outputs: int, tile: Sequence[int], features: Sequence[int], tiles_per_pass: int,
                       mirrorings: int) -> int:
    """A forward pass's working memory in the sliding window: its outputs, the sums over the mirrorings of the
    tiles it serves, a flipped copy, and the network's feature maps (8 maps of 4 bytes per feature and voxel and
    stage, the estimate :func:`~autounet.inference.predictor.tiles_per_pass` sizes GPU passes with).

    Example:
        >>> tile_working_bytes(15, (80, 160, 160), [4, 8, 16, 32], 1, 8) / 2**20
        683.59375
    """
    voxels = float(np.prod(tile))
    tiles = max(1, tiles_per_pass // mirrorings)
    sums = 4 * outputs * voxels * (tiles_per_pass + tiles + 1)
    feature_maps = 4 * 8 * sum(f * voxels / 2 ** (len(tile) * s) for s, f in enumerate(features)) * tiles_per_pass
    return int(sums + feature_maps)


def memory_of(original_shape: Sequence[int], cropped_shape: Sequence[int], preprocessed: np.ndarray,
              outputs: int, folds: int, tile_bytes: int = 0) -> PredictionMemory:
    """The :class:`PredictionMemory` of a preprocessed case ``(C, z, y, x)`` predicted by ``folds`` networks."""
    return PredictionMemory(tuple(original_shape), tuple(cropped_shape), tuple(preprocessed.shape[1:]),
                            preprocessed.shape[0], outputs, 2 if folds > 1 else 1, tile_bytes)
