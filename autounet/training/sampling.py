"""Patch sampling from memory-mapped cases, with foreground oversampling.

Pure numpy (no torch) so that data workers start fast. Patches may reach past
a case's border (small cases, patches centred on border voxels); the missing
part is padded with 0 in the image and -1 in the labels (-1 = outside the
image, treated as background by the loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autounet.preprocessing.store import PreprocessedCase

SEG_PAD = -1


@dataclass
class PatchRequest:
    """Where to read one patch: a case, its slice for 2D patches, and the patch's lower corner per axis."""

    case_id: str
    slice_index: int | None
    start: list[int]


def forced_foreground_count(batch_size: int, share: float) -> int:
    """How many samples of a batch are forced onto foreground: ``round(batch * share)``, at least 1 if share > 0.

    Example:
        >>> forced_foreground_count(2, 0.33), forced_foreground_count(9, 0.33), forced_foreground_count(4, 0.0)
        (1, 3, 0)
    """
    if share <= 0:
        return 0
    return min(batch_size, max(1, int(round(batch_size * share))))


def start_range(size: int, patch: int) -> tuple[int, int]:
    """The inclusive range of patch starts on one axis: inside the case, or centred padding when it is smaller."""
    pad = max(0, patch - size)
    low = -(pad // 2)
    return low, size + pad - pad // 2 - patch


def choose_patch(case: PreprocessedCase, case_id: str, patch_size: list[int], force_foreground: bool,
                 rng: np.random.Generator) -> PatchRequest:
    """Choose a random patch of ``patch_size`` (2 or 3 axes) in ``case``.

    With ``force_foreground``, a foreground class present in the case is drawn
    uniformly, then one of its stored voxels, and the patch is centred on it
    (moved inside the allowed range). A case without foreground gets a random patch.
    """
    spatial = case.data.shape[1:]
    classes = [k for k, v in sorted(case.class_locations.items()) if len(v)]
    voxel = None
    if force_foreground and classes:
        locations = case.class_locations[classes[rng.integers(len(classes))]]
        voxel = [int(v) for v in locations[rng.integers(len(locations))]]
    slice_index = None
    if len(patch_size) == 2:
        slice_index = voxel[0] if voxel is not None else int(rng.integers(spatial[0]))
        spatial, voxel = spatial[1:], (voxel[1:] if voxel is not None else None)
    start = []
    for axis, (size, patch) in enumerate(zip(spatial, patch_size)):
        low, high = start_range(size, patch)
        if voxel is None:
            start.append(int(rng.integers(low, high + 1)))
        else:
            start.append(int(np.clip(voxel[axis] - patch // 2, low, high)))
    return PatchRequest(case_id, slice_index, start)


def read_patch(array: np.ndarray, request: PatchRequest, patch_size: list[int], fill: float) -> np.ndarray:
    """Read the requested patch from a (C, Z, Y, X) array, reading only that part of a memory map.

    Returns (C, *patch_size); for 2D requests the slice axis is dropped.
    """
    if request.slice_index is not None:
        array = array[:, request.slice_index]
    spatial = array.shape[1:]
    inside = tuple(slice(max(s, 0), min(s + p, n)) for s, p, n in zip(request.start, patch_size, spatial))
    block = np.asarray(array[(slice(None), *inside)])
    pads = [(0, 0)] + [(max(0, -s), max(0, s + p - n)) for s, p, n in zip(request.start, patch_size, spatial)]
    if any(before or after for before, after in pads):
        block = np.pad(block, pads, mode="constant", constant_values=fill)
    return block


def sample_batch(cases: dict[str, PreprocessedCase], case_ids: list[str], batch_size: int, patch_size: list[int],
                 oversample_foreground: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A batch of image and label patches: (B, C, *patch) float32, (B, 1, *patch) int16, and the case ids.

    The last ``forced_foreground_count`` samples are forced onto foreground. Cases that carry a cascade's
    previous-stage label map give it as a second label channel, (B, 2, *patch), from the same place.
    """
    forced = forced_foreground_count(batch_size, oversample_foreground)
    images, labels, chosen = [], [], []
    for index in range(batch_size):
        case_id = case_ids[rng.integers(len(case_ids))]
        case = cases[case_id]
        request = choose_patch(case, case_id, patch_size, index >= batch_size - forced, rng)
        images.append(read_patch(case.data, request, patch_size, 0.0).astype(np.float32, copy=False))
        label = read_patch(case.seg, request, patch_size, SEG_PAD).astype(np.int16, copy=False)
        if case.previous_stage is not None:
            previous = read_patch(case.previous_stage, request, patch_size, SEG_PAD).astype(np.int16, copy=False)
            label = np.concatenate([label, previous])
        labels.append(label)
        chosen.append(case_id)
    return np.stack(images), np.stack(labels), chosen
