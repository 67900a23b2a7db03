"""Installing nnU-Net v2 results folders (PlainConvUNet and ResidualEncoderUNet, 2d and 3d) as autounet models."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.errors import UserError
from autounet.inference.model_folder import load_network, load_trained_configuration
from autounet.inference.nnunet_checkpoint import load_nnunet_checkpoint
from autounet.inference.nnunet_import import import_nnunet_model
from autounet.inference.predictor import Predictor
from autounet.network import build_network
from tests.conftest import write_nifti
from tests.inference import nnunet_factory as nf

runner = CliRunner()
CASES = [(2, False, (0, 1, 2)), (2, True, (0, 2, 1)), (3, False, (0, 1, 2)), (3, True, (0, 1, 2)),
         (3, False, (2, 0, 1)), (3, True, (1, 2, 0))]


def _configuration(dims: int) -> str:
    return "2d" if dims == 2 else "3d_fullres"


def _image_order(dims: int, transpose) -> list[int]:
    """Permutation of a (B, C, *spatial) tensor in nnU-Net's axis order to the images' own order."""
    back = np.argsort(transpose) if dims == 3 else np.argsort([transpose[1] - 1, transpose[2] - 1])
    return [0, 1, *[2 + int(b) for b in back]]


def _installed_network(folder: Path, results: Path):
    installed = import_nnunet_model([folder], results)
    trained = load_trained_configuration(installed[0].folder)
    return installed[0], trained, load_network(trained.folds[0], trained.plan, "cpu")


@pytest.mark.parametrize("dims, residual, transpose", CASES)
def test_installed_network_gives_nnunets_logits(tmp_path, dims, residual, transpose):
    """Against nnU-Net's own network class (dynamic_network_architectures), when it is installed."""
    pytest.importorskip("dynamic_network_architectures")
    configuration = _configuration(dims)
    plans = nf.nnunet_plans(dims, residual, transpose)
    reference = nf.dna_network(plans, configuration, seed=3)
    folder = nf.write_nnunet_folder(tmp_path / "nnunet", plans, configuration, {0: reference.state_dict()})
    _, _, network = _installed_network(folder, tmp_path / "results")
    x = torch.randn(2, 1, *plans["configurations"][configuration]["patch_size"])
    order = _image_order(dims, transpose)
    with torch.no_grad():
        theirs = reference(x)
        theirs = theirs[0] if isinstance(theirs, (list, tuple)) else theirs
        ours = network(x.permute(*order))
    assert ours.shape == theirs.permute(*order).shape
    assert float((ours - theirs.permute(*order)).abs().max()) < 1e-4


