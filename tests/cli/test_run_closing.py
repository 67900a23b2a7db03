"""The lines `autounet run` ends with: where the outputs are and the commands to type next."""

from __future__ import annotations

from pathlib import Path

from autounet.cli.commands_run import closing_lines
from autounet.paths import DatasetLocation
from autounet.pipeline import PipelineResult


def _location(tmp_path: Path) -> DatasetLocation:
    root = tmp_path / "root"
    return DatasetLocation(name="Dataset004_Hippocampus", raw=tmp_path / "raw", preprocessed=root / "pre",
                           results=root / "results" / "Dataset004_Hippocampus")


def test_a_duration_budget_suggests_five_times_one_folds_share_for_all_folds(tmp_path):
    location = _location(tmp_path)
    fold = location.results / "2d" / "fold_0"
    fold.mkdir(parents=True)
    (fold / "progress.png").write_bytes(b"png")
    result = PipelineResult("Dataset004_Hippocampus", ["2d"], [0], fold_folders=[fold],
                            predictions=location.results / "predictions_imagesTs", predicted_cases=3)
    lines = closing_lines(result, location, "examples/Dataset004_Hippocampus", "2m", [0])
    assert f"training curves: {fold / 'progress.png'}" in lines
    assert f"segmentations of the 3 image(s) in imagesTs/: {location.results / 'predictions_imagesTs'}" in lines
    text = "\n".join(lines)
    assert "autounet run examples/Dataset004_Hippocampus --budget 10m --folds 0,1,2,3,4\n" in text
    assert text.endswith("autounet run examples/Dataset004_Hippocampus --budget 20m --folds 0")


def test_all_folds_and_a_root_are_carried_into_the_suggestions(tmp_path):
    location = _location(tmp_path)
    result = PipelineResult("Dataset004_Hippocampus", ["3d_fullres"], [0, 1, 2, 3, 4])
    lines = closing_lines(result, location, "Dataset004", "quick", [0, 1, 2, 3, 4], root=Path("/data"))
    assert not any("progress.png" in line or "imagesTs" in line for line in lines)  # nothing trained, predicted
    assert not any("all five folds" in line for line in lines)
    assert lines[-2].endswith("autounet predict -i YOUR_IMAGES/ -o OUTPUT/ -d Dataset004_Hippocampus --root /data")
    assert lines[-1].endswith("autounet run Dataset004 --budget 30m --root /data")
