import os

import numpy as np
import pytest

from autounet.utils.atomic import atomic_path, save_npy, write_json


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        save_npy(tmp_path / "b.npy", np.zeros(3))
    finally:
        os.umask(old)
    for name in ("a.json", "b.npy"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_neither_target_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "case.nii.gz") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_the_old_file_survives_a_failed_rewrite(tmp_path):
    write_json(tmp_path / "plans.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "plans.json") as tmp:
            tmp.write_text("{broken")
            raise RuntimeError("crash")
    assert (tmp_path / "plans.json").read_text().strip().startswith("{") and '"v": 1' in (tmp_path / "plans.json").read_text()
