"""`autounet predict` on JPEG photos: read as images, segmentations written as PNG with a note (not a KeyError)."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from autounet.cli.main import app
from tests.conftest import make_png_dataset
from tests.inference.factory import configuration, make_trained


def test_predict_jpeg_inputs_writes_png_labels(data_root, tmp_path):
    raw = make_png_dataset(data_root / "raw" / "Dataset102_TinyPng", n_cases=1, n_test=2)
    make_trained(data_root, raw, [configuration("2d", channels=1, classes=2, is_2d=True)], folds=(0,))
    photos = tmp_path / "photos"
    photos.mkdir()
    for case in ("img_001", "img_002"):
        Image.open(raw / "imagesTs" / f"{case}_0000.png").save(photos / f"{case}_0000.jpg", quality=90)
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["predict", "-i", str(photos), "-o", str(out), "--no-tta"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "predicted 2 case(s)" in result.output
    assert "2 JPEG input(s): their segmentations are written as PNG (e.g. img_001.png)" in " ".join(
        result.output.split())
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".jpg")) == ["img_001.png", "img_002.png"]
    for case in ("img_001", "img_002"):
        with Image.open(out / f"{case}.png") as written, Image.open(photos / f"{case}_0000.jpg") as source:
            assert written.size == source.size
            assert set(np.unique(np.asarray(written))) <= {0, 1}
    # --continue finds the PNGs written for JPEG inputs and predicts nothing again
    again = CliRunner().invoke(app, ["predict", "-i", str(photos), "-o", str(out), "--no-tta", "--continue"],
                               catch_exceptions=False)
    assert again.exit_code == 0 and "predicted 0 case(s)" in again.output and "skipped 2" in again.output
