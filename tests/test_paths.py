"""The data root (--root, $AUTOUNET_HOME, nnU-Net's variables, default) and dataset name resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from autounet.errors import DatasetNotFoundError
from autounet.paths import DataRoot, list_raw_datasets, locate_dataset, resolve_root

NNUNET = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("AUTOUNET_HOME", *NNUNET):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def _datasets(root: Path, *names: str) -> DataRoot:
    for name in names:
        (root / "raw" / name).mkdir(parents=True)
        (root / "raw" / name / "dataset.json").write_text("{}")
    return DataRoot.under(root)


def test_root_option_wins_over_environment(clean_env, tmp_path):
    clean_env.setenv("AUTOUNET_HOME", str(tmp_path / "env"))
    root = resolve_root(tmp_path / "given")
    assert root.raw == tmp_path / "given" / "raw" and root.source == "--root"
    assert root.preprocessed == tmp_path / "given" / "preprocessed"
    assert root.results == tmp_path / "given" / "results"


def test_autounet_home_wins_over_nnunet_variables(clean_env, tmp_path):
    clean_env.setenv("AUTOUNET_HOME", str(tmp_path / "env"))
    for name in NNUNET:
        clean_env.setenv(name, str(tmp_path / name))
    root = resolve_root()
    assert root.raw == tmp_path / "env" / "raw" and root.source == "$AUTOUNET_HOME"


def test_nnunet_variables_are_used_when_all_three_are_set(clean_env, tmp_path):
    for name in NNUNET:
        clean_env.setenv(name, str(tmp_path / name))
    root = resolve_root()
    assert (root.raw, root.preprocessed, root.results) == tuple(tmp_path / n for n in NNUNET)
    assert root.source == "nnU-Net variables"


def test_default_root_when_nothing_is_set(clean_env, tmp_path):
    clean_env.setenv("nnUNet_raw", str(tmp_path / "only_one"))  # incomplete: ignored
    root = resolve_root()
    assert root.raw == tmp_path / "home" / "autounet_data" / "raw" and root.source.startswith("default")


@pytest.mark.parametrize("name", ["Dataset004", "4", "004", "Dataset004_Hippocampus", " 4 "])
def test_dataset_names(tmp_path, name):
    root = _datasets(tmp_path, "Dataset004_Hippocampus", "Dataset040_Other", "Dataset104_More")
    location = locate_dataset(name, root)
    assert location.name == "Dataset004_Hippocampus"
    assert location.raw == root.raw / "Dataset004_Hippocampus"
    assert location.preprocessed == root.preprocessed / "Dataset004_Hippocampus"
    assert location.results == root.results / "Dataset004_Hippocampus"


def test_dataset_by_path_outside_the_root(tmp_path, monkeypatch):
    root = DataRoot.under(tmp_path / "root")
    folder = _datasets(tmp_path / "elsewhere", "Dataset005_Path").raw / "Dataset005_Path"
    location = locate_dataset(str(folder), root)
    assert location.raw == folder and location.preprocessed == root.preprocessed / "Dataset005_Path"
    monkeypatch.chdir(folder.parent)
    assert locate_dataset("./Dataset005_Path", root).raw == folder
    assert locate_dataset("Dataset005_Path", root).raw == folder  # a folder here with a dataset.json


def test_nnunet_layout_is_found_through_the_variables(clean_env, tmp_path):
    _datasets(tmp_path / "nn", "Dataset027_ACDC")
    clean_env.setenv("nnUNet_raw", str(tmp_path / "nn" / "raw"))
    clean_env.setenv("nnUNet_preprocessed", str(tmp_path / "nn_pre"))
    clean_env.setenv("nnUNet_results", str(tmp_path / "nn_res"))
    location = locate_dataset("27", resolve_root())
    assert location.raw == tmp_path / "nn" / "raw" / "Dataset027_ACDC"
    assert location.preprocessed == tmp_path / "nn_pre" / "Dataset027_ACDC"


def test_unknown_dataset_lists_what_exists(tmp_path):
    root = _datasets(tmp_path, "Dataset001_A", "Dataset002_B")
    with pytest.raises(DatasetNotFoundError) as caught:
        locate_dataset("Dataset003", root)
    message = str(caught.value)
    assert "'Dataset003'" in message and str(root.raw) in message
    assert "Dataset001_A, Dataset002_B" in message


def test_unknown_dataset_in_an_empty_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="datasets there: none"):
        locate_dataset("7", DataRoot.under(tmp_path))


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no_such_folder: no such dataset folder"):
        locate_dataset(str(tmp_path / "no_such_folder"), DataRoot.under(tmp_path))


def test_two_datasets_with_one_number_are_ambiguous(tmp_path):
    root = _datasets(tmp_path, "Dataset009_One", "Dataset009_Two")
    with pytest.raises(DatasetNotFoundError, match="ambiguous: Dataset009_One, Dataset009_Two"):
        locate_dataset("9", root)
    assert locate_dataset("Dataset009_Two", root).name == "Dataset009_Two"


def test_dataset_known_only_from_preprocessed(tmp_path):
    root = DataRoot.under(tmp_path)
    (root.preprocessed / "Dataset012_Copied").mkdir(parents=True)
    assert locate_dataset("12", root).preprocessed == root.preprocessed / "Dataset012_Copied"


def test_list_raw_datasets_ignores_other_folders(tmp_path):
    root = _datasets(tmp_path, "Dataset002_B", "Dataset001_A")
    (root.raw / "notes").mkdir()
    (root.raw / "Dataset003_file.txt").write_text("")
    assert list_raw_datasets(root) == ["Dataset001_A", "Dataset002_B"]
