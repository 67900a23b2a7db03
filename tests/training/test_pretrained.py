"""Fine-tuning from a trained model: matching weights load, other heads start afresh, other networks are refused."""

from __future__ import annotations

import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from autounet.errors import UserError
from autounet.network import build_network
from autounet.training import TrainingConfig, train_fold
from autounet.training.pretrained import load_pretrained
from tests.training.helpers import make_training_root, network_config

TINY = dict(epochs=1, iterations_per_epoch=2, val_iterations=1, num_workers=0, device="cpu")


def _saved_fold(tmp_path, classes: int, features=(4, 8)):
    fold = tmp_path / "results" / "Dataset001_X" / "3d_fullres" / "fold_0"
    fold.mkdir(parents=True)
    (fold / "training_config.json").write_text('{"configuration": "3d_fullres", "fold": 0}')
    torch.manual_seed(1)
    network = build_network(network_config(3, classes, features, 2))
    save_file(network.state_dict(), str(fold / "model_final.safetensors"))
    return fold, network.state_dict()


def test_matching_weights_load_and_heads_of_another_class_count_start_afresh(tmp_path):
    fold, old = _saved_fold(tmp_path, classes=3)
    torch.manual_seed(2)
    new = build_network(network_config(3, 2, (4, 8), 2))
    before = {k: v.clone() for k, v in new.state_dict().items()}
    # the fold folder and its configuration folder (the fold of the same number) give the same weights
    for source in (fold, fold.parent):
        loaded = load_pretrained(new, source, "3d_fullres", 0)
        state = new.state_dict()
        heads = [k for k in state if k.startswith("heads.")]
        assert heads and sorted(loaded.fresh_heads) == sorted(heads)
        assert loaded.loaded == len(state) - len(heads)
        for name, value in state.items():
            expected = before[name] if name in heads else old[name]
            torch.testing.assert_close(value, expected, rtol=0, atol=0)
    assert "start afresh" in loaded.describe()


def test_a_network_of_another_topology_is_refused_by_name(tmp_path):
    fold, _ = _saved_fold(tmp_path, classes=3, features=(8, 16))
    with pytest.raises(UserError, match=r"model_final\.safetensors: its network differs from the plan's beyond the "
                                        r"segmentation heads \((en|de)coder"):
        load_pretrained(build_network(network_config(3, 3, (4, 8), 2)), fold, "3d_fullres", 0)
    with pytest.raises(UserError, match="no such model"):
        load_pretrained(build_network(network_config(3, 3, (4, 8), 2)), tmp_path / "nowhere", "3d_fullres", 0)
    not_a_model = tmp_path / "x.zip"
    with zipfile.ZipFile(not_a_model, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(UserError):
        load_pretrained(build_network(network_config(3, 3, (4, 8), 2)), not_a_model, "3d_fullres", 0)


def test_train_starts_from_the_pretrained_weights(tmp_path, capsys):
    first = make_training_root(tmp_path / "a")
    source = train_fold(first, "3d_fullres", 0, TrainingConfig(**TINY))
    # another dataset with one more class: the heads start afresh, everything else from the first model
    second = make_training_root(tmp_path / "b", labels={"background": 0, "a": 1, "b": 2, "c": 3}, seed=3)
    fold = train_fold(second, "3d_fullres", 1, TrainingConfig(**TINY, pretrained=str(source)))
    assert "14 weight tensor(s) loaded; the 2 segmentation head tensor(s) start afresh" in capsys.readouterr().err
    tuned = load_file(str(fold / "model_final.safetensors"))
    assert tuned["heads.0.weight"].shape[0] == 4
    assert '"pretrained": "' in (fold / "training_config.json").read_text()


def test_head_warmup_trains_the_heads_alone_for_its_iterations(tmp_path):
    first = make_training_root(tmp_path / "a")
    source = train_fold(first, "3d_fullres", 0, TrainingConfig(**TINY))
    start = load_file(str(source / "model_final.safetensors"))
    runs = {}
    for warmup in (0, 1, 2):  # TINY trains 2 iterations: none, the first, both of them
        second = make_training_root(tmp_path / f"b{warmup}", labels={"background": 0, "a": 1, "b": 2, "c": 3},
                                    seed=3)
        config = TrainingConfig(**TINY, pretrained=str(source), head_warmup_iterations=warmup)
        runs[warmup] = load_file(str(train_fold(second, "3d_fullres", 0, config) / "model_final.safetensors"))
    body = [k for k in start if not k.startswith("heads.") and start[k].is_floating_point()]
    assert all(torch.equal(runs[2][k], start[k]) for k in body), "a frozen weight moved"
    assert not all(torch.equal(runs[0][k], start[k]) for k in body), "without warm-up the body trains"
    assert not all(torch.equal(runs[1][k], start[k]) for k in body), "after the warm-up the body trains"
    assert not all(torch.equal(runs[1][k], runs[0][k]) for k in body)  # ... one step fewer than without
    assert not torch.equal(runs[2]["heads.0.weight"], runs[0]["heads.0.weight"])
    with pytest.raises(UserError, match="needs a pretrained model"):
        train_fold(first, "3d_fullres", 1, TrainingConfig(**TINY, head_warmup_iterations=5))
