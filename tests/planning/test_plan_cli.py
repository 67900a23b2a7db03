"""``autounet plan`` through the CLI: real datasets, synthetic ones, and bad input."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.fingerprint import load_fingerprint
from autounet.planning.plans import load_plans
from tests.conftest import REAL_DATASETS, make_nifti_dataset, shared_dataset

runner = CliRunner()


def run_plan(*args: str):
    return runner.invoke(app, ["plan", *args])


def test_plan_writes_plans_and_prints_tables(nifti_dataset, data_root):
    result = run_plan(str(nifti_dataset), "-w", "1")
    assert result.exit_code == 0, result.output
    plans = load_plans(data_root / "preprocessed" / nifti_dataset.name)
    assert set(plans.configurations) == {"2d", "3d_fullres"}
    assert plans.hardware.device in ("cpu", "cuda", "mps") and plans.memory_budget_gb > 0
    assert "3d_fullres" in result.output and "patch" in result.output and "features" in result.output
    assert plans.configuration("3d_fullres").network.num_classes == 3


def test_gpu_memory_option_and_configuration_choice(nifti_dataset, data_root):
    result = run_plan(str(nifti_dataset), "--gpu-memory", "4", "-c", "3d_fullres", "-w", "1")
    assert result.exit_code == 0, result.output
    plans = load_plans(data_root / "preprocessed" / nifti_dataset.name)
    assert list(plans.configurations) == ["3d_fullres"] and plans.memory_budget_gb == 4.0
    assert plans.configuration("3d_fullres").estimated_memory_gb <= 4.0


def test_replans_from_the_fingerprint_alone_and_refingerprints_changed_data(nifti_dataset, data_root):
    assert run_plan(str(nifti_dataset), "-w", "1").exit_code == 0
    fingerprint = data_root / "preprocessed" / nifti_dataset.name / "fingerprint.json"
    first = fingerprint.stat().st_mtime_ns
    assert run_plan(str(nifti_dataset), "-w", "1").exit_code == 0
    assert fingerprint.stat().st_mtime_ns == first  # unchanged raw data: fingerprint reused
    label = sorted((nifti_dataset / "labelsTr").iterdir())[0]
    os.utime(label, ns=(label.stat().st_atime_ns, label.stat().st_mtime_ns + 10**9))
    result = run_plan(str(nifti_dataset), "-w", "1")
    assert result.exit_code == 0 and "fingerprinted" in result.output
    assert fingerprint.stat().st_mtime_ns != first


def test_a_fingerprint_made_before_the_label_detail_is_made_again(nifti_dataset, data_root):
    assert run_plan(str(nifti_dataset), "-w", "1").exit_code == 0
    path = data_root / "preprocessed" / nifti_dataset.name / "fingerprint.json"
    old = json.loads(path.read_text())
    for case in old["cases"]:
        del case["coarsened_label_dice"]
    path.write_text(json.dumps(old))
    result = run_plan(str(nifti_dataset), "-w", "1")
    assert result.exit_code == 0 and "fingerprinted" in result.output
    assert load_fingerprint(path.parent).label_dice_when_coarsened(2) is not None


def test_without_raw_data_plans_from_an_existing_fingerprint(tmp_path, data_root):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset120_Gone")
    assert run_plan("120", "-w", "1").exit_code == 0
    shutil.rmtree(raw)
    result = run_plan("120")
    assert result.exit_code == 0, result.output


def test_no_fingerprint_and_no_raw_data(data_root):
    (data_root / "preprocessed" / "Dataset121_Empty").mkdir(parents=True)
    result = run_plan("121")
    assert result.exit_code == 1
    assert "fingerprint.json" in result.output and "no raw data" in result.output


def test_one_case_is_refused(tmp_path, data_root):
    folder = make_nifti_dataset(data_root / "raw" / "Dataset122_One", n_cases=1)
    result = run_plan(str(folder), "-w", "1")
    assert result.exit_code == 1 and "at least 2" in result.output


def test_2d_dataset_asked_for_3d(png_dataset, data_root):
    result = run_plan(str(png_dataset), "-c", "3d_fullres", "-w", "1")
    assert result.exit_code == 1 and "2D" in result.output and "3d_fullres" in result.output


def test_too_little_gpu_memory(nifti_dataset, data_root):
    result = run_plan(str(nifti_dataset), "--gpu-memory", "0.5", "-w", "1")
    assert result.exit_code == 1 and "too small for any network" in result.output
    assert not (data_root / "preprocessed" / nifti_dataset.name / "plans.json").exists()


def test_verify_needs_cuda(nifti_dataset, data_root):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path is for machines without it")
    result = run_plan(str(nifti_dataset), "--verify", "-w", "1")
    assert result.exit_code == 1 and "CUDA" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_DATASETS)
def test_plan_real_datasets(name, tmp_path, data_root):
    source = shared_dataset(name)
    (data_root / "raw").mkdir(parents=True)
    (data_root / "raw" / name).symlink_to(source, target_is_directory=True)
    result = run_plan(name, "-w", "2")
    assert result.exit_code == 0, result.output
    plans = load_plans(data_root / "preprocessed" / name)
    assert all(p.estimated_memory_gb <= plans.memory_budget_gb for p in plans.configurations.values())
    if name == "Dataset004_Hippocampus":
        full, two = plans.configuration("3d_fullres"), plans.configuration("2d")
        assert full.patch_size == [40, 56, 40] and full.batch_size == 9
        assert full.network.features_per_stage == [32, 64, 128, 256]
        assert two.patch_size == [56, 40] and two.batch_size == 366  # nnU-Net 2.8.1 plans 366 for 260 cases
    else:
        assert list(plans.configurations) == ["2d"]
        assert json.loads((data_root / "preprocessed" / name / "plans.json").read_text())["schema_version"] == 1


def test_broken_dataset_fails_verification_before_planning(nifti_dataset, data_root):
    label = sorted((nifti_dataset / "labelsTr").iterdir())[0]
    label.write_bytes(b"not a nifti file")
    result = run_plan(str(nifti_dataset), "-w", "1")
    assert result.exit_code == 1 and "verification found" in result.output and label.name in result.output
