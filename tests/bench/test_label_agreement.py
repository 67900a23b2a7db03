"""bench/label_agreement.py and the equivalence table's agreement cells: Dice to 5 digits, differing voxels."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from bench.label_agreement import paired_cases, present_labels
from bench.nnunet_equivalence import agreement_cells, case_agreement


def _write(folder, case, array):
    folder.mkdir(exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), str(folder / f"{case}.nii.gz"))


def test_agreement_counts_the_differing_voxels_and_keeps_five_digits(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    labels = np.zeros((4, 10, 10), np.uint8)
    labels[1:3, 2:8, 2:8] = 1  # 72 voxels of label 1
    labels[0, 0, :5] = 2  # 5 voxels of label 2
    _write(a, "case_1", labels)
    _write(b, "case_1", labels)
    changed = labels.copy()
    changed[1, 2, 2] = 0  # one voxel of label 1 lost
    _write(a, "case_2", labels)
    _write(b, "case_2", changed)
    _write(a, "only_in_a", labels)

    cases, ending = paired_cases(a, b)
    assert (cases, ending) == (["case_1", "case_2"], ".nii.gz")
    assert present_labels(a, cases, ending) == [1, 2]
    assert case_agreement(a, b, "case_1", ending, [1, 2]) == (1.0, 0)
    dice, differing = case_agreement(a, b, "case_2", ending, [1, 2])
    assert differing == 1
    assert dice == (2 * 71 / (72 + 71) + 1.0) / 2
    mean_lowest, voxels = agreement_cells(a, b, cases, ending, [1, 2])
    assert mean_lowest == f"{(1.0 + dice) / 2:.5f} / {dice:.5f}" == "0.99825 / 0.99650"
    assert voxels == "0-1 / 1"
