"""Benchmark: small images predicted with the whole patch (zero-padded, as nnU-Net does) or with a tile rounded only
up to the network's downsampling, by the same trained model, scored against the reference labels.

Training pads a case smaller than the patch with zeros to the whole patch, so the network's instance
normalisation always saw whole patches; a smaller tile at prediction changes those statistics. This script
measures what that does on a fold's held-out cases: the model folder is copied twice, once per setting of
``extra.inference.pad_to_patch`` in its plans, and ``autounet predict`` runs with each (no TTA) on the fold's
validation images. Printed: mean foreground Dice of each, the paired difference over the cases whose label maps
differ, and each run's wall time.

Usage:
    python bench/tile_padding.py --root ROOT --dataset Dataset004_Hippocampus --configuration 3d_fullres --fold 0
    python bench/tile_padding.py --root ROOT --dataset Dataset004_Hippocampus --raw examples/Dataset004_Hippocampus
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import autounet_cmd, print_table, run_measured  # noqa: E402
from bench.quality import dice  # noqa: E402

from autounet.io import read_label  # noqa: E402
from autounet.paths import DataRoot, locate_dataset  # noqa: E402
from autounet.training.splits import SPLITS_FILE  # noqa: E402


def foreground_dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Mean Dice over the reference's foreground labels (:func:`bench.quality.dice` each)."""
    labels = [v for v in np.unique(reference) if v != 0]
    return float(np.mean([dice(reference, prediction, label) for label in labels])) if labels else 1.0


def model_copy(configuration_folder: Path, fold: int, pad_to_patch: bool, where: Path) -> Path:
    """A copy of the configuration's ``fold`` whose plans ask for (or against) padding small images to the patch."""
    target = where / f"pad_{str(pad_to_patch).lower()}" / configuration_folder.name
    shutil.copytree(configuration_folder / f"fold_{fold}", target / f"fold_{fold}")
    plans_file = target / f"fold_{fold}" / "plans.json"
    plans = json.loads(plans_file.read_text())
    plans.setdefault("extra", {}).setdefault("inference", {})["pad_to_patch"] = pad_to_patch
    plans_file.write_text(json.dumps(plans, indent=1))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="the autounet data root the model was trained in")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--raw", type=Path, default=None,
                        help="the raw dataset folder [default: the root's raw/DATASET]")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    location = locate_dataset(args.dataset, DataRoot.under(args.root))
    splits = json.loads((location.preprocessed / SPLITS_FILE).read_text())
    cases = splits[args.fold]["val"]
    raw = args.raw or location.raw
    work = args.work or Path(tempfile.mkdtemp(prefix="autounet_tile_padding_"))
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    for case in cases:
        for image in raw.joinpath("imagesTr").glob(f"{case}_*"):
            (images / image.name).symlink_to(image.resolve())
    configuration = location.results / args.configuration
    rows, dice = [], {}
    for pad in (False, True):
        model = model_copy(configuration, args.fold, pad, work)
        out = work / f"out_pad_{str(pad).lower()}"
        measured = run_measured(autounet_cmd("predict", "-i", str(images), "-o", str(out), "-m", str(model),
                                             "-f", str(args.fold), "--no-tta"), cwd=REPO)
        if measured.returncode != 0:
            sys.exit(f"autounet predict failed:\n{measured.output[-2000:]}")
        dice[pad] = {}
        for case in cases:
            predicted = next(out.glob(f"{case}.*"))
            reference = next(raw.joinpath("labelsTr").glob(f"{case}.*"))
            dice[pad][case] = foreground_dice(read_label(reference)[0], read_label(predicted)[0])
        rows.append(["whole patch (zero-padded)" if pad else "tile rounded to the downsampling",
                     float(np.mean(list(dice[pad].values()))), measured.wall_s])
    changed = [c for c in cases if dice[True][c] != dice[False][c]]
    differences = np.array([dice[True][c] - dice[False][c] for c in changed])
    print_table(f"{args.dataset} {args.configuration} fold {args.fold}: {len(cases)} held-out cases, no TTA",
                ["small images predicted with", "mean foreground Dice", "wall s"], rows)
    if changed:
        print(f"\n{len(changed)} of {len(cases)} cases changed; Dice whole patch minus smaller tile over them: "
              f"mean {differences.mean():+.4f}, sd {differences.std(ddof=1) if len(changed) > 1 else 0:.4f}, "
              f"better in {(differences > 0).sum()}, worse in {(differences < 0).sum()}")
    else:
        print("\nno case changed (every image was at least the patch, or the tiles came out the same)")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
