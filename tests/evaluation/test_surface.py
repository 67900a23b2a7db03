"""HD95 and NSD over surface elements against hand computations, analytic shapes and a published implementation.

The "published" numbers were produced by DeepMind's surface-distance package (PyPI ``surface-distance`` 0.1:
``compute_robust_hausdorff(d, 95)`` and ``compute_surface_dice_at_tolerance(d, tol)``) on exactly the arrays
built below; only its outputs are written here. It places surface points at voxel corners on a marching-cubes
surface, autounet at voxel-face centres on the boundary of the voxels, so the two agree only up to that
discretisation; the tests check that autounet's NSD is at least as close to the analytic value as theirs.
"""

import math

import numpy as np
import pytest

from autounet.evaluation.metrics import case_metrics
from autounet.evaluation.surface import surface_elements, surface_scores


def box(shape, start, size):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def flat(mask):
    """A 2D mask as one (z, y, x) slice."""
    return mask[None]


def ball(shape, radius):
    grid = np.indices(shape) - (np.array(shape) // 2).reshape(-1, *[1] * len(shape))
    return np.sqrt((grid ** 2).sum(0)) <= radius


def test_surface_area_is_the_sum_of_face_areas():
    spacing = (2.0, 0.7, 1.5)
    elements = surface_elements(box((6, 6, 6), (1, 1, 1), 4), spacing)
    assert len(elements.areas_mm2) == 6 * 16
    z, y, x = spacing
    assert elements.areas_mm2.sum() == pytest.approx(2 * 16 * (y * x + z * x + z * y))


def test_offset_squares_match_the_continuous_definition():
    # Two 6x6 squares, the second shifted 3 pixels along x (1 mm pixels). Over the continuous boundary of A:
    # its left side (6 mm) is 3 mm from B; on its right side (inside B) the distance is min(3, y, 6 - y);
    # its top and bottom are 0 mm away where they overlap B (3 mm each) and 3 - x mm before. Within 1 mm:
    # 0 + 2 + 2 * 4 = 10 of 24 mm, within 2 mm: 0 + 4 + 2 * 5 = 14 of 24; B is A mirrored.
    a, b = flat(box((10, 14), (2, 2), 6)), flat(box((10, 14), (2, 5), 6))
    assert surface_scores(a, b, (1.0, 1.0, 1.0), tolerance_mm=1.0).nsd == pytest.approx(10 / 24)  # DM: 0.5
    scores = surface_scores(a, b, (1.0, 1.0, 1.0), tolerance_mm=2.0)
    assert scores.nsd == pytest.approx(14 / 24)  # DM: 0.6752
    # A quarter of each boundary is 3 mm away and nothing further: HD95 = 3 mm (DM: 3.0).
    assert scores.hd95_mm == pytest.approx(3.0)
    # 2 mm pixels double every distance, so the same tolerance in pixels gives the same NSD.
    assert surface_scores(a, b, (1.0, 2.0, 2.0), tolerance_mm=2.0).nsd == pytest.approx(10 / 24)


def test_nsd_weights_faces_by_area_with_anisotropic_spacing():
    # Two 4-voxel cubes, the second shifted 2 voxels along x; spacing (z, y, x) = (2.0, 0.7, 1.5) mm. Below the
    # smallest non-zero distance (0.35 mm) only the overlapping halves of the four side faces are within
    # tolerance: per cube 2 * (L - s) * L * (z*x + y*x) of the total 2 * L^2 * (y*z + z*x + y*x).
    z, y, x = spacing = (2.0, 0.7, 1.5)
    a, b = box((8, 8, 10), (2, 2, 2), 4), box((8, 8, 10), (2, 2, 4), 4)
    expected = (2 * 4) * (z * x + y * x) / (4 * 4 * (y * z + z * x + y * x))
    scores = surface_scores(a, b, spacing, tolerance_mm=0.1)
    assert scores.nsd == pytest.approx(expected)  # 0.3716; DM: 0.5181; counting faces instead: 1/3
    assert expected != pytest.approx(1 / 3)
    assert scores.hd95_mm == pytest.approx(2 * x)  # the back x-face, 2 voxels away (DM: 3.0)


def test_concentric_squares_by_hand():
    # A 6x6 square around a 4x4 one: 16 of the outer's 24 unit edges are 1 mm from the inner square, the 8 next
    # to the corners sqrt(1 + 0.5^2) mm; every inner edge is 1 mm away.
    outer, inner = flat(box((10, 10), (2, 2), 6)), flat(box((10, 10), (3, 3), 4))
    assert surface_scores(outer, inner, (1.0, 1.0, 1.0), tolerance_mm=1.0).nsd == pytest.approx(32 / 40)
    assert surface_scores(outer, inner, (1.0, 1.0, 1.0), tolerance_mm=1.2).nsd == 1.0
    assert surface_scores(outer, inner, (1.0, 1.0, 1.0), tolerance_mm=0.9).nsd == 0.0
    # 8 of 24 outer edges (a third, more than 5 %) lie at sqrt(1.25) mm: that is the outer's p95.
    assert surface_scores(outer, inner, (1.0, 1.0, 1.0)).hd95_mm == pytest.approx(math.sqrt(1.25))


# (name, reference, prediction, spacing, tolerance, analytic HD95, analytic NSD, DeepMind HD95, DeepMind NSD)
PUBLISHED = [
    ("offset squares", flat(box((10, 14), (2, 2), 6)), flat(box((10, 14), (2, 5), 6)), (1.0, 1.0, 1.0), 1.0,
     3.0, 10 / 24, 3.0, 0.5),
    ("offset squares", flat(box((10, 14), (2, 2), 6)), flat(box((10, 14), (2, 5), 6)), (1.0, 1.0, 1.0), 2.0,
     3.0, 14 / 24, 3.0, 0.6752201313801409),
    ("concentric squares", flat(box((10, 10), (2, 2), 6)), flat(box((10, 10), (3, 3), 4)), (1.0, 1.0, 1.0), 1.0,
     math.sqrt(1 + 0.85 ** 2), 0.8, 1.4142135623730951, 0.9248894475888325),
    ("offset cubes", box((8, 8, 10), (2, 2, 2), 4), box((8, 8, 10), (2, 2, 4), 4), (2.0, 0.7, 1.5), 0.1,
     3.0, 8.1 / 21.8, 3.0, 0.518068285119505),
    ("spheres r14/r10", ball((41, 41, 41), 14), ball((41, 41, 41), 10), (1.0, 1.0, 1.0), 3.0,
     4.0, 0.0, 4.123105625617661, 0.16269422001223505),
    ("spheres r14/r10", ball((41, 41, 41), 14), ball((41, 41, 41), 10), (1.0, 1.0, 1.0), 5.0,
     4.0, 1.0, 4.123105625617661, 1.0),
    ("circles r9/r7", flat(ball((31, 33), 9)), flat(ball((31, 33), 7)), (1.0, 1.0, 1.0), 2.0,
     2.0, 1.0, 2.23606797749979, 0.790258204760233),
]


@pytest.mark.parametrize("name,ref,pred,spacing,tol,true_hd95,true_nsd,dm_hd95,dm_nsd", PUBLISHED,
                         ids=[f"{p[0]}@{p[4]}" for p in PUBLISHED])
def test_against_analytic_values_and_a_published_implementation(name, ref, pred, spacing, tol, true_hd95,
                                                                true_nsd, dm_hd95, dm_nsd):
    # Analytic values are for the continuous shapes (concentric squares: the 95th percentile of
    # sqrt(1 + u^2) over the outer boundary is at u = 0.85); voxelised spheres and circles are only close.
    scores = surface_scores(ref, pred, spacing, tolerance_mm=tol)
    assert abs(scores.nsd - true_nsd) <= abs(dm_nsd - true_nsd) + 0.01
    assert scores.hd95_mm == pytest.approx(dm_hd95, abs=0.3)
    assert scores.hd95_mm == pytest.approx(true_hd95, abs=0.2)


def test_ignored_voxels_are_no_surface():
    # Reference: a 4x4 object and an ignored band (value 3) across columns 8-9. The prediction repeats the object
    # and adds a 4x4 blob over columns 8-11, half of it in the ignored band. The blob's left edge at column
    # 9.5 only exists because of the band, so it is no surface: the blob keeps its 2 + 2 top/bottom edges and 4
    # right ones, 4.5, 5.5 and 6 mm from the object's boundary.
    ref = np.zeros((1, 8, 14), np.uint8)
    ref[0, 2:6, 2:6] = 1
    ref[0, :, 8:10] = 3
    pred = np.zeros_like(ref)
    pred[0, 2:6, 2:6] = 1
    pred[0, 2:6, 8:12] = 1
    m = case_metrics(ref, pred, {"a": [1]}, (1.0, 1.0, 1.0), surface=True, ignore_label=3)["a"]
    assert m.nsd == pytest.approx(32 / 40)  # treating the band as background would give 32 / 44
    # 24 prediction edges: 16 at 0 mm, 2 at 4.5, 2 at 5.5, 4 at 6: the 95th percentile is 6 mm.
    assert m.hd95_mm == pytest.approx(6.0)


def test_reference_boundary_against_ignored_voxels_is_not_scored():
    # The reference object (columns 2-5) ends at an ignored band (columns 6-7) where its true edge is unknown;
    # a prediction that stops at the band agrees everywhere else, so NSD is 1 and HD95 0.
    ref = np.zeros((1, 8, 10), np.uint8)
    ref[0, 2:6, 2:6] = 1
    ref[0, 2:6, 6:8] = 3
    pred = np.zeros_like(ref)
    pred[0, 2:6, 2:6] = 1
    m = case_metrics(ref, pred, {"a": [1]}, (1.0, 1.0, 1.0), surface=True, ignore_label=3)["a"]
    assert (m.nsd, m.hd95_mm) == (1.0, 0.0)
    # A prediction one column short (ending at column 4.5) is wrong: column 5 is object. Its right edge is no
    # longer matched by the reference's unknown edge at 5.5 but measured against the known top, bottom and left
    # edges: 0.5, 1.5, 1.5, 0.5 mm (rows 2-5). Of the reference's 12 known edges, 10 coincide with the
    # prediction's and 2 (column 5, top and bottom) end 0.5 mm from them. NSD = (12 + 12) / (14 + 12); the
    # prediction's p95 (13.3 of 14 edges) is 1.5 mm.
    pred[0, 2:6, 5] = 0
    shrunk = case_metrics(ref, pred, {"a": [1]}, (1.0, 1.0, 1.0), surface=True, ignore_label=3)["a"]
    assert shrunk.nsd == pytest.approx(24 / 26) and shrunk.hd95_mm == pytest.approx(1.5)
    # Treating the band as background invents a reference edge at 5.5 that is 1 mm from everything: NSD 1.
    plain = case_metrics(np.where(ref == 3, 0, ref), pred, {"a": [1]}, (1.0, 1.0, 1.0), surface=True)["a"]
    assert (plain.nsd, plain.hd95_mm) == (1.0, 1.0)


def test_a_mask_hidden_by_the_ignore_label_is_empty():
    ref = np.zeros((1, 6, 6), np.uint8)
    ref[0, 1:4, 1:4] = 3
    pred = np.zeros_like(ref)
    pred[0, 2:3, 2:3] = 1
    m = case_metrics(ref, pred, {"a": [1]}, (1.0, 1.0, 1.0), surface=True, ignore_label=3)["a"]
    assert math.isnan(m.nsd) and math.isnan(m.hd95_mm)
