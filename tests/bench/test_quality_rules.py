"""bench/quality.py's rules for the comparison table: ties, means, nnU-Net's calibration and configuration names."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from bench.quality import (WALL_FILE, _mean_sd, _nnunet_iteration_seconds, append_record, earlier_autounet,
                           load_record, nnunet_name, recorded_run, run_key, verdict)


def test_a_win_needs_a_margin_over_both_spreads():
    assert verdict("Dataset004_Hippocampus", [0.85, 0.87, 0.86], [0.80, 0.81, 0.79]) == "autounet"
    assert verdict("Dataset004_Hippocampus", [0.85, 0.88, 0.82], [0.83, 0.86, 0.80], 0.03) == "tie"
    assert verdict("Dataset004_Hippocampus", [0.80, 0.80, 0.80], [0.85, 0.86, 0.85], 0.03) == "nnU-Net"
    # single runs: the difference must exceed the noise measured at 10 minutes
    assert verdict("Dataset004_Hippocampus", [0.881], [0.874], 0.03) == "tie"
    assert verdict("Dataset004_Hippocampus", [0.881], [0.791], 0.03) == "autounet"
    # ISBI's pixel error: lower is better
    assert verdict("Dataset001_ISBI2012EM", [0.051], [0.101], 0.01) == "autounet"
    assert verdict("Dataset001_ISBI2012EM", [0.051, 0.052], [0.054, 0.053], 0.01) == "autounet"


def test_cells_show_mean_sd_and_the_number_of_runs():
    assert _mean_sd([0.85, 0.87, 0.86]) == "0.860 ± 0.010 (n=3)"
    assert _mean_sd([0.9]) == "0.900 (n=1)" and _mean_sd([]) == "-"


def test_nnunet_trains_its_own_configuration_for_a_fitted_one():
    assert nnunet_name("2d_fitted_10m") == "2d" and nnunet_name("3d_fullres") == "3d_fullres"


def test_nnunets_calibration_leaves_out_its_warm_up(tmp_path):
    timings = tmp_path / "bench_timings.json"
    timings.write_text(json.dumps({"train_step_s": [9.0, 6.0, 5.5, 5.0, 5.0, 5.2, 4.8, 5.0],
                                   "train_wait_s": [1.0, 0.5, 0.1, 0.0, 0.0, 0.0, 0.2, 0.0]}))
    assert _nnunet_iteration_seconds(timings) == pytest.approx(5.04)


def test_a_record_file_carries_finished_runs_to_a_later_sitting(tmp_path):
    record_file = tmp_path / "results" / "quality_runs.jsonl"
    assert load_record(record_file) == []
    first = run_key("Dataset001_ISBI2012EM", "10m", [0], 0)
    append_record(record_file, first, "abc1234", ["Dataset001_ISBI2012EM", "10 min", "0"], 0.051, 0.062)
    append_record(record_file, run_key("Dataset001_ISBI2012EM", "10m", [0], 1), "abc1234", ["x"], 0.049, 0.060)
    record = load_record(record_file)
    # the same cell named with another spelling of the budget is the same run; other folds or repeats are not
    found = recorded_run(record, run_key("Dataset001_ISBI2012EM", "600s", [0], 0))
    assert found["autounet"] == 0.051 and found["nnunet"] == 0.062 and found["commit"] == "abc1234"
    assert recorded_run(record, run_key("Dataset001_ISBI2012EM", "10m", [0], 2)) is None
    assert recorded_run(record, run_key("Dataset001_ISBI2012EM", "10m", [0, 1], 0)) is None
    assert recorded_run(record, run_key("Dataset004_Hippocampus", "10m", [0], 0)) is None


def test_a_broken_record_line_is_named(tmp_path):
    record_file = tmp_path / "quality_runs.jsonl"
    record_file.write_text('{"dataset": "Dataset004_Hippocampus"}\n\nnot json\n')
    with pytest.raises(SystemExit, match=r"quality_runs.jsonl: line 3 is not JSON"):
        load_record(record_file)


def test_a_later_nnunet_sitting_reports_the_budget_share_autounet_used(tmp_path):
    dataset = "Dataset004_Hippocampus"
    data = tmp_path / "data"
    (data / dataset / "labelsTr").mkdir(parents=True)
    (data / dataset / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}))
    labels = np.zeros((4, 5, 6), dtype=np.uint8)
    labels[1:3, 1:4, 2:5] = 1
    labels[1:3, 1:4, 5] = 2
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(data / dataset / "labelsTr" / "hippocampus_001.nii.gz"))
    folder = tmp_path / "work" / f"{dataset}_5m_run0"
    root = folder / "autounet"
    (root / "preprocessed" / dataset).mkdir(parents=True)
    (root / "preprocessed" / dataset / "plans.json").write_text(json.dumps({"time_budget": {"chosen": "2d"}}))
    validation = root / "results" / dataset / "2d" / "fold_0" / "validation"
    validation.mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(validation / "hippocampus_001.nii.gz"))

    # a sitting from before the wall time was kept: the share is unknown, the scores are there
    older, configuration = earlier_autounet(dataset, folder, data, [0])
    assert configuration == "2d" and older.scores["Dice"] == [1.0] and math.isnan(older.used)

    (root / WALL_FILE).write_text(json.dumps({"wall_s": 276.0, "budget_s": 300.0}))
    outcome, _ = earlier_autounet(dataset, folder, data, [0])
    assert outcome.used == pytest.approx(0.92)
