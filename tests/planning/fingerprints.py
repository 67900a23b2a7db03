"""Hand-made fingerprints for planner tests (no image files needed)."""

from __future__ import annotations

import numpy as np

from autounet.fingerprint import CaseFingerprint, ChannelStats, Fingerprint


def make_fingerprint(shape, spacing, n_cases: int = 20, channel_names=("MRI",), is_2d: bool = False,
                     crop_fraction: float = 1.0, slice_spacings=None, seed: int = 0) -> Fingerprint:
    """``n_cases`` cases of about ``shape`` (z, y, x) at ``spacing``; ``slice_spacings`` overrides z spacings.

    ``crop_fraction`` is the fraction of each axis kept after cropping to the nonzero region.
    """
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n_cases):
        jitter = rng.integers(-2, 1, 3) if not is_2d else np.array([0, *rng.integers(-2, 1, 2)])
        full = [max(1, int(s + j)) for s, j in zip(shape, jitter)]
        case_spacing = list(spacing)
        if slice_spacings is not None:
            case_spacing[0] = float(slice_spacings[i % len(slice_spacings)])
        keep = [max(1, int(round(s * (crop_fraction if a > 0 or not is_2d else 1.0)))) for a, s in enumerate(full)]
        box = [[0, k] for k in keep]
        cases.append(CaseFingerprint(f"case_{i:03d}", tuple(full), tuple(case_spacing), box, tuple(keep)))
    stats = [ChannelStats(100.0, 20.0, 100.0, 0.0, 400.0, 10.0, 300.0) for _ in channel_names]
    return Fingerprint(dataset_name="Dataset900_Handmade", is_2d=is_2d,
                       channel_names={i: n for i, n in enumerate(channel_names)}, label_values=[0, 1, 2],
                       cases=cases, channels=stats)


def mri_like(n_cases: int = 260) -> Fingerprint:
    """Isotropic 1 mm, Hippocampus-sized."""
    return make_fingerprint((36, 50, 35), (1.0, 1.0, 1.0), n_cases)


def ct_like(n_cases: int = 40, slice_spacings=(3.0, 3.0, 3.0, 2.5, 5.0, 1.5, 3.0, 3.0, 3.0, 3.0)) -> Fingerprint:
    """Anisotropic CT: 3 mm slices (a few thinner and thicker ones), 0.8 mm in-plane, 40 x 160 x 160."""
    return make_fingerprint((40, 160, 160), (3.0, 0.8, 0.8), n_cases, channel_names=("CT",),
                            slice_spacings=slice_spacings)


def image_2d(n_cases: int = 30, channel_names=("EM",)) -> Fingerprint:
    return make_fingerprint((1, 512, 512), (999.0, 1.0, 1.0), n_cases, channel_names=channel_names, is_2d=True)


def tiny(n_cases: int = 10) -> Fingerprint:
    """Images smaller than any patch: 5 x 6 x 7 voxels."""
    return make_fingerprint((5, 6, 7), (1.0, 1.0, 1.0), n_cases)
