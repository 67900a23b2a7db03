"""Compute a dataset's fingerprint from its raw files."""

from __future__ import annotations

import hashlib
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from autounet import __version__
from autounet.dataset import Case, DatasetSpec, find_cases, load_spec
from autounet.errors import UserError
from autounet.fingerprint.crop import any_nonzero, bbox_of, crop_to_bbox
from autounet.fingerprint.detail import coarsened_label_dice
from autounet.fingerprint.model import CaseFingerprint, ChannelStats, Fingerprint
from autounet.io import read_image, read_label
from autounet.utils.parallel import default_workers, map_in_processes

FOREGROUND_SAMPLES_TOTAL = 10_000_000
"""Foreground intensities kept over the whole dataset (split evenly between cases)."""
MIN_SAMPLES_PER_CASE = 10_000
SAMPLING_SEED = 1234


def raw_digest(dataset_folder: Path) -> str:
    """A digest of the names, sizes and modification times of dataset.json and the training files."""
    h = hashlib.sha256()
    folder = Path(dataset_folder)
    entries = [folder / "dataset.json"]
    for sub in ("imagesTr", "labelsTr"):
        if (folder / sub).is_dir():
            entries.extend(sorted((folder / sub).iterdir()))
    for path in entries:
        if path.is_file():
            st = path.stat()
            h.update(f"{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


@dataclass
class _CaseResult:
    fingerprint: CaseFingerprint
    values: list[np.ndarray]  # per channel: sampled foreground intensities, ascending
    weights: list[np.ndarray]  # per channel: the weight of each value
    is_2d: bool


def fingerprint_case(case: Case, samples_per_case: int, seed: int = SAMPLING_SEED) -> _CaseResult:
    """Shape, spacing, crop box, label detail and a weighted sample of foreground intensities for one case.

    Every case contributes the same total weight, as if ``samples_per_case``
    voxels were drawn from its foreground with replacement; keeping each voxel
    once with a weight gives the same statistics without the sampling noise.
    """
    image, geometry = read_image(case.image_files)
    label, _ = read_label(case.label_file)
    if label.shape != image.shape[1:]:
        raise UserError(f"{case.label_file}: label shape {label.shape} differs from image shape {image.shape[1:]}.")
    box = bbox_of(any_nonzero(image))
    cropped_image = crop_to_bbox(image, box)
    foreground = crop_to_bbox(label, box) > 0
    values = [channel[foreground] for channel in cropped_image]
    count = int(foreground.sum())
    if count > samples_per_case:
        pick = np.random.default_rng([seed, _stable_hash(case.case_id)]).choice(count, samples_per_case, replace=False)
        pick.sort()
        values = [v[pick] for v in values]
        weights = np.ones(samples_per_case)
    else:
        weights = np.full(count, samples_per_case / count) if count else np.zeros(0)
    fp = CaseFingerprint(case.case_id, tuple(int(s) for s in image.shape[1:]), tuple(geometry.spacing),
                         box, tuple(hi - lo for lo, hi in box), coarsened_label_dice(label))
    # Merging equal values here keeps what travels back from the worker small (a histogram for 8/16-bit data).
    merged = [weight_per_value(v, weights) for v in values]
    return _CaseResult(fp, [m[0] for m in merged], [m[1] for m in merged], geometry.is_2d)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def weighted_stats(values: np.ndarray, weights: np.ndarray) -> ChannelStats:
    """Mean, std, median, extremes and 0.5/99.5 percentiles of samples ``values`` with ``weights``.

    A percentile is the smallest value whose cumulative weight reaches that
    fraction of the total (the inverse of the weighted distribution), what
    sampling voxels in proportion to their weight would converge to.

    Example:
        >>> weighted_stats(np.array([0.0, 10.0]), np.array([3.0, 1.0])).mean
        2.5
    """
    if values.size == 0:
        return ChannelStats(*(float("nan"),) * 7)
    v, w = weight_per_value(np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64))
    cumulative = np.cumsum(w)
    total = cumulative[-1]

    def percentile(q: float) -> float:
        return float(v[min(np.searchsorted(cumulative, q / 100 * total, side="left"), v.size - 1)])

    mean = float(np.sum(v * w) / total)
    std = float(np.sqrt(np.sum(w * (v - mean) ** 2) / total))
    return ChannelStats(mean, std, percentile(50), float(v[0]), float(v[-1]), percentile(0.5), percentile(99.5))


HISTOGRAM_MAX_RANGE = 1 << 20
"""Whole-number intensities spanning at most this many values are summed per value instead of sorted."""


def weight_per_value(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` in ascending order with their weights; equal values may be merged into one with summed weight.

    Whole-number intensities (8- and 16-bit images, CT) are counted in a
    weighted histogram, which takes linear time instead of a sort.
    """
    if values.size == 0:
        return values, weights
    low, high = values.min(), values.max()
    if high - low <= HISTOGRAM_MAX_RANGE and np.array_equal(values, np.round(values)):
        totals = np.bincount((values - low).astype(np.int64), weights=weights)
        present = np.flatnonzero(totals)
        return low + present.astype(np.float64), totals[present]
    order = np.argsort(values)
    return values[order], weights[order]


def compute_fingerprint(dataset_folder: Path, workers: int | None = None,
                        spec: DatasetSpec | None = None) -> Fingerprint:
    """Fingerprint every training case of the dataset in ``dataset_folder``.

    Example:
        >>> fp = compute_fingerprint(Path("raw/Dataset004_Hippocampus"))  # doctest: +SKIP
        >>> fp.median_spacing
        array([1., 1., 1.])
    """
    spec = spec or load_spec(dataset_folder)
    cases = [c for c in find_cases(dataset_folder, spec) if c.label_file and c.label_file.is_file()]
    if not cases:
        raise UserError(f"{dataset_folder}: no training cases with labels were found in imagesTr/ and labelsTr/.")
    per_case = max(MIN_SAMPLES_PER_CASE, FOREGROUND_SAMPLES_TOTAL // len(cases))
    results: list[_CaseResult] = []
    failures = []
    for outcome in map_in_processes(partial(fingerprint_case, samples_per_case=per_case), cases,
                                    workers or default_workers(), "fingerprint"):
        if outcome.ok:
            results.append(outcome.result)
        else:
            failures.append(outcome.error)
    if failures:
        first = failures[0]
        more = f" (and {len(failures) - 1} more cases failed)" if len(failures) > 1 else ""
        if isinstance(first, UserError):
            raise UserError(f"{first}{more}")
        if isinstance(first, BrokenProcessPool):
            raise UserError(f"{dataset_folder}: a worker process died while fingerprinting (out of memory?); "
                            f"try fewer --workers.") from None
        raise first
    results.sort(key=lambda r: r.fingerprint.case_id)
    channels = [weighted_stats(np.concatenate([r.values[c] for r in results]),
                               np.concatenate([r.weights[c] for r in results])) for c in range(spec.num_channels)]
    is_2d = all(r.is_2d for r in results)
    return Fingerprint(dataset_name=spec.name, is_2d=is_2d, channel_names=spec.channel_names,
                       label_values=spec.label_values, cases=[r.fingerprint for r in results],
                       channels=channels, raw_digest=raw_digest(dataset_folder),
                       extra={"autounet_version": __version__, "samples_per_case": per_case})
