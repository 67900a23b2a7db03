"""The report of a small finished run: its sections, tables and embedded images, and what it says when pieces
are missing."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.paths import DataRoot, locate_dataset
from autounet.report import REPORT_FILE, render_report, write_report
from tests.conftest import make_nifti_dataset
from tests.report.factory import write_fold
from tests.report.htmlcheck import decode_png, outline

SECTIONS = ["dataset", "plans", "training", "cross-validation", "overlays"]


def test_a_finished_run_has_every_section_table_and_image(nifti_run):
    path = write_report(nifti_run)
    assert path == nifti_run.results / REPORT_FILE
    text = path.read_text(encoding="utf-8")
    page = outline(text)
    assert page.sections == SECTIONS
    assert page.notes == []  # nothing is missing in a finished run
    # dataset: distributions, label volumes; training: 2 configurations x 2 folds' curves; cross-validation:
    # one box plot; overlays: best, median and worst case of each configuration.
    assert len(page.images) == 2 + 4 + 1 + 6
    for src in page.images:
        assert decode_png(src).size[0] > 100
    # overview and intensities, label volumes; 2 plans; per configuration the folds, per fold a summary and its
    # config, per-class and per-case tables; find-best's candidates and postprocessing trials
    assert page.tables == 3 + 2 + 2 * (1 + 2 * 2 + 2) + 2
    assert {"2d", "3d_fullres", "3d_fullres, fold 0", "2d, fold 1", "find-best"} <= set(page.headings)
    assert "find-best chose 3d_fullres (folds 0, 1)" in text
    assert "not scored: 2d, 3d_fullres saved no probabilities" in text  # the ensemble candidate's note


def test_the_report_references_nothing_outside_itself(nifti_run):
    text = render_report(nifti_run)
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text)
    assert "<link" not in text


def test_cases_are_listed_worst_first_and_overlays_show_best_median_worst(nifti_run):
    text = render_report(nifti_run)
    table = text[text.index("per case, worst first"):]
    table = table[:table.index("</table>")]
    means = [float(m) for m in re.findall(r'<td class="num" data-v="([0-9.e-]+)">[^<]*</td><td class="num"', table)]
    assert len(means) == 6 and means == sorted(means) and means[0] < means[-1]
    roles = re.findall(r'alt="(best|median|worst): (case_\d+)', text)
    assert [role for role, _ in roles] == ["best", "median", "worst"] * 2
    assert len({case for _, case in roles[:3]}) == 3


def test_rgb_cases_are_shown_in_colour(rgb_run):
    text = render_report(rgb_run)
    page = outline(text)
    overlays = [src for src in page.images if src in text[text.index('id="overlays"'):]]
    assert len(overlays) == 3
    pixels = np.asarray(decode_png(overlays[0]).convert("RGB"), dtype=int)
    # The dataset's pixels are (grey, 255 - grey, grey / 2): far from grey wherever the image is shown.
    colourful = np.abs(pixels[..., 0] - pixels[..., 1]) > 60
    assert colourful.mean() > 0.05
    assert "find-best has not run yet" in " ".join(page.notes)


def test_missing_pieces_are_sentences_not_errors(tmp_path):
    root = tmp_path / "root"
    raw = make_nifti_dataset(root / "raw" / "Dataset312_Partial", n_cases=4)
    location = locate_dataset(str(raw), DataRoot.under(root))
    from autounet.planning.planner import plan_dataset

    plan_dataset(location, gpu_memory_gb=8.0, device="cpu", configurations=["3d_fullres"], workers=1)
    page = outline(render_report(location))
    assert page.sections == SECTIONS
    notes = " ".join(page.notes)
    assert "No fold has been trained yet" in notes and "find-best has not run yet" in notes
    assert "Label volumes are measured on the cross-validation references" in notes

    # A fold still training: a log but no weights, no validation results yet.
    write_fold(location, "3d_fullres", 0, [], epochs=2, finished=False, validated=False)
    text = render_report(location)
    page = outline(text)
    assert "not finished (no model_final.safetensors)" in text
    assert "3d_fullres: no fold has validation results yet" in " ".join(page.notes)
    assert len(page.images) == 2  # the dataset's distributions and the fold's curves

    # A fold folder with its config alone (the first epoch not finished).
    (location.results / "3d_fullres" / "fold_0" / "log.csv").unlink()
    assert "no epoch finished yet" in " ".join(outline(render_report(location)).notes)


def test_the_raw_data_is_found_through_the_validation_references(nifti_run, tmp_path):
    """``run PATH`` trains a dataset outside the data root; ``report DatasetXXX`` then finds only its results."""
    root = tmp_path / "root"
    for folder in ("preprocessed", "results"):
        shutil.copytree(getattr(nifti_run, folder), root / folder / nifti_run.name)
    location = locate_dataset(nifti_run.name, DataRoot.under(root))
    assert not location.raw.exists()
    page = outline(render_report(location))
    assert page.notes == [] and len(page.images) == 2 + 4 + 1 + 6


def test_results_copied_from_another_machine_report_all_but_the_images(nifti_run, tmp_path):
    root = tmp_path / "root"
    copy = root / "results" / nifti_run.name
    shutil.copytree(nifti_run.results, copy)
    for summary in copy.glob("*/fold_*/validation/summary.json"):
        summary.write_text(summary.read_text().replace(str(nifti_run.raw), "/elsewhere/raw"))
    page = outline(render_report(locate_dataset(nifti_run.name, DataRoot.under(root))))
    assert "The raw dataset is not on this machine" in " ".join(page.notes)
    assert "3d_fullres, fold 1" in page.headings and "find-best" in page.headings


def test_cli_writes_the_report_and_names_it(nifti_run):
    root = nifti_run.results.parent.parent
    result = CliRunner().invoke(app, ["report", nifti_run.name, "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert str(nifti_run.results / REPORT_FILE) in result.output.replace("\n", "")


def test_cli_with_nothing_to_report_is_one_sentence(tmp_path):
    raw = make_nifti_dataset(tmp_path / "root" / "raw" / "Dataset313_Empty", n_cases=2)
    result = CliRunner().invoke(app, ["report", str(raw), "--root", str(tmp_path / "root")])
    assert result.exit_code != 0
    assert "no fingerprint or plans" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "root" / "results" / raw.name / REPORT_FILE).exists()


def test_a_time_budget_shows_what_was_timed_and_chosen(tmp_path, nifti_run):
    import json

    root = tmp_path / "root"
    shutil.copytree(nifti_run.preprocessed, root / "preprocessed" / nifti_run.name)
    plans_file = root / "preprocessed" / nifti_run.name / "plans.json"
    plans = json.loads(plans_file.read_text())
    plans["time_budget"] = {"budget_seconds": 1800.0, "device": "cpu", "chosen": "2d", "timings": [
        {"configuration": "3d_fullres", "seconds_per_iteration": 1.5, "seconds_per_forward": 0.2,
         "iterations": 960, "batch_size": 2, "patch_size": [16, 24, 16], "selected": True},
        {"configuration": "2d", "seconds_per_iteration": 0.12, "seconds_per_forward": 0.01, "iterations": 12000,
         "batch_size": 12, "patch_size": [24, 20], "features_per_stage": [16, 32], "selected": True}]}
    plans_file.write_text(json.dumps(plans))
    text = render_report(locate_dataset(nifti_run.name, DataRoot.under(root)))
    section = text[text.index('id="plans"'):text.index('id="training"')]
    assert "<h3>time budget</h3>" in section and "30 min<" in section
    assert "networks timed on this machine" in section and "12,000" in section and ">2d<" in section


def test_the_problems_verify_found_are_listed(nifti_run):
    from autounet.dataset.verify import VERIFY_FILE, VerifyReport, load_verify_report, save_verify_report

    kept = load_verify_report(nifti_run.preprocessed)
    assert kept is not None and kept.errors == []  # planning's verification kept what it found
    try:
        save_verify_report(VerifyReport(warnings=["labelsTr/case_002.nii.gz: holds no foreground"], num_cases=5),
                           nifti_run.preprocessed)
        text = " ".join(render_report(nifti_run).split())
        assert "problems verify found" in text and "warning: labelsTr/case_002.nii.gz: holds no foreground" in text
        (nifti_run.preprocessed / VERIFY_FILE).unlink()
        assert "No record of the verification" in " ".join(render_report(nifti_run).split())
    finally:
        save_verify_report(kept, nifti_run.preprocessed)
