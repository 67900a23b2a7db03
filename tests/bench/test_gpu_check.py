"""bench/gpu_check.py: its --smoke rehearsal on the CPU (so that a GPU run cannot die on a typo), the deadline,
and the pieces the CPU rehearsal cannot reach without nnU-Net (its plan edit, the ratio columns)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import gpu_check  # noqa: E402

MAKE_SYNTHETIC = REPO.parent / "shared" / "bench" / "make_synthetic.py"


def run_check(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.mark.slow
def test_smoke_rehearsal_runs_every_autounet_stage_on_the_cpu(tmp_path):
    if not MAKE_SYNTHETIC.is_file():
        pytest.skip(f"{MAKE_SYNTHETIC} is not beside the checkout")
    start = time.perf_counter()
    done = run_check(tmp_path, "--smoke", "--no-nnunet", "--deadline-s", "400")
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["smoke"] and report["iterations"] == 2 and report["cases"] == 2
    assert [s["status"] for s in report["stages"]] == ["ok"] * len(report["stages"]), report["stages"]
    names = [s["stage"] for s in report["stages"]]
    assert any("plan 8" in n for n in names) and any("preprocess" in n for n in names)
    assert any("train autounet" in n for n in names) and any("predict autounet" in n for n in names)
    results = report["results"]
    memory = results["memory"]["Dataset991_SmokeHippo"]["2d"]["8"]
    assert memory["budget_gb"] == 8 and 0 < memory["estimated_gb"] <= 8 and memory["measured_gb"] is None
    assert memory["verify"].startswith("skipped: plan --verify needs CUDA")
    training = results["training"]["Dataset991_SmokeHippo"]["2d"]
    assert training, "no training row"
    for row in training.values():
        assert row["iterations_per_s"] > 0 and 0 <= row["data_wait_share"] <= 1 and row["epochs_logged"] == 2
        assert row["gpu_busy_share"] is None and row["peak_gpu_gb"] is None  # no GPU to sample
    prediction = results["prediction"]["Dataset991_SmokeHippo"]["2d"]["autounet"]
    assert prediction["cases"] == 2 and prediction["tta"] and prediction["seconds_per_case"] > 0
    assert any("nnU-Net v2: skipped" in note for note in report["notes"])
    assert not [n for n in report["notes"] if n.startswith("GPU augmentation")]
    assert set(training) == {"autounet (GPU augmentation)", "autounet (CPU augmentation)"}
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert "| Dataset991_SmokeHippo | 2d | 8 | 8 |" in markdown and "## Prediction with mirroring TTA" in markdown
    print(f"smoke rehearsal: {seconds:.0f} s")


def test_deadline_still_writes_the_tables(tmp_path):
    done = run_check(tmp_path, "--smoke", "--no-nnunet", "--deadline-s", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["stages"] and all(s["status"] == "skipped" for s in report["stages"])
    assert "deadline" in report["stages"][0]["detail"]
    assert "| Dataset991_SmokeHippo: raw data | skipped |" in (tmp_path / "gpu_check.md").read_text()


def make_check(tmp_path: Path, **changes) -> gpu_check.Check:
    settings = dict(out=tmp_path / "out", work=tmp_path / "work", device="cpu", smoke=True, iterations=2, cases=2,
                    budgets=["8"], deadline=time.monotonic() + 60, nnunet_python=None, augment_modes=["default"])
    return gpu_check.Check(**{**settings, **changes})


def test_autounet_plan_is_copied_into_nnunet_plans(tmp_path):
    check = make_check(tmp_path)
    spec = gpu_check.DatasetSpec("Dataset991_SmokeHippo", ["2d"])
    network = {"features_per_stage": [32, 64, 128], "kernel_sizes": [[3, 3]] * 3, "strides": [[1, 1], [2, 2], [2, 2]],
               "n_conv_per_stage": [2, 2, 2], "n_conv_per_stage_decoder": [2, 2]}
    model = gpu_check.model_folder(check, spec, "2d", "default")
    model.mkdir(parents=True)
    (model / "plans.json").write_text(json.dumps({"configurations": {"2d": {
        "patch_size": [48, 40], "batch_size": 7, "network": network}}}))
    theirs = {"data_identifier": "nnUNetPlans_2d", "patch_size": [56, 40], "batch_size": 58,
              "architecture": {"network_class_name": "PlainConvUNet", "arch_kwargs": {
                  "n_stages": 4, "features_per_stage": [32, 64, 128, 256], "kernel_sizes": [[3, 3]] * 4,
                  "strides": [[1, 1]] + [[2, 2]] * 3, "n_conv_per_stage": [2] * 4,
                  "n_conv_per_stage_decoder": [2] * 3, "conv_bias": True}}}
    path = gpu_check.nnunet_plans_path(check, spec)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"configurations": {"2d": theirs}}))
    assert gpu_check.add_autounet_plan_to_nnunet(check, spec, "2d") == "autounet_2d"
    plans = json.loads(path.read_text())["configurations"]
    copied = plans["autounet_2d"]
    assert copied["patch_size"] == [48, 40] and copied["batch_size"] == 7
    assert copied["data_identifier"] == "nnUNetPlans_2d"  # nnU-Net's own preprocessed data
    arch = copied["architecture"]["arch_kwargs"]
    assert arch["n_stages"] == 3 and arch["features_per_stage"] == [32, 64, 128] and arch["conv_bias"] is True
    assert arch["n_conv_per_stage_decoder"] == [2, 2]
    assert plans["2d"]["batch_size"] == 58  # nnU-Net's own configuration is left as it was


def test_markdown_gives_ratios_against_nnunet(tmp_path):
    check = make_check(tmp_path)
    row = {"iterations_per_s": 5.0, "seconds_per_iteration": 0.2, "data_wait_share": 0.05, "gpu_busy_share": 0.93,
           "peak_gpu_gb": 6.1, "batch_size": 2, "patch_size": [40, 56, 40]}
    check.results["training"] = {"D": {"3d_fullres": {"autounet (CPU augmentation)": row, "nnU-Net v2": {
        **row, "seconds_per_iteration": 0.4, "gpu_busy_share": None}}}}
    check.results["prediction"] = {"D": {"3d_fullres": {
        "autounet": {"cases": 10, "seconds_per_case": 0.5, "startup_s": 2.0, "peak_gpu_gb": 1.0},
        "nnU-Net v2": {"cases": 10, "seconds_per_case": 2.0, "startup_s": 9.0, "peak_gpu_gb": 2.0}}}}
    text = gpu_check.markdown(check)
    assert "| D | 3d_fullres | autounet (CPU augmentation) | 2 | 40x56x40 | 5 | 0.2 | 93 % | 5 % | 6.1 | 0.50 |" in text
    assert "| D | 3d_fullres | nnU-Net v2 | 2 | 40x56x40 | 5 | 0.4 | n/a | 5 % | 6.1 | 1.00 |" in text
    assert "| D | 3d_fullres | autounet | 10 | 0.5 | 2 | 1 | 0.25 |" in text
