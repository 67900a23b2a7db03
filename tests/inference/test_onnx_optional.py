"""Without the onnx extra, autounet works and ONNX export fails with one sentence saying what to install."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.inference.nnunet_import import import_nnunet_model
from tests.inference import nnunet_factory as nf


def test_onnx_export_without_the_extra_names_it(tmp_path, data_root, monkeypatch):
    plans = nf.nnunet_plans(2)
    state = nf.nnunet_named_state(nf.network_config(plans["configurations"]["2d"]["architecture"]["arch_kwargs"]))
    import_nnunet_model([nf.write_nnunet_folder(tmp_path / "nnunet", plans, "2d", {0: state})], data_root / "results")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the package were not installed
    result = CliRunner().invoke(app, ["export-model", nf.DATASET, "-o", str(tmp_path / "x"), "--format", "onnx"])
    assert result.exit_code == 1
    assert "needs the onnx package (autounet's onnx extra): pip install onnx onnxruntime." in result.output
    assert not (tmp_path / "x").exists()
