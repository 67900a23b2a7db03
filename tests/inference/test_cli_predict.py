"""`autounet predict` end to end on tiny NIfTI and PNG datasets with fold folders made here."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.inference.folder import load_probabilities
from tests.conftest import make_nifti_dataset, make_png_dataset, write_nifti
from tests.inference.factory import configuration, make_trained

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def trained_nifti(data_root: Path) -> Path:
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=1, n_test=2)
    make_trained(data_root, raw, [configuration()], folds=(0, 1))
    return raw


def test_predict_nifti_folder_writes_labels_with_the_input_geometry(trained_nifti, tmp_path):
    out = tmp_path / "pred"
    result = _run("predict", "-i", str(trained_nifti / "imagesTs"), "-o", str(out), "--no-tta",
                  "--save-probabilities")
    assert result.exit_code == 0, result.output
    assert "predicted 2 case(s)" in result.output
    stages = next(line for line in result.output.splitlines() if line.startswith("time by stage: "))
    for stage in ("read", "preprocess", "sliding window", "restore", "write"):
        assert f"{stage} " in stages, stages
    for case in ("case_001", "case_002"):
        source = sitk.ReadImage(str(trained_nifti / "imagesTs" / f"{case}_0000.nii.gz"))
        written = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        assert written.GetSize() == source.GetSize()
        assert set(np.unique(sitk.GetArrayFromImage(written))) <= {0, 1, 2}
        probabilities = load_probabilities(out / f"{case}.npz")
        assert probabilities.shape == (3, *sitk.GetArrayFromImage(source).shape)
        np.testing.assert_array_equal(probabilities.argmax(0), sitk.GetArrayFromImage(written))


def test_prediction_has_exactly_the_geometry_of_an_oblique_anisotropic_input(trained_nifti, tmp_path):
    rng = np.random.default_rng(0)
    c, s = np.cos(0.3), np.sin(0.3)
    direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, -1.0)
    source_file = tmp_path / "in" / "oblique_0000.nii.gz"
    write_nifti(source_file, rng.normal(30, 5, (7, 13, 11)).astype(np.float32), spacing=(3.3, 0.71, 0.93),
                origin=(-12.5, 40.25, 7.0), direction=direction)
    out = tmp_path / "out"
    result = _run("predict", "-i", str(source_file), "-o", str(out), "-d", "Dataset100_Tiny", "-f", "0",
                  "--no-tta")
    assert result.exit_code == 0, result.output
    source, written = sitk.ReadImage(str(source_file)), sitk.ReadImage(str(out / "oblique.nii.gz"))
    assert written.GetSize() == source.GetSize()
    assert written.GetSpacing() == source.GetSpacing()
    assert written.GetOrigin() == source.GetOrigin()
    # NIfTI stores the rotation as a float32 quaternion; re-encoding it moves the matrix by ~1e-8.
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("rgb", [False, True])
def test_predict_png_writes_png_labels(data_root, tmp_path, rgb):
    name = "Dataset103_TinyRgb" if rgb else "Dataset102_TinyPng"
    raw = make_png_dataset(data_root / "raw" / name, n_cases=1, rgb=rgb, n_test=2)
    make_trained(data_root, raw, [configuration("2d", channels=3 if rgb else 1, classes=2, is_2d=True)],
                 folds=(0,))
    out = tmp_path / "pred"
    result = _run("predict", "-i", str(raw / "imagesTs"), "-o", str(out))
    assert result.exit_code == 0, result.output
    for case in ("img_001", "img_002"):
        with Image.open(out / f"{case}.png") as written, Image.open(raw / "imagesTs" / f"{case}_0000.png") as src:
            assert written.size == src.size
            assert written.mode in ("L", "I;16")
            assert set(np.unique(np.asarray(written))) <= {0, 1}


def test_continue_skips_cases_already_written(trained_nifti, tmp_path):
    out = tmp_path / "pred"
    assert _run("predict", "-i", str(trained_nifti / "imagesTs"), "-o", str(out), "--no-tta").exit_code == 0
    (out / "case_001.nii.gz").unlink()
    before = (out / "case_002.nii.gz").stat().st_mtime_ns
    result = _run("predict", "-i", str(trained_nifti / "imagesTs"), "-o", str(out), "--no-tta", "--continue")
    assert result.exit_code == 0, result.output
    assert "predicted 1 case(s)" in result.output and "skipped 1" in result.output
    assert (out / "case_001.nii.gz").is_file()
    assert (out / "case_002.nii.gz").stat().st_mtime_ns == before


def test_unreadable_file_is_named_and_the_rest_predicted(trained_nifti, tmp_path):
    inputs = tmp_path / "in"
    shutil.copytree(trained_nifti / "imagesTs", inputs)
    (inputs / "broken_0000.nii.gz").write_bytes(b"not an image")
    result = _run("predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "--no-tta")
    assert result.exit_code == 1
    assert "broken_0000.nii.gz" in result.output
    assert "predicted 2 case(s)" in result.output


def test_bad_inputs_get_one_clear_sentence(trained_nifti, tmp_path):
    result = runner.invoke(app, ["predict", "-i", str(trained_nifti / "imagesTs"), "-o",
                                 str(trained_nifti / "imagesTs")])
    assert result.exit_code == 1 and "output folder is the input folder" in result.output
    two = tmp_path / "two"
    image = np.random.default_rng(1).normal(30, 5, (8, 9, 10)).astype(np.float32)
    write_nifti(two / "x_0000.nii.gz", image)
    write_nifti(two / "x_0001.nii.gz", image)
    result = runner.invoke(app, ["predict", "-i", str(two), "-o", str(tmp_path / "o1")])
    assert result.exit_code == 1 and "has 2 channel(s), but the model was trained with 1" in result.output
    mixed = tmp_path / "mixed"
    write_nifti(mixed / "y_0000.nii.gz", image, spacing=(1.0, 1.0, 1.0))
    write_nifti(mixed / "y_0001.nii.gz", image, spacing=(2.0, 1.0, 1.0))
    result = runner.invoke(app, ["predict", "-i", str(mixed), "-o", str(tmp_path / "o2")])
    assert result.exit_code == 1 and "y_0001.nii.gz: spacing differ" in result.output


def test_dataset_choice_without_d(data_root, tmp_path):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=1, n_test=1)
    make_trained(data_root, raw, [configuration()], folds=(0,))
    other = make_nifti_dataset(data_root / "raw" / "Dataset101_Other", n_cases=1, n_test=0)
    make_trained(data_root, other, [configuration()], folds=(0,))
    result = runner.invoke(app, ["predict", "-i", str(raw / "imagesTs"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "Dataset100_Tiny" in result.output and "Dataset101_Other" in result.output and "-d" in result.output
    result = _run("predict", "-i", str(raw / "imagesTs"), "-o", str(tmp_path / "o"), "-d", "100", "--no-tta")
    assert result.exit_code == 0, result.output


def test_model_folder_without_weights_is_refused(trained_nifti, tmp_path):
    fold = trained_nifti.parent.parent / "results" / "Dataset100_Tiny" / "3d_fullres" / "fold_1"
    (fold / "model_final.safetensors").unlink()
    result = runner.invoke(app, ["predict", "-i", str(trained_nifti / "imagesTs"), "-o", str(tmp_path / "o"),
                                 "-m", str(fold)])
    assert result.exit_code == 1 and "has no weights file model_final.safetensors" in result.output


def test_predict_follows_inference_json_configuration_folds_and_postprocessing(data_root, tmp_path):
    from autounet.evaluation.choice import InferenceChoice, save_inference_choice
    from autounet.inference.postprocessing import PostprocessingChoice, apply_postprocessing
    from autounet.inference.predictor import Predictor
    from autounet.io import read_image

    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=1, n_test=1)
    results = make_trained(data_root, raw, [configuration(), configuration("2d", is_2d=True)], folds=(0, 1))
    choice = PostprocessingChoice(largest_component_for=[[1], [2]])
    save_inference_choice(InferenceChoice("Dataset100_Tiny", ["2d"], [1], choice, 0.5, 0.6, {}, 1), results)
    out = tmp_path / "pred"
    result = _run("predict", "-i", str(raw / "imagesTs"), "-o", str(out), "--no-tta")
    assert result.exit_code == 0, result.output
    assert "2d (folds 1)" in result.output and "from inference.json" in result.output
    image, geometry = read_image([raw / "imagesTs" / "case_001_0000.nii.gz"])
    direct = Predictor.from_model_folder(results / "2d", folds=[1], tta=False, device="cpu").predict(image, geometry)
    expected = apply_postprocessing(direct.labels, choice)
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case_001.nii.gz")))
    np.testing.assert_array_equal(written, expected)
    result = _run("predict", "-i", str(raw / "imagesTs"), "-o", str(tmp_path / "p2"), "--no-tta", "-c", "3d_fullres")
    assert result.exit_code == 0 and "3d_fullres (folds 0, 1)" in result.output
    assert "postprocessing none" in result.output


def test_missing_channel_file_is_named(data_root, tmp_path):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset101_TinyTwo", n_cases=1, n_channels=2, n_test=1)
    make_trained(data_root, raw, [configuration(channels=2)], folds=(0,))
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(raw / "imagesTs" / "case_001_0001.nii.gz", inputs)
    result = runner.invoke(app, ["predict", "-i", str(inputs), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "case_001_0000.nii.gz missing" in result.output
    result = _run("predict", "-i", str(raw / "imagesTs"), "-o", str(tmp_path / "o"), "--no-tta")
    assert result.exit_code == 0, result.output


def test_a_list_of_files_after_one_flag(trained_nifti, tmp_path):
    files = sorted(str(p) for p in (trained_nifti / "imagesTs").glob("*.nii.gz"))
    out = tmp_path / "pred"
    result = _run("predict", "-i", *files, "-o", str(out), "--no-tta", "--folds", "0", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["case_001.nii.gz", "case_002.nii.gz"]


def test_max_memory_keeps_outputs_on_disk_with_the_same_segmentations(trained_nifti, tmp_path):
    plain, bounded = tmp_path / "plain", tmp_path / "bounded"
    assert _run("predict", "-i", str(trained_nifti / "imagesTs"), "-o", str(plain), "--no-tta").exit_code == 0
    result = _run("predict", "-i", str(trained_nifti / "imagesTs"), "-o", str(bounded), "--no-tta",
                  "--max-memory", "1K")
    assert result.exit_code == 0, result.output
    assert "keeping them on disk" in result.output
    for case in ("case_001", "case_002"):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(bounded / f"{case}.nii.gz"))),
                                      sitk.GetArrayFromImage(sitk.ReadImage(str(plain / f"{case}.nii.gz"))))
    assert sorted(p.name for p in bounded.iterdir()) == ["case_001.nii.gz", "case_002.nii.gz"]
    result = _run("predict", "-i", str(trained_nifti / "imagesTs"), "-o", str(bounded), "--max-memory", "lots")
    assert result.exit_code != 0 and "--max-memory 'lots' is not a size" in result.output
