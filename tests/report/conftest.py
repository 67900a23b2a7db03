"""Small runs to report on, built once per module (the stages are real; no network is trained)."""

from __future__ import annotations

import pytest

from tests.conftest import make_nifti_dataset, make_png_dataset
from tests.inference.conftest import _one_torch_thread  # noqa: F401 (autouse here too: torch on one thread)
from tests.report.factory import make_run


@pytest.fixture(scope="module")
def nifti_run(tmp_path_factory):
    """A 3D dataset with two validated folds of 3d_fullres and of 2d (a little worse), and find-best's choice."""
    root = tmp_path_factory.mktemp("nifti_run")
    raw = make_nifti_dataset(root / "raw" / "Dataset310_Report", n_cases=6, shape=(16, 24, 20),
                             spacing=(2.0, 1.0, 1.0))
    return make_run(root, raw, ["3d_fullres", "2d"])


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    """A 2D RGB dataset with two validated folds of 2d, without find-best."""
    root = tmp_path_factory.mktemp("rgb_run")
    raw = make_png_dataset(root / "raw" / "Dataset311_ReportRgb", n_cases=6, rgb=True)
    return make_run(root, raw, "2d", choose=False)
