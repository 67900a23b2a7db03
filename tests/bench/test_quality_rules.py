"""bench/quality.py's rules for the comparison table: ties, means, nnU-Net's calibration and configuration names."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

import bench.quality as quality
from bench.quality import (WALL_FILE, Outcome, _mean_sd, _nnunet_iteration_seconds, append_record, earlier_autounet,
                           is_better, load_record, measure_run, needs_small_batch, nnunet_best_honest,
                           nnunet_name, recorded_batches, recorded_run, run_key, verdict, with_small_batch)


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


def _nnunet_outcome(batch: int, dice: float, planned: int = 366) -> Outcome:
    what = f"2d, batch {batch} (planned {planned}), 100 iterations" if batch != planned else \
        f"2d, planned batch {planned}, 100 iterations"
    return Outcome({"Dice": [dice]}, 900.0, 1800.0, what, [100], batch)


def test_nnunet_also_runs_batch_2_beside_any_larger_planned_batch(monkeypatch):
    calls = []

    def fake_run(dataset, budget_seconds, configuration, work, splits, data, folds, batch=None):
        calls.append(batch)
        return _nnunet_outcome(366, 0.21) if batch is None else _nnunet_outcome(2, 0.87)

    monkeypatch.setattr(quality, "run_nnunet", fake_run)
    # the planned batch bought 100 iterations, over the old threshold of 50: batch 2 runs all the same
    best, batches = nnunet_best_honest("Dataset004_Hippocampus", 1800.0, "2d", None, None, None, [0])
    assert calls == [None, 2] and batches == {366: 0.21, 2: 0.87}
    assert best.batch == 2 and best.what.endswith("(best of batch planned / 2)")

    calls.clear()
    monkeypatch.setattr(quality, "run_nnunet", lambda *args, batch=None: calls.append(batch) or
                        _nnunet_outcome(2, 0.7, planned=2))
    best, batches = nnunet_best_honest("Dataset010_PH2Dermoscopy", 600.0, "2d", None, None, None, [0])
    assert calls == [None] and batches == {2: 0.7} and "best of" not in best.what


def test_the_better_headline_depends_on_the_metric():
    assert is_better("Dataset004_Hippocampus", 0.87, 0.21) and not is_better("Dataset004_Hippocampus", 0.21, 0.87)
    assert is_better("Dataset001_ISBI2012EM", 0.05, 0.07) and not is_better("Dataset001_ISBI2012EM", 0.07, 0.05)


def test_recorded_runs_name_the_batches_nnunet_tried():
    row = ["Dataset004_Hippocampus", "30m00s", "0", "2d", "Dice 0.88", "93%"]
    only_planned = {"nnunet": 0.21, "row": row + ["2d, planned batch 366, 151 iterations", "Dice 0.21", "83%"]}
    assert recorded_batches(only_planned) == {366: 0.21} and needs_small_batch(only_planned)
    both = {"nnunet": 0.85, "row": row + ["2d, batch 2 (planned 366), 8558 iterations (best of batch planned / 2)",
                                          "Dice 0.85", "145%"]}
    assert recorded_batches(both) == {2: 0.85, 366: None} and not needs_small_batch(both)
    planned_two = {"nnunet": 0.07, "row": row + ["2d, planned batch 2, 199 iterations", "x", "84%"]}
    assert recorded_batches(planned_two) == {2: 0.07} and not needs_small_batch(planned_two)
    newer = {"nnunet": 0.5, "nnunet_batches": {"366": 0.5}, "row": row + ["anything", "x", "1%"]}
    assert recorded_batches(newer) == {366: 0.5} and needs_small_batch(newer)


def test_a_recorded_run_is_completed_by_nnunet_at_batch_2(monkeypatch, tmp_path):
    entry = {**run_key("Dataset004_Hippocampus", "30m", [0], 0), "commit": "abc1234", "autounet": 0.88,
             "nnunet": 0.21, "row": ["Dataset004_Hippocampus", "30m00s", "0", "2d", "Dice 0.8800", "93%",
                                     "2d, planned batch 366, 151 iterations", "Dice 0.2100", "83%"]}
    monkeypatch.setattr(quality, "autounet_splits", lambda dataset, folder, data: tmp_path / "splits.json")
    seen = {}

    def fake_run(dataset, budget_seconds, configuration, work, splits, data, folds, batch=None):
        seen.update(configuration=configuration, budget=budget_seconds, folds=folds, batch=batch)
        return _nnunet_outcome(2, 0.86)

    monkeypatch.setattr(quality, "run_nnunet", fake_run)
    done = with_small_batch(entry, tmp_path, tmp_path, "def5678")
    assert seen == {"configuration": "2d", "budget": 1800.0, "folds": [0], "batch": 2}
    assert done["nnunet"] == 0.86 and done["autounet"] == 0.88
    assert done["row"][6] == "2d, batch 2 (planned 366), 100 iterations (best of batch planned / 2)"
    assert done["row"][7:] == ["Dice 0.8600", "50%"] and done["nnunet_batches"] == {366: 0.21, 2: 0.86}
    assert done["commit"] == "abc1234, batch 2 at def5678" and not needs_small_batch(done)

    # where batch 2 does worse, the recorded run keeps counting, marked as the better of the two
    monkeypatch.setattr(quality, "run_nnunet", lambda *args, batch=None: _nnunet_outcome(2, 0.1))
    kept = with_small_batch(entry, tmp_path, tmp_path, "def5678")
    assert kept["nnunet"] == 0.21 and kept["row"][7:] == ["Dice 0.2100", "83%"]
    assert kept["row"][6].endswith("(best of batch planned / 2)") and kept["nnunet_batches"][2] == 0.1

    # the completed entry round-trips through the record file
    record_file = tmp_path / "runs.jsonl"
    append_record(record_file, run_key("Dataset004_Hippocampus", "30m", [0], 0), done["commit"], done["row"],
                  done["autounet"], done["nnunet"], done["nnunet_batches"])
    again = recorded_run(load_record(record_file), run_key("Dataset004_Hippocampus", "1800s", [0], 0))
    assert recorded_batches(again) == {366: 0.21, 2: 0.86} and not needs_small_batch(again)


def test_a_row_too_long_for_one_sitting_is_joined_in_the_record(monkeypatch, tmp_path):
    """autounet in one sitting, nnU-Net's planned batch in a second, its batch 2 in a third, on fresh machines."""
    dataset, record_file = "Dataset004_Hippocampus", tmp_path / "runs.jsonl"
    ran = []

    def fake_autounet(dataset, budget, work, data, folds, seed):
        ran.append(("autounet", budget, seed))
        return Outcome({"Dice": [0.88]}, 1700.0, 7200.0, "2d")

    def fake_nnunet(dataset, budget_seconds, configuration, work, splits, data, folds, batch=None):
        ran.append(("nnunet", configuration, batch))
        return _nnunet_outcome(366, 0.80) if batch is None else _nnunet_outcome(2, 0.90)

    monkeypatch.setattr(quality, "run_autounet", fake_autounet)
    monkeypatch.setattr(quality, "run_nnunet", fake_nnunet)
    monkeypatch.setattr(quality, "autounet_splits", lambda dataset, folder, data: tmp_path / "splits.json")
    key = run_key(dataset, "2h", [0], 0)

    def sitting(**options):
        args = argparse.Namespace(**{"skip_nnunet": False, "nnunet_only": False, "configuration": None,
                                     "defer_small_batch": False, "record": record_file, **options})
        return measure_run(args, key, "2h", tmp_path / "work", tmp_path, "c0mm1t",
                           recorded_run(load_record(record_file), key))

    first = sitting(skip_nnunet=True)
    assert ran == [("autounet", "2h", 12345)] and first["autounet"] == 0.88 and first["nnunet"] is None
    second = sitting(defer_small_batch=True)
    assert ran[1:] == [("nnunet", "2d", None)] and second["nnunet"] == 0.80 and second["autounet"] == 0.88
    third = sitting()
    assert ran[2:] == [("nnunet", "2d", 2)] and third["nnunet"] == 0.90
    assert third["row"][6].startswith("2d, batch 2 (planned 366)") and third["row"][6].endswith("planned / 2)")
    # the printed run label names the commit of every sitting that made the run
    assert second["row"][2] == "0 (recorded at c0mm1t; nnU-Net at c0mm1t)"
    assert third["row"][2] == "0 (recorded at c0mm1t; nnU-Net at c0mm1t, batch 2 at c0mm1t)"
    # a fourth call finds the cell complete and runs nothing
    fourth = sitting()
    assert len(ran) == 3 and fourth["autounet"] == 0.88 and fourth["nnunet"] == 0.90
    assert recorded_batches(fourth) == {366: 0.80, 2: 0.90} and len(load_record(record_file)) == 3


def test_halves_recorded_apart_are_joined():
    key = run_key("Dataset004_Hippocampus", "2h", [0], 0)
    ours = {**key, "commit": "aaa", "autounet": 0.88, "nnunet": None,
            "row": ["D", "2h", "0", "2d", "Dice 0.8800", "95%", "-", "-", "-"]}
    theirs = {**key, "commit": "bbb", "autounet": None, "nnunet": 0.8, "nnunet_batches": {"366": 0.8},
              "row": ["D", "2h", "0", "2d", "earlier sitting", "-", "2d, planned batch 366", "Dice 0.8000", "90%"]}
    joined = recorded_run([ours, theirs], key)
    assert joined["autounet"] == 0.88 and joined["nnunet"] == 0.8 and joined["nnunet_batches"] == {"366": 0.8}
    assert joined["row"] == ["D", "2h", "0", "2d", "Dice 0.8800", "95%", "2d, planned batch 366", "Dice 0.8000",
                             "90%"]
    assert joined["commit"] == "aaa; nnU-Net at bbb"
    assert recorded_run([ours], key) is ours and recorded_run([theirs], key) is theirs
