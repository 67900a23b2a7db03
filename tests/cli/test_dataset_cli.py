"""`autounet verify`, `fingerprint` and `doctor` through the real CLI, on synthetic and real datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from autounet import __version__
from autounet.cli.main import app
from autounet.fingerprint import load_fingerprint
from tests.conftest import REAL_DATASETS, REPO, make_nifti_dataset, shared_dataset, write_nifti

runner = CliRunner()


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m autounet`` in a real process (to see exactly what a user sees, tracebacks included)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("AUTOUNET_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "autounet", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=120)


def assert_one_sentence_error(result, *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


# --- version and help -------------------------------------------------------------------------------------------

def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"autounet {__version__}"


def _command_names() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def test_our_commands_are_registered():
    assert {"verify", "fingerprint", "doctor"} <= set(_command_names())


@pytest.mark.parametrize("command", _command_names())
def test_help_of_every_command_shows_an_example(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"Example: autounet {command}" in result.stdout


def test_top_level_help_shows_an_example():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Example: autounet" in result.stdout


# --- verify and fingerprint on the synthetic fixtures ------------------------------------------------------------

@pytest.mark.parametrize("fixture,channels,is_2d", [("nifti_dataset", 1, False), ("nifti_dataset_2ch", 2, False),
                                                    ("png_dataset", 1, True), ("rgb_dataset", 3, True)])
def test_verify_and_fingerprint_synthetic(request, data_root, fixture, channels, is_2d):
    folder: Path = request.getfixturevalue(fixture)
    result = runner.invoke(app, ["verify", str(folder), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].endswith("OK")
    assert "6 training cases, 0 errors, 0 warnings" in result.stdout

    result = runner.invoke(app, ["fingerprint", str(folder), "--workers", "1"])
    assert result.exit_code == 0, result.output
    fp = load_fingerprint(data_root / "preprocessed" / folder.name)
    assert fp.dataset_name == folder.name and fp.is_2d == is_2d and len(fp.cases) == 6
    assert len(fp.channels) == channels
    assert all(np.isfinite([s.mean, s.std, s.median]).all() for s in fp.channels)
    if is_2d:
        assert all(c.shape == (1, 48, 40) and c.spacing[0] == 999.0 for c in fp.cases)
    else:
        assert all(c.shape == (16, 20, 18) for c in fp.cases)


def test_verify_with_warnings_only_exits_zero(tmp_path, data_root):
    folder = make_nifti_dataset(tmp_path / "Dataset110_Empty", n_cases=3, shape=(8, 10, 9))
    write_nifti(folder / "labelsTr" / "case_001.nii.gz", np.zeros((8, 10, 9), np.uint8))
    result = runner.invoke(app, ["verify", str(folder), "--workers", "1"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: labelsTr/case_001.nii.gz: no foreground (every voxel is background)."]
    assert "0 errors, 1 warning " in result.stdout


def test_verify_finds_dataset_by_number_under_the_root(data_root):
    make_nifti_dataset(data_root / "raw" / "Dataset123_ByNumber", n_cases=2, shape=(8, 10, 9))
    result = runner.invoke(app, ["verify", "123", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "Dataset123_ByNumber: 2 training cases" in result.stdout


def test_verify_root_option_overrides_environment(tmp_path, data_root):
    other = tmp_path / "other_root"
    make_nifti_dataset(other / "raw" / "Dataset124_Elsewhere", n_cases=2, shape=(8, 10, 9))
    assert runner.invoke(app, ["verify", "124"]).exit_code == 1
    result = runner.invoke(app, ["verify", "124", "--root", str(other), "--workers", "1"])
    assert result.exit_code == 0, result.output


# --- doctor ------------------------------------------------------------------------------------------------------

def test_doctor_shows_versions_machine_root_and_datasets(tmp_path, data_root):
    make_nifti_dataset(data_root / "raw" / "Dataset125_Listed", n_cases=2, shape=(8, 10, 9))
    result = runner.invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (f"autounet  │ {__version__}", "python", "torch", "CUDA", "CPU cores", "RAM", "device",
                     "$AUTOUNET_HOME", str(data_root / "raw"), str(data_root / "preprocessed"),
                     str(data_root / "results"), "Dataset125_Listed"):
        assert expected in out, expected


# --- bad input: one sentence, non-zero exit, no traceback (real processes) ---------------------------------------

def test_wrong_path(tmp_path):
    missing = tmp_path / "nowhere" / "Dataset999_Gone"
    assert_one_sentence_error(run_cli("verify", str(missing)), str(missing), "no such dataset folder")


def test_unknown_dataset_lists_what_exists(tmp_path):
    root = tmp_path / "root"
    make_nifti_dataset(root / "raw" / "Dataset007_Present", n_cases=2, shape=(8, 10, 9))
    result = run_cli("fingerprint", "Dataset042", env={"AUTOUNET_HOME": str(root)})
    assert_one_sentence_error(result, "Dataset042", "Dataset007_Present", str(root / "raw"))


def test_dataset_json_not_json_through_fingerprint(tmp_path):
    folder = make_nifti_dataset(tmp_path / "Dataset008_BadJson", n_cases=2, shape=(8, 10, 9))
    (folder / "dataset.json").write_text("{ not json")
    result = run_cli("fingerprint", str(folder), "--root", str(tmp_path / "root"))
    assert_one_sentence_error(result, str(folder / "dataset.json"), "not valid JSON")


def test_corrupt_nifti_through_fingerprint(tmp_path):
    folder = make_nifti_dataset(tmp_path / "Dataset009_Corrupt", n_cases=2, shape=(8, 10, 9))
    bad = folder / "imagesTr" / "case_001_0000.nii.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    result = run_cli("fingerprint", str(folder), "--root", str(tmp_path / "root"), "--workers", "2")
    assert_one_sentence_error(result, str(bad), "truncated")
    assert not (tmp_path / "root" / "preprocessed" / folder.name / "fingerprint.json").exists()


def test_corrupt_nifti_through_verify(tmp_path):
    folder = make_nifti_dataset(tmp_path / "Dataset011_Corrupt", n_cases=2, shape=(8, 10, 9))
    (folder / "labelsTr" / "case_000.nii.gz").write_bytes(b"not an image at all")
    result = run_cli("verify", str(folder), "--workers", "1")
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "error: labelsTr/case_000.nii.gz: cannot be read" in result.stdout


# --- the real datasets -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_DATASETS)
def test_verify_and_fingerprint_real_dataset(tmp_path, name):
    folder = shared_dataset(name)
    declared = json.loads((folder / "dataset.json").read_text())
    result = runner.invoke(app, ["verify", str(folder), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert f"{declared['numTraining']} training cases, 0 errors" in result.stdout

    result = runner.invoke(app, ["fingerprint", str(folder), "--workers", "2", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    fp = load_fingerprint(tmp_path / "preprocessed" / name)
    assert len(fp.cases) == declared["numTraining"]
    assert len(fp.channels) == len(declared["channel_names"])
    assert fp.is_2d == (declared["file_ending"] == ".png")
    for stats in fp.channels:
        assert stats.min <= stats.percentile_00_5 <= stats.median <= stats.percentile_99_5 <= stats.max
        assert stats.min <= stats.mean <= stats.max and stats.std > 0
    for case in fp.cases:
        assert all(0 < after <= before for after, before in zip(case.shape_after_crop, case.shape))