@pytest.mark.parametrize("dims, residual, transpose", CASES)
def test_names_mapped_both_ways_give_the_same_logits(tmp_path, dims, residual, transpose):
    """autounet weights renamed to nnU-Net's names, installed, and compared with the network they came from."""
    configuration = _configuration(dims)
    plans = nf.nnunet_plans(dims, residual, transpose)
    source = nf.network_config(plans["configurations"][configuration]["architecture"]["arch_kwargs"])
    state = nf.nnunet_named_state(source, seed=5)
    torch.manual_seed(5)
    original = build_network(source).eval()
    with torch.no_grad():  # the same weights the factory renamed (same seed, same norm re-draw)
        for module in original.modules():
            if isinstance(module, (torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    folder = nf.write_nnunet_folder(tmp_path / "nnunet", plans, configuration, {0: state})
    _, trained, network = _installed_network(folder, tmp_path / "results")
    x = torch.randn(1, 1, *plans["configurations"][configuration]["patch_size"])
    order = _image_order(dims, transpose)
    with torch.no_grad():
        expected = original(x).permute(*order)
        got = network(x.permute(*order))
    assert float((got - expected).abs().max()) < 1e-4
    assert trained.plan.network.architecture == ("residual_encoder" if residual else "plain")


def test_plans_are_translated_onto_the_images_axes(tmp_path):
    plans = nf.nnunet_plans(3, False, transpose=(2, 0, 1), patch=[8, 16, 32], spacing=[2.0, 1.0, 0.5],
                            normalization="CTNormalization")
    config = nf.network_config(plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"])
    folder = nf.write_nnunet_folder(tmp_path / "nnunet", plans, "3d_fullres", {0: nf.nnunet_named_state(config),
                                                                                "all": nf.nnunet_named_state(config)})
    installed, trained, _ = _installed_network(folder, tmp_path / "results")
    plan = trained.plan
    # nnU-Net's axis j is the image's axis transpose[j]: image axis 0 sits at nnU-Net position 1, and so on.
    assert plan.patch_size == [16, 32, 8]
    assert plan.spacing == [1.0, 0.5, 2.0]
    assert plan.normalization == ["ct"]
    assert trained.plans.intensity_stats[0].percentile_99_5 == 50.0
    assert plan.resampling.order_data == 3 and plan.resampling.order_seg == 1
    assert plan.network.strides[1] == [2, 2, 1] and plan.network.kernel_sizes[0] == [3, 3, 1]
    # nnU-Net lists decoder stages deepest first ([1, 2]); autounet by resolution, highest first.
    assert plan.network.n_conv_per_stage_decoder == [2, 1]
    assert installed.folds == ["0", "all"] and installed.dataset == nf.DATASET
    assert trained.plans.extra["nnunet_import"]["trainer"] == "nnUNetTrainer"


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker.txt"
    plans = nf.nnunet_plans(2)
    config = nf.network_config(plans["configurations"]["2d"]["architecture"]["arch_kwargs"])
    folder = nf.write_nnunet_folder(tmp_path / "nnunet", plans, "2d", {0: nf.nnunet_named_state(config)})
    path = folder / "fold_0" / "checkpoint_final.pth"
    torch.save({**nf.checkpoint(nf.nnunet_named_state(config)), "payload": _RunsCode(marker)}, path)
    with pytest.raises(UserError, match="refused: the checkpoint holds '(builtins.)?exec'") as error:
        import_nnunet_model([folder], tmp_path / "results")
    assert not marker.exists()
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "results").exists()


def test_the_checkpoint_holds_only_what_nnunet_stores(tmp_path):
    state = nf.nnunet_named_state(nf.network_config(nf.arch_kwargs(2, False)))
    path = tmp_path / "checkpoint_final.pth"
    torch.save(nf.checkpoint(state), path)
    loaded = load_nnunet_checkpoint(path)
    assert loaded["_best_ema"] == np.float64(0.6) and loaded["init_args"]["device"] == torch.device("cpu")
    torch.save({**nf.checkpoint(state), "extra": Path("x")}, path)  # an object of a class nnU-Net does not store
    with pytest.raises(UserError, match="refused: the checkpoint holds .pathlib"):
        load_nnunet_checkpoint(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_nnunet_checkpoint(path)


def test_numpy_1_scalar_names_are_allowed(tmp_path):
    """Checkpoints written under numpy 1 name the scalar constructor numpy.core.multiarray.scalar."""
    path = tmp_path / "checkpoint_final.pth"
    state = nf.nnunet_named_state(nf.network_config(nf.arch_kwargs(2, False)))
    torch.save(nf.checkpoint(state), path)
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    pickled = [name for name in entries if name.endswith("data.pkl")][0]
    assert b"numpy._core.multiarray\nscalar" in entries[pickled]
    entries[pickled] = entries[pickled].replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    assert float(load_nnunet_checkpoint(path)["_best_ema"]) == 0.6


def test_unsupported_networks_and_trainers_are_named(tmp_path):
    plans = nf.nnunet_plans(2)
    plans["configurations"]["2d"]["architecture"]["network_class_name"] = "nnunetv2.nets.MedNeXt"
    config = nf.network_config(nf.arch_kwargs(2, False))
    folder = nf.write_nnunet_folder(tmp_path / "a", plans, "2d", {0: nf.nnunet_named_state(config)})
    with pytest.raises(UserError, match="unsupported: network MedNeXt"):
        import_nnunet_model([folder], tmp_path / "results")
    state = nf.nnunet_named_state(config)  # batch norm instead of instance norm leaves running statistics
    state["encoder.stages.0.0.convs.0.norm.running_mean"] = torch.zeros(4)
    folder = nf.write_nnunet_folder(tmp_path / "b", nf.nnunet_plans(2), "2d", {0: state}, trainer="nnUNetTrainerBN")
    with pytest.raises(UserError, match="trainer probably builds another network"):
        import_nnunet_model([folder], tmp_path / "results")
    with pytest.raises(UserError, match="not an nnU-Net v2 results folder"):
        import_nnunet_model([tmp_path / "b"], tmp_path / "results")


def test_install_model_from_nnunet_then_predict(tmp_path, data_root):
    plans = nf.nnunet_plans(3, True, patch=[8, 16, 16])
    config = nf.network_config(plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"])
    folder = nf.write_nnunet_folder(tmp_path / "nnunet", plans, "3d_fullres",
                                    {0: nf.nnunet_named_state(config, 1), 1: nf.nnunet_named_state(config, 2)},
                                    files=("checkpoint_final.pth", "checkpoint_best.pth"), mirror_axes=())
    result = runner.invoke(app, ["install-model", "--from-nnunet", str(folder)])
    assert result.exit_code == 0, result.output
    assert "folds 0, 1; checkpoints final, best" in result.output
    assert "nnU-Net mirrors no axis" in result.output
    again = runner.invoke(app, ["install-model", "--from-nnunet", str(folder)])
    assert again.exit_code == 1 and "already installed; pass --overwrite" in again.output
    image = np.random.default_rng(0).normal(30, 5, (9, 18, 20)).astype(np.float32)
    write_nifti(tmp_path / "in" / "case_0000.nii.gz", image, spacing=(2.5, 1.0, 1.2))
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "-d", nf.DATASET,
                                 "--no-tta", "--precision", "float32", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case.nii.gz")))
    predictor = Predictor.from_model_folder(data_root / "results" / nf.DATASET / "3d_fullres", device="cpu",
                                            tta=False, precision="float32")
    from autounet.io.geometry import Geometry
    geometry = Geometry(spacing=(2.5, 1.0, 1.2), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
    expected = predictor.predict(image[None], geometry).labels
    np.testing.assert_array_equal(written, expected)
    saved = json.loads((data_root / "results" / nf.DATASET / "3d_fullres" / "fold_1" / "training_config.json")
                       .read_text())
    assert saved["fold"] == 1 and saved["configuration"] == "3d_fullres"


def test_a_cascade_installs_with_its_first_stage_and_predicts(tmp_path, data_root):
    plans = nf.nnunet_plans(3)
    plans["configurations"]["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    arch = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    lowres = nf.write_nnunet_folder(tmp_path / "nnunet", plans, "3d_lowres",
                                    {0: nf.nnunet_named_state(nf.network_config(arch))})
    # the second stage also sees the first stage's prediction: one input channel per foreground label
    cascade = nf.write_nnunet_folder(tmp_path / "nnunet", plans, "3d_cascade_fullres",
                                     {0: nf.nnunet_named_state(nf.network_config(arch, in_channels=3))})
    with pytest.raises(UserError, match="needs its first stage '3d_lowres'; give that nnU-Net folder"):
        import_nnunet_model([cascade], data_root / "results")
    assert not (data_root / "results").exists()
    result = runner.invoke(app, ["install-model", "--from-nnunet", str(lowres), str(cascade)])
    assert result.exit_code == 0, result.output
    write_nifti(tmp_path / "in" / "case_0000.nii.gz",
                np.random.default_rng(1).normal(30, 5, (6, 20, 18)).astype(np.float32), spacing=(2.0, 1.0, 1.0))
    result = runner.invoke(app, ["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d",
                                 nf.DATASET, "-c", "3d_cascade_fullres", "--no-tta", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "case.nii.gz"))).shape == (6, 20, 18)


def test_installed_models_tile_small_images_with_the_whole_patch_as_nnunet_does(tmp_path):
    from autounet.inference.predictor import ConfigurationModel
    from autounet.inference.sliding_window import tile_shape

    plans = nf.nnunet_plans(3, patch=[8, 16, 16])
    state = nf.nnunet_named_state(nf.network_config(plans["configurations"]["3d_fullres"]["architecture"]
                                                    ["arch_kwargs"]))
    _, trained, _ = _installed_network(nf.write_nnunet_folder(tmp_path / "nnunet", plans, "3d_fullres", {0: state}),
                                       tmp_path / "results")
    model = ConfigurationModel(trained, torch.device("cpu"), mirror=False, step=0.5)
    assert model.settings.pad_to_patch
    assert tile_shape((5, 9, 30), model.settings) == (8, 16, 16)
    # autounet's own rule would round the small axes up to the downsampling (2, 4, 4) instead
    assert tile_shape((5, 9, 30), replace(model.settings, pad_to_patch=False)) == (6, 12, 16)


def test_installed_folds_average_logits_as_nnunet_does(tmp_path):
    from autounet.inference.predictor import ConfigurationModel
    from autounet.inference.sliding_window import predict_logits

    plans = nf.nnunet_plans(2)
    config = nf.network_config(plans["configurations"]["2d"]["architecture"]["arch_kwargs"])
    states = {0: nf.nnunet_named_state(config, 1), 1: nf.nnunet_named_state(config, 2)}
    import_nnunet_model([nf.write_nnunet_folder(tmp_path / "nnunet", plans, "2d", states)], tmp_path / "results")
    trained = load_trained_configuration(tmp_path / "results" / nf.DATASET / "2d")
    model = ConfigurationModel(trained, torch.device("cpu"), mirror=False, step=0.5)
    data = np.random.default_rng(0).normal(size=(1, 2, 20, 24)).astype(np.float32)
    logits = [predict_logits(net, data, 3, model.settings) for net in model.networks]
    expected = torch.softmax((logits[0] + logits[1]) / 2, dim=0)
    of_probabilities = (torch.softmax(logits[0], dim=0) + torch.softmax(logits[1], dim=0)) / 2
    got = model.probabilities_of_preprocessed(data)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, of_probabilities, atol=1e-4)  # the two ways differ on these networks


def test_installed_models_restore_logits_where_the_grid_changes(tmp_path):
    from autounet.inference.predictor import ConfigurationModel, restored_as
    from autounet.io import Geometry
    from autounet.preprocessing.store import CaseProperties

    plans = nf.nnunet_plans(2)
    config = nf.network_config(plans["configurations"]["2d"]["architecture"]["arch_kwargs"])
    import_nnunet_model([nf.write_nnunet_folder(tmp_path / "nnunet", plans, "2d", {0: nf.nnunet_named_state(config)})],
                        tmp_path / "results")
    trained = load_trained_configuration(tmp_path / "results" / nf.DATASET / "2d")
    assert restored_as(trained.plans) == "logits"
    model = ConfigurationModel(trained, torch.device("cpu"), mirror=False, step=0.5)
    data = np.random.default_rng(0).normal(size=(1, 2, 20, 24)).astype(np.float32)
    logits = model.probabilities_of_preprocessed(data, keep_logits=True)
    assert torch.allclose(torch.softmax(logits, 0), model.probabilities_of_preprocessed(data), atol=1e-6)
    same = CaseProperties("c", [2, 20, 24], Geometry((1.0, 1.0, 1.0)), [[0, 2], [0, 20], [0, 24]], [2, 20, 24],
                          [2, 20, 24], [1.0, 1.0, 1.0])
    assert not model.restores_logits(same)
    finer = replace(same, original_shape=[2, 30, 36], geometry=Geometry((1.0, 0.67, 0.67)),
                    crop_bbox=[[0, 2], [0, 30], [0, 36]], shape_after_crop=[2, 30, 36])
    assert model.restores_logits(finer)


def test_installed_models_blend_tiles_with_nnunets_gaussian(tmp_path):
    """nnU-Net's weights are a Gaussian filter (scipy, truncated at 4 sigma) of a single 1 at voxel size // 2."""
    from scipy.ndimage import gaussian_filter

    from autounet.inference.predictor import ConfigurationModel
    from autounet.inference.sliding_window import gaussian_importance, nnunet_importance

    for tile in [(8, 16, 16), (24, 32, 24), (5, 7), (1, 9)]:
        delta = np.zeros(tile)
        delta[tuple(size // 2 for size in tile)] = 1.0
        expected = gaussian_filter(delta, [size / 8 for size in tile], 0, mode="constant", cval=0.0)
        expected /= expected.max()
        expected[expected == 0] = expected[expected > 0].min()
        np.testing.assert_allclose(nnunet_importance(tile), expected, atol=1e-6)
    assert not np.allclose(gaussian_importance((24, 32, 24)), nnunet_importance((24, 32, 24)), atol=1e-2)
    plans = nf.nnunet_plans(3)
    state = nf.nnunet_named_state(nf.network_config(plans["configurations"]["3d_fullres"]["architecture"]
                                                    ["arch_kwargs"]))
    _, trained, _ = _installed_network(nf.write_nnunet_folder(tmp_path / "nnunet", plans, "3d_fullres", {0: state}),
                                       tmp_path / "results")
    assert ConfigurationModel(trained, torch.device("cpu"), mirror=False, step=0.5).settings.importance == "nnunet"
