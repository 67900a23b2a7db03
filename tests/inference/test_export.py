"""export-model / install-model: a zip without pickles that predicts identically in another data root."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.errors import UserError
from autounet.inference.export import MANIFEST_FILE, install_model
from tests.conftest import make_nifti_dataset
from tests.inference.factory import configuration, make_trained

runner = CliRunner()


def _labels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted(folder.glob("*.nii.gz"))}


def test_export_install_predict_gives_identical_labels(tmp_path, monkeypatch):
    source_root, target_root = tmp_path / "source", tmp_path / "target"
    raw = make_nifti_dataset(source_root / "raw" / "Dataset100_Tiny", n_cases=1, n_test=2)
    make_trained(source_root, raw, [configuration(), configuration("2d", is_2d=True)], folds=(0, 1))
    monkeypatch.setenv("AUTOUNET_HOME", str(source_root))
    archive = tmp_path / "model.zip"
    result = runner.invoke(app, ["export-model", "Dataset100_Tiny", "-o", str(archive), "-c", "3d_fullres",
                                 "--folds", "0", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
    assert MANIFEST_FILE in names
    assert all(n.endswith((".json", ".safetensors")) for n in names)
    assert not any("/2d/" in n for n in names)
    assert "Dataset100_Tiny/3d_fullres/fold_1/model_final.safetensors" in names
    before = tmp_path / "before"
    assert runner.invoke(app, ["predict", "-i", str(raw / "imagesTs"), "-o", str(before), "-c", "3d_fullres",
                               "--no-tta"], catch_exceptions=False).exit_code == 0

    result = runner.invoke(app, ["install-model", str(archive), "--root", str(target_root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    after = tmp_path / "after"
    result = runner.invoke(app, ["predict", "-i", str(raw / "imagesTs"), "-o", str(after), "--root",
                                 str(target_root), "--no-tta"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    expected, found = _labels(before), _labels(after)
    assert expected.keys() == found.keys() and len(found) == 2
    for name in expected:
        np.testing.assert_array_equal(found[name], expected[name])
    again = runner.invoke(app, ["install-model", str(archive), "--root", str(target_root)])
    assert again.exit_code == 0, again.output  # the same model again: nothing to replace
    weights = target_root / "results" / "Dataset100_Tiny" / "3d_fullres" / "fold_1" / "model_final.safetensors"
    installed = weights.read_bytes()
    weights.write_bytes(installed[:-4] + b"    ")  # another model's weights (a fold trained there, say)
    again = runner.invoke(app, ["install-model", str(archive), "--root", str(target_root)])
    assert again.exit_code == 1 and f"{weights}: another model is already installed" in again.output
    assert "--overwrite" in again.output and weights.read_bytes() != installed
    again = runner.invoke(app, ["install-model", str(archive), "--root", str(target_root), "--overwrite"])
    assert again.exit_code == 0, again.output
    assert weights.read_bytes() == installed


def _zip_with(tmp_path: Path, entry: str) -> Path:
    archive = tmp_path / "evil.zip"
    manifest = {"dataset": "Dataset100_Tiny", "configurations": ["3d_fullres"], "folds": {"3d_fullres": ["0"]},
                "checkpoint": "final"}
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(MANIFEST_FILE, json.dumps(manifest))
        zipped.writestr(entry, "{}")
    return archive


@pytest.mark.parametrize("entry", ["/etc/evil.json", "Dataset100_Tiny/../../evil.json", "../evil.json",
                                   "Dataset100_Tiny/3d_fullres/fold_0/model.pkl", "Other/plans.json"])
def test_install_refuses_entries_outside_the_model(tmp_path, entry):
    archive = _zip_with(tmp_path, entry)
    with pytest.raises(UserError, match="refusing to install"):
        install_model(archive, tmp_path / "results")
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "evil.json").exists()


def test_install_refuses_a_file_that_is_not_a_model_zip(tmp_path):
    bogus = tmp_path / "model.zip"
    bogus.write_bytes(b"PK not really")
    with pytest.raises(UserError, match="not an autounet model zip"):
        install_model(bogus, tmp_path / "results")


def test_the_same_model_exports_to_the_same_bytes_and_an_interrupted_install_completes(tmp_path, monkeypatch):
    root = tmp_path / "source"
    raw = make_nifti_dataset(root / "raw" / "Dataset100_Tiny", n_cases=1, n_test=0)
    make_trained(root, raw, [configuration()], folds=(0, 1))
    monkeypatch.setenv("AUTOUNET_HOME", str(root))
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    assert runner.invoke(app, ["export-model", "Dataset100", "-o", str(first)]).exit_code == 0
    assert runner.invoke(app, ["export-model", "Dataset100", "-o", str(second)]).exit_code == 0
    assert first.read_bytes() == second.read_bytes()  # the manifest is dated by the model's files, not the clock
    results = tmp_path / "results"
    install_model(first, results)
    fold = results / "Dataset100_Tiny" / "3d_fullres" / "fold_1"
    complete = {p.name: p.read_bytes() for p in fold.iterdir()}
    # An install killed after fold 1's weights, before its training_config.json (written last, it marks the fold
    # complete): the fold is not installed yet, so installing again (without --overwrite) writes it.
    (fold / "training_config.json").unlink()
    (fold / "plans.json").write_bytes(b"{")
    install_model(first, results)
    assert {p.name: p.read_bytes() for p in fold.iterdir()} == complete
