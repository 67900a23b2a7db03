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


def test_abandoned_temporaries_are_removed_and_one_being_written_is_kept(tmp_path):
    from autounet.utils.atomic import remove_abandoned_temporaries

    # What a write killed mid-way leaves: a temporary nobody holds (its writer's lock died with it).
    (tmp_path / ".model.zip.ab12cd_9.tmp.zip").write_bytes(b"half a zip")
    (tmp_path / ".case_001.nii.gz.zz99yy88.tmp.nii.gz").write_bytes(b"half an image")
    (tmp_path / ".hidden.txt").write_text("not a temporary")
    with atomic_path(tmp_path / "model.zip") as tmp:
        tmp.write_bytes(b"being written")
        assert remove_abandoned_temporaries(tmp_path, "model.zip") == 1  # the other target's is not looked at
        assert tmp.is_file()  # its writer holds it
        assert remove_abandoned_temporaries(tmp_path) == 1
        assert tmp.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden.txt", "model.zip"]
    assert (tmp_path / "model.zip").read_bytes() == b"being written"
    assert remove_abandoned_temporaries(tmp_path / "missing") == 0
