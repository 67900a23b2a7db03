"""`autounet export-model --format onnx`: graphs that agree with torch, a manifest that reproduces predict.

These tests need the onnx extra (pip install 'autounet[onnx]'); they are skipped without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.inference.model_folder import load_network, load_trained_configuration
from autounet.inference.nnunet_import import import_nnunet_model
from autounet.inference.postprocessing import PostprocessingChoice
from tests.conftest import write_nifti
from tests.inference import nnunet_factory as nf

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from autounet.inference import onnx_reference  # noqa: E402  (after the skips: it needs onnxruntime to run)
from autounet.inference.onnx_export import MANIFEST_FILE, export_onnx, load_onnx_manifest  # noqa: E402

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _install(tmp_path: Path, results: Path, dims: int, residual: bool, folds=(0,), pad_to_patch: bool = True) -> Path:
    """An nnU-Net-format model with random weights installed into ``results``; its configuration folder.
    Without ``pad_to_patch`` it tiles small images rounded up to the downsampling only."""
    configuration = "2d" if dims == 2 else "3d_fullres"
    plans = nf.nnunet_plans(dims, residual)
    arch = plans["configurations"][configuration]["architecture"]["arch_kwargs"]
    states = {fold: nf.nnunet_named_state(nf.network_config(arch), seed=11 + fold) for fold in folds}
    folder = nf.write_nnunet_folder(tmp_path / "nnunet", plans, configuration, states)
    installed = import_nnunet_model([folder], results)[0].folder
    if not pad_to_patch:
        for plans_file in installed.glob("fold_*/plans.json"):
            data = json.loads(plans_file.read_text())
            data["extra"]["inference"] = {"pad_to_patch": False}
            plans_file.write_text(json.dumps(data))
    return installed


@pytest.mark.parametrize("dims, residual", [(2, False), (3, True), (3, False)])
def test_onnx_logits_agree_with_torch_on_a_tile(tmp_path, dims, residual):
    trained = load_trained_configuration(_install(tmp_path, tmp_path / "results", dims, residual))
    manifest = export_onnx(trained, tmp_path / "onnx")
    network = load_network(trained.folds[0], trained.plan, "cpu")
    session = ort.InferenceSession(str(tmp_path / "onnx" / manifest.graphs[0]), providers=["CPUExecutionProvider"])
    divisor = trained.plan.network.total_downsampling()
    # the patch, and a smaller tile of other multiples of the downsampling (the spatial axes are dynamic)
    for shape in (trained.plan.patch_size, [d * (2 if i else 1) for i, d in enumerate(divisor)]):
        x = torch.randn(2, 1, *shape)
        with torch.no_grad():
            expected = network(x).numpy()
        got = session.run([manifest.output_name], {manifest.input_name: x.numpy()})[0]
        assert got.shape == expected.shape
        assert float(np.abs(got - expected).max()) < 1e-3


def test_manifest_states_what_predict_does(tmp_path):
    trained = load_trained_configuration(_install(tmp_path, tmp_path / "results", 3, False, folds=(0, 1)))
    choice = PostprocessingChoice(all_foreground_as_one=True, largest_component_for=[[2]])
    export_onnx(trained, tmp_path / "onnx", postprocessing=choice)
    manifest = load_onnx_manifest(tmp_path / "onnx")
    raw = json.loads((tmp_path / "onnx" / MANIFEST_FILE).read_text())
    assert manifest.graphs == ["fold_0.onnx", "fold_1.onnx"] and manifest.folds == ["0", "1"]
    assert all((tmp_path / "onnx" / g).is_file() for g in manifest.graphs)
    channel = raw["channels"][0]
    assert (channel["name"], channel["file_suffix"], channel["normalization"]) == ("MRI", "_0000.nii.gz", "zscore")
    assert channel["statistics"]["percentile_99_5"] == 50.0
    assert manifest.target_spacing == [2.0, 1.0, 1.0] and manifest.transpose == [0, 1, 2]
    assert manifest.tiling.patch_size == [8, 16, 16] and manifest.tiling.divisor == [2, 4, 4]
    assert manifest.tiling.step == 0.5 and len(manifest.tiling.mirror_axes) == 8
    assert manifest.label_values == [0, 1, 2] and manifest.activation == "softmax"
    assert raw["postprocessing"] == {"all_foreground_as_one": True, "largest_component_for": [[2]]}
    assert raw["resampling"]["order_data"] == 3 and raw["resampling"]["anisotropy_threshold"] == 3.0
    assert (raw["fold_average"], raw["restored_as"]) == ("logits", "logits")  # as nnU-Net predicts


def test_export_model_command_writes_graphs_and_manifest(tmp_path, data_root):
    _install(tmp_path, data_root / "results", 2, True)
    out = tmp_path / "exported"
    result = runner.invoke(app, ["export-model", nf.DATASET, "-o", str(out), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert (out / "fold_0.onnx").is_file() and (out / MANIFEST_FILE).is_file()
    bad = runner.invoke(app, ["export-model", nf.DATASET, "-o", str(out), "--format", "tflite"])
    assert bad.exit_code == 1 and "--format must be zip or onnx" in bad.output


def _balance_heads(configuration: Path, sample: np.ndarray) -> None:
    """Shift the output biases of every fold so that each label wins on part of ``sample`` (a random network
    mostly predicts one label; the comparison needs every label present)."""
    from safetensors.torch import load_file, save_file

    trained = load_trained_configuration(configuration)
    for fold in trained.folds:
        network = load_network(fold, trained.plan, "cpu")
        with torch.no_grad():
            logits = network(torch.from_numpy(sample)[None]).flatten(2)[0]
        shift = torch.zeros(logits.shape[0], 1)
        for _ in range(100):  # nudge each label's bias towards an equal share of the voxels
            shares = torch.bincount((logits + shift).argmax(0), minlength=logits.shape[0]) / logits.shape[1]
            shift[:, 0] += 0.2 * (np.log(1 / logits.shape[0]) - torch.log(shares.clamp(min=1e-3)))
        state = load_file(str(fold.weights))
        head = f"heads.{trained.plan.network.num_stages - 2}.bias"
        state[head] = state[head] + shift[:, 0]
        save_file(state, str(fold.weights))


def _dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    x, y = a == label, b == label
    return 1.0 if x.sum() + y.sum() == 0 else 2.0 * float((x & y).sum()) / float(x.sum() + y.sum())


@pytest.mark.parametrize("dims, pad_to_patch", [(3, True), (2, True), (3, False)])
def test_reference_runner_segments_like_autounet_predict(tmp_path, data_root, dims, pad_to_patch):
    configuration = _install(tmp_path, data_root / "results", dims, dims == 3, folds=(0, 1), pad_to_patch=pad_to_patch)
    rng = np.random.default_rng(4)
    image = np.zeros((11, 30, 26), np.float32)  # zero border: cropped away and restored
    zz, yy, xx = np.mgrid[:9, :26, :22]
    image[1:10, 2:28, 3:25] = 30 + 10 * np.sin(yy / 3.0) + 8 * np.cos(xx / 4.0 + zz) + rng.normal(0, 1, zz.shape)
    inside = image[1:9, 2:18, 3:19]
    sample = ((inside - inside.mean()) / inside.std())[None]
    _balance_heads(configuration, sample[:, 0] if dims == 2 else sample)
    out = tmp_path / "exported"
    assert runner.invoke(app, ["export-model", nf.DATASET, "-o", str(out), "--format", "onnx"]).exit_code == 0
    spacing = (2.6, 0.9, 1.3)  # resampled to the plan's spacing and back
    write_nifti(tmp_path / "in" / "case_0000.nii.gz", image, spacing=spacing)
    predicted = tmp_path / "predicted"
    result = runner.invoke(app, ["predict", "-i", str(tmp_path / "in"), "-o", str(predicted), "-d", nf.DATASET,
                                 "--precision", "float32", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(predicted / "case.nii.gz")))
    assert json.loads((out / MANIFEST_FILE).read_text())["tiling"]["pad_to_patch"] is pad_to_patch
    got = onnx_reference.segment(out, image[None], spacing)
    assert got.shape == expected.shape
    for label in (1, 2):
        assert (expected == label).sum() > 50, "the case should show every label"
        assert _dice(got, expected, label) >= 0.99


def test_reference_runner_imports_neither_torch_nor_autounet():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib.util as u; "
            "spec = u.spec_from_file_location('ref', sys.argv[1] + '/autounet/inference/onnx_reference.py'); "
            "m = u.module_from_spec(spec); spec.loader.exec_module(m); import onnxruntime; "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'autounet')))")
    done = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
