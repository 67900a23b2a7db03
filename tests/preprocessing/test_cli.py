"""`autounet preprocess` through the command line, including a run killed mid-way and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.preprocessing.store import CaseStore
from tests.conftest import make_nifti_dataset
from tests.preprocessing.plans_factory import make_configuration, make_plans, prepare_dataset
from tests.preprocessing.test_dataset import folder_contents

REPO = Path(__file__).resolve().parents[2]


def autounet(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "autounet", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def test_cli_preprocesses_with_two_workers_like_one(data_root):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=4, shape=(12, 14, 13))
    location = prepare_dataset(raw, data_root, make_plans(make_configuration(spacing=(0.9, 1.1, 1.0))))
    result = CliRunner().invoke(app, ["preprocess", "Dataset100", "-c", "3d_fullres", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "3d_fullres" in result.output and "with 2 workers" in result.output
    folder = location.preprocessed / "autounet_3d_fullres"
    two_workers = folder_contents(folder)
    result = CliRunner().invoke(app, ["preprocess", "100", "--workers", "1", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert folder_contents(folder) == two_workers


def test_cli_errors_name_the_problem(data_root):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=3, shape=(10, 12, 11))
    location = prepare_dataset(raw, data_root)
    result = CliRunner().invoke(app, ["preprocess", "Dataset100", "-c", "2d"])
    assert result.exit_code == 1 and "planned: 3d_fullres" in result.output
    (raw / "labelsTr" / "case_001.nii.gz").write_bytes(b"broken")
    result = CliRunner().invoke(app, ["preprocess", "Dataset100", "--workers", "1"])
    assert result.exit_code == 1
    assert "case_001" in result.output and "1 case(s) failed" in result.output
    assert CaseStore(location.preprocessed / "autounet_3d_fullres").case_ids() == ["case_000", "case_002"]
    (location.preprocessed / "plans.json").unlink()
    result = CliRunner().invoke(app, ["preprocess", "Dataset100"])
    assert result.exit_code == 1 and "autounet plan Dataset100_Tiny" in result.output


@pytest.mark.slow
def test_killed_run_restarted_gives_identical_files(data_root):
    n_cases = 16
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=n_cases, shape=(40, 44, 42))
    location = prepare_dataset(raw, data_root, make_plans(make_configuration(spacing=(0.5, 0.5, 0.5))))
    folder = location.preprocessed / "autounet_3d_fullres"
    process = autounet("preprocess", "Dataset100", "--workers", "1", start_new_session=True)
    deadline = time.monotonic() + 60
    while len(CaseStore(folder).case_ids()) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = len(CaseStore(folder).case_ids())
    assert 2 <= done_at_kill < n_cases, "the run was not interrupted mid-way"
    restarted = autounet("preprocess", "Dataset100", "--workers", "1")
    output, _ = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, output
    assert CaseStore(folder).case_ids() == [f"case_{i:03d}" for i in range(n_cases)]
    after_restart = folder_contents(folder)
    assert not any(name.startswith(".") for name in after_restart)
    rerun = autounet("preprocess", "Dataset100", "--workers", "1", "--overwrite")
    output, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, output
    assert folder_contents(folder) == after_restart
