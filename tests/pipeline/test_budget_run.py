"""Duration budgets through the real command line: run plans for time and keeps to it; train keeps to its budget."""

from __future__ import annotations

import json
import re
import time

import pytest

from autounet.training.optim import poly_lr
from tests.conftest import make_nifti_dataset
from tests.pipeline.test_end_to_end import autounet, ok

pytestmark = pytest.mark.slow

MARGIN_SECONDS = 15.0
"""Python and torch start-up (3-6 s on the shared 2-core machine) plus noise in the validation estimate."""


def test_run_and_train_with_duration_budgets(tmp_path):
    root = tmp_path / "root"
    name = make_nifti_dataset(root / "raw" / "Dataset203_Budget", n_cases=5, shape=(16, 24, 20),
                              spacing=(2.0, 1.0, 1.0)).name
    bad = autounet(root, "run", name, "--budget", "45")
    assert bad.returncode == 1 and "without a unit" in bad.stdout + bad.stderr and "Traceback" not in bad.stderr

    result = ok(autounet(root, "run", name, "--budget", "45s", "--folds", "0", "--no-predict", "--device", "cpu"))
    printed = " ".join((result.stdout + result.stderr).split())
    assert "45s for the whole run, 1 fold training(s) of about 45s" in printed and "chosen:" in printed
    # the whole run keeps to the budget: planning's measurements, preprocessing, find-best and the report included
    took = re.search(r"budget 45s: the run took (\d+)s \((\d+) %\); training iterations (\d+) s", printed)
    assert took is not None, printed
    assert int(took.group(1)) <= 45 + MARGIN_SECONDS / 3 and 0 < int(took.group(3)) < int(took.group(1)), printed
    assert re.search(r"budget \d+s spent: setup \d+ s \(\d+ %\), training iterations", printed), printed
    time_budget = json.loads((root / "preprocessed" / name / "plans.json").read_text())["time_budget"]
    # A network made cheaper for the budget has its own name (e.g. 2d_fitted_45s); 2d and 3d_fullres stay nnU-Net's.
    assert time_budget["budget_seconds"] == 45
    assert time_budget["chosen"].removesuffix("_fitted_45s") in ("2d", "3d_fullres")
    assert {t["configuration"].removesuffix("_fitted_45s") for t in time_budget["timings"]} == {"2d", "3d_fullres"}
    assert all(t["seconds_per_iteration"] > 0 for t in time_budget["timings"])
    configuration = time_budget["chosen"]

    start = time.perf_counter()
    trained = ok(autounet(root, "train", name, "--fold", "1", "--budget", "30s", "--device", "cpu"))
    wall = time.perf_counter() - start
    assert wall <= 30 + MARGIN_SECONDS, trained.stdout + trained.stderr
    fold = root / "results" / name / configuration / "fold_1"  # the plan's choice is the default configuration
    config = json.loads((fold / "training_config.json").read_text())
    timing = config["budget_timing"]
    assert timing["budget_seconds"] == 30 and timing["seconds_per_iteration"] > 0
    assert timing["measured_seconds_per_iteration"] > 0 and timing["epochs"] == config["epochs"]
    assert "s per training iteration" in trained.stdout + trained.stderr
    rows = (fold / "log.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == config["epochs"]  # trained the whole (re-fitted) schedule
    if not timing["last_epoch_unplanned"]:  # the deadline did not come early: the rate annealed to its end
        last_lr = float(rows[-1].split(",")[-3])
        assert last_lr == pytest.approx(poly_lr(config["learning_rate"], config["epochs"] - 1, config["epochs"], 0.9),
                                        rel=1e-4)
    # a duration trains with AdamW at a batch timed for speed (never above the plan's, sized for memory)
    plan_batch = json.loads((fold / "plans.json").read_text())["configurations"][configuration]["batch_size"]
    assert config["optimizer"] == "adamw" and 1 <= config["batch_size"] <= plan_batch
    assert (fold / "validation" / "summary.json").is_file()


def test_a_fold_too_small_for_its_share_is_restated_for_the_whole_run_budget():
    from autounet.errors import UserError
    from autounet.pipeline import _budget_shared_by
    from autounet.planning.time_budget import parse_duration
    from autounet.run_budget import RunBudget
    from autounet.training.schedule_fit import too_small_error

    run_budget = RunBudget(10.0, 5)
    with pytest.raises(UserError) as error, _budget_shared_by(run_budget):
        raise too_small_error(2.0, 0.01, 17.0, 18.2)
    message = str(error.value)
    assert message.startswith("a 10s budget for 5 fold training(s) is too small: one training iteration")
    assert parse_duration(message.split("--budget ")[1].split(" ")[0]) >= 5 * 18.2 + run_budget.closing_seconds()
    with pytest.raises(UserError, match=r"^a 2s budget is too small"), _budget_shared_by(None):
        raise too_small_error(2.0, 0.01, 17.0, 18.2)


def test_each_fold_gets_its_share_of_the_time_left():
    from autounet.run_budget import RunBudget

    run_budget = RunBudget(100.0, 2, started=time.perf_counter() - 30.0)  # 30 s already spent
    share = run_budget.next_fold_seconds(2)
    assert (100 - 30 - run_budget.closing_seconds()) / 2 - 1 <= share <= (100 - 30 - run_budget.closing_seconds()) / 2
    assert run_budget.nominal_fold_seconds() == 50.0 and run_budget.planning_allowance() == pytest.approx(5.0)


def test_a_rerun_of_the_same_run_keeps_its_folds_whatever_share_they_get_now():
    from autounet.pipeline import _same_schedule
    from autounet.training.config import TrainingConfig

    stored = TrainingConfig.from_budget("281.5s", run_time_budget_seconds=600.0)
    assert _same_schedule(stored, TrainingConfig.from_budget("250s", run_time_budget_seconds=600.0))
    assert not _same_schedule(stored, TrainingConfig.from_budget("250s", run_time_budget_seconds=1200.0))
    older = TrainingConfig.from_budget("10m")  # a fold an older autounet trained under `run --budget 10m`
    assert _same_schedule(older, TrainingConfig.from_budget("9m", run_time_budget_seconds=600.0))
    assert not _same_schedule(TrainingConfig.from_budget("quick"), TrainingConfig.from_budget("9m",
                                                                                             run_time_budget_seconds=600.0))
    assert _same_schedule(TrainingConfig.from_budget("quick"), TrainingConfig.from_budget("quick"))
    assert not _same_schedule(None, TrainingConfig.from_budget("quick"))
