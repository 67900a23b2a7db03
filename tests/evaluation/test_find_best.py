"""find-best on made-up cross-validation results (label files and probabilities written here)."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.errors import MissingArtifactError, UserError
from autounet.evaluation.choice import load_inference_choice
from autounet.evaluation.find_best import find_best
from autounet.paths import locate_dataset, resolve_root
from tests.conftest import write_dataset_json, write_nifti

SHAPE = (6, 12, 12)
N_CASES, N_FOLDS = 6, 3


def reference_labels(i: int) -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:5, 2:6, 2 + i % 2: 6 + i % 2] = 1
    labels[1:5, 7:11, 6:10] = 2
    return labels


def one_hot_probabilities(labels: np.ndarray, confidence: float, n_classes: int = 3) -> np.ndarray:
    probabilities = np.full((n_classes, *labels.shape), (1 - confidence) / (n_classes - 1), np.float32)
    for k in range(n_classes):
        probabilities[k][labels == k] = confidence
    return probabilities


def make_dataset(root, **labels_json):
    raw = root / "raw" / "Dataset200_Made"
    write_dataset_json(raw, {"0": "MRI"}, labels_json or {"background": 0, "a": 1, "b": 2}, N_CASES, ".nii.gz")
    for i in range(N_CASES):
        write_nifti(raw / "labelsTr" / f"c{i}.nii.gz", reference_labels(i), spacing=(2.0, 1.0, 1.0))
    return locate_dataset("200", resolve_root(root))


def write_configuration(location, name: str, predict, probabilities=None, folds=range(N_FOLDS)):
    """predict(i, reference) -> labels; probabilities(i, reference) -> (K, z, y, x) or None."""
    for i in range(N_CASES):
        fold = i % N_FOLDS
        if fold not in folds:
            continue
        validation = location.results / name / f"fold_{fold}" / "validation"
        reference = reference_labels(i)
        write_nifti(validation / f"c{i}.nii.gz", predict(i, reference).astype(np.uint8), spacing=(2.0, 1.0, 1.0))
        if probabilities is not None:
            np.savez_compressed(validation / f"c{i}.npz", probabilities=probabilities(i, reference))


def drop_corner(reference, size):
    """The reference with a size^3 corner of class 1 turned into background."""
    out = reference.copy()
    out[1:1 + size, 2:2 + size, :][out[1:1 + size, 2:2 + size, :] == 1] = 0
    return out


def test_picks_the_better_configuration_and_no_postprocessing_when_it_cannot_help(data_root):
    location = make_dataset(data_root)
    write_configuration(location, "2d", lambda i, r: drop_corner(r, 3))
    write_configuration(location, "3d_fullres", lambda i, r: drop_corner(r, 1))
    choice = find_best(location, workers=1)
    assert choice.configurations == ["3d_fullres"] and choice.folds == [0, 1, 2] and choice.num_cases == 6
    assert [c.label for c in choice.candidates][:2] == ["3d_fullres", "2d"]
    # the ensemble could not be scored: no probabilities were saved
    assert "no probabilities" in choice.candidates[2].note
    assert choice.candidates[0].foreground_dice > choice.candidates[1].foreground_dice
    assert choice.candidates[0].class_dice["b"] == 1.0
    assert choice.postprocessing.is_identity
    assert not any(t.applied for t in choice.postprocessing_trials)
    assert choice.foreground_dice_postprocessed == pytest.approx(choice.foreground_dice)
    stored = load_inference_choice(location.results)
    assert stored.configurations == ["3d_fullres"] and math.isnan(stored.candidates[2].foreground_dice)


def test_ensemble_chosen_when_averaging_fixes_both_members(data_root):
    location = make_dataset(data_root)

    def wrong_in(rows):
        def probabilities(i, reference):
            wrong = reference.copy()
            wrong[:, rows][wrong[:, rows] == 1] = 0
            p = one_hot_probabilities(reference, 0.9)
            p[:, :, rows] = one_hot_probabilities(wrong, 0.6)[:, :, rows]
            return p
        return probabilities

    for name, rows in (("2d", slice(2, 4)), ("3d_fullres", slice(4, 6))):
        probabilities = wrong_in(rows)
        write_configuration(location, name, lambda i, r, p=probabilities: np.argmax(p(i, r), 0), probabilities)
    choice = find_best(location, workers=2)
    assert choice.configurations == ["2d", "3d_fullres"]
    assert choice.foreground_dice == pytest.approx(1.0)
    singles = [c for c in choice.candidates if len(c.configurations) == 1]
    assert all(c.foreground_dice < 1.0 for c in singles)


def test_largest_component_chosen_only_for_the_class_it_helps(data_root):
    location = make_dataset(data_root)

    def with_island(i, reference):
        out = reference.copy()
        out[5, 0, 0] = 1  # a stray voxel of class 1 far from its blob
        return out

    write_configuration(location, "3d_fullres", with_island)
    choice = find_best(location, workers=1)
    # all foreground as one would keep one of the two equal blobs and lose a class: refused
    assert choice.postprocessing.largest_component_for == [[1]] and not choice.postprocessing.all_foreground_as_one
    trial = {t.step: t for t in choice.postprocessing_trials}
    assert trial["all foreground"].applied is False and trial["class a"].applied is True
    assert trial["class b"].applied is False  # nothing to remove: no gain, not applied
    assert choice.foreground_dice_postprocessed == pytest.approx(1.0)
    assert choice.foreground_dice < 1.0


def test_postprocessing_refused_when_reference_has_several_components(data_root):
    location = make_dataset(data_root)
    # The reference's class 2 blob is split in two; predict it perfectly: removing a component would hurt.
    for i in range(N_CASES):
        labels = reference_labels(i)
        labels[:, 9, :] = np.where(labels[:, 9, :] == 2, 0, labels[:, 9, :])
        write_nifti(location.raw / "labelsTr" / f"c{i}.nii.gz", labels, spacing=(2.0, 1.0, 1.0))

    def read_reference(i, _):
        from autounet.io import read_label
        return read_label(location.raw / "labelsTr" / f"c{i}.nii.gz")[0]

    write_configuration(location, "3d_fullres", read_reference)
    choice = find_best(location, workers=1)
    assert choice.postprocessing.is_identity
    trial = {t.step: t for t in choice.postprocessing_trials}
    assert trial["class b"].dice_after < trial["class b"].dice_before
    assert trial["all foreground"].applied is False


def test_region_dataset_ensemble_thresholds_regions(data_root):
    location = make_dataset(data_root, background=0, whole=[1, 2], core=2, regions_class_order=[1, 2])
    spec_path = location.raw / "dataset.json"
    data = json.loads(spec_path.read_text())
    data["regions_class_order"] = [1, 2]
    data["labels"] = {"background": 0, "whole": [1, 2], "core": 2}
    spec_path.write_text(json.dumps(data))

    def region_probabilities(i, reference):
        return np.stack([(reference > 0) * 0.8 + 0.1, (reference == 2) * 0.8 + 0.1]).astype(np.float32)

    write_configuration(location, "2d", lambda i, r: r, region_probabilities)
    write_configuration(location, "3d_fullres", lambda i, r: drop_corner(r, 2), region_probabilities)
    choice = find_best(location, workers=1)
    ensemble = next(c for c in choice.candidates if len(c.configurations) == 2)
    assert ensemble.foreground_dice == pytest.approx(1.0)
    assert choice.configurations == ["2d"]  # ties go to the single configuration
    assert set(choice.class_dice_postprocessed) == {"whole", "core"}


def test_missing_validation_is_named(data_root):
    location = make_dataset(data_root)
    write_configuration(location, "3d_fullres", lambda i, r: r, folds=[0, 1])
    (location.results / "3d_fullres" / "fold_2").mkdir(parents=True)
    with pytest.raises(MissingArtifactError, match="fold_2/validation: no validation predictions"):
        find_best(location, workers=1)
    with pytest.raises(MissingArtifactError, match="no trained folds for configuration '2d'"):
        find_best(location, ["2d"], workers=1)


def test_bad_probabilities_file_is_named(data_root):
    location = make_dataset(data_root)
    write_configuration(location, "2d", lambda i, r: r, lambda i, r: one_hot_probabilities(r, 0.9))
    write_configuration(location, "3d_fullres", lambda i, r: r, lambda i, r: one_hot_probabilities(r, 0.9)[:, :2])
    with pytest.raises(UserError, match=r"3d_fullres/fold_0/validation/c0.npz: probabilities of shape"):
        find_best(location, workers=1)


def test_cli_prints_choice(data_root):
    location = make_dataset(data_root)
    write_configuration(location, "2d", lambda i, r: drop_corner(r, 3))
    write_configuration(location, "3d_fullres", lambda i, r: drop_corner(r, 1))
    result = CliRunner().invoke(app, ["find-best", "200", "-c", "2d", "-c", "3d_fullres"])
    assert result.exit_code == 0, result.output
    assert "chose 3d_fullres (folds 0, 1, 2)" in result.output
    assert (location.results / "inference.json").is_file()
    result = CliRunner().invoke(app, ["find-best", "200", "-c", "3d_lowres"])
    assert result.exit_code == 1 and "3d_lowres" in result.output


def test_broken_inference_json_is_named(tmp_path):
    assert load_inference_choice(tmp_path) is None
    (tmp_path / "inference.json").write_text("{not json")
    with pytest.raises(UserError, match="inference.json: is not a valid inference.json"):
        load_inference_choice(tmp_path)
    (tmp_path / "inference.json").write_text('{"dataset": "x"}')
    with pytest.raises(UserError, match="is not a valid inference.json"):
        load_inference_choice(tmp_path)
