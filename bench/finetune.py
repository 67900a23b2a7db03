"""Benchmark: fine-tuning from a model of other cases against training from scratch, with the same time budget.

    python bench/finetune.py                         # pretrain 10m on half A, then 5m on half B both ways, 1 seed
    python bench/finetune.py --seeds 1 2 3           # repeats (different seeds of the two half-B runs)

Hippocampus (../shared/data/Dataset004_Hippocampus, 260 cases) is split into two halves by case number (even, odd).
A model is trained on half A (``--pretrain`` budget, every case: ``--fold all``), with the configuration that
``autounet plan --budget FINETUNE`` chooses for A. Half B is planned with ``--pretrained-plans`` (the same network,
``<configuration>_from_Dataset701``), preprocessed, and fold 0 of B is trained with ``--budget FINETUNE`` twice:
from scratch and with ``--pretrained`` A's model, each in its own data root. Both are scored on B's fold-0
validation cases (mean Dice of the two labels per case, their mean over the cases), with the same seed per repeat.
A difference no larger than 0.03 (the spread of repeated 10-minute Hippocampus runs, docs/benchmarks.md) or than
the two standard deviations (with repeats) is called a tie.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA, autounet_cmd, print_table, run_measured  # noqa: E402
from bench.quality import score_validation, verdict  # noqa: E402

SOURCE = SHARED_DATA / "Dataset004_Hippocampus"
HALVES = {"A": "Dataset701_HippoA", "B": "Dataset702_HippoB"}
REPO = Path(__file__).resolve().parents[1]


def make_half(root: Path, name: str, parity: int) -> Path:
    """A raw dataset of the Hippocampus cases whose number has ``parity``, as symlinks."""
    raw = root / "raw" / name
    if (raw / "dataset.json").is_file():
        return raw
    for folder in ("imagesTr", "labelsTr"):
        (raw / folder).mkdir(parents=True, exist_ok=True)
    cases = sorted(p.name[:-len(".nii.gz")] for p in (SOURCE / "labelsTr").glob("*.nii.gz"))
    chosen = [c for c in cases if int(c.split("_")[-1]) % 2 == parity]
    for case in chosen:
        (raw / "imagesTr" / f"{case}_0000.nii.gz").symlink_to(SOURCE / "imagesTr" / f"{case}_0000.nii.gz")
        (raw / "labelsTr" / f"{case}.nii.gz").symlink_to(SOURCE / "labelsTr" / f"{case}.nii.gz")
    spec = json.loads((SOURCE / "dataset.json").read_text())
    spec["numTraining"] = len(chosen)
    (raw / "dataset.json").write_text(json.dumps(spec, indent=2))
    return raw


def autounet(root: Path, *args: str) -> str:
    env = {"AUTOUNET_HOME": str(root), "PYTHONPATH": str(REPO), "AUTOUNET_CACHE_DIR": str(root / "timing-cache")}
    measured = run_measured(autounet_cmd(*args), env=env, cwd=REPO)
    if measured.returncode != 0:
        sys.exit(f"autounet {' '.join(args)} failed:\n{measured.output[-3000:]}")
    return measured.output


def pretrain(work: Path, finetune_budget: str, pretrain_budget: str) -> Path:
    """Half A planned for the fine-tuning budget and trained on every case for ``pretrain_budget``; the
    configuration folder of the model."""
    root = work / "pretrain"
    make_half(root, HALVES["A"], 0)
    plans = root / "preprocessed" / HALVES["A"] / "plans.json"
    if not plans.is_file():
        autounet(root, "plan", HALVES["A"], "--budget", finetune_budget, "--device", "cpu")
    configuration = json.loads(plans.read_text())["time_budget"]["chosen"]
    model = root / "results" / HALVES["A"] / configuration
    if not (model / "fold_all" / "model_final.safetensors").is_file():
        autounet(root, "preprocess", HALVES["A"], "-c", configuration)
        autounet(root, "train", HALVES["A"], "-c", configuration, "--fold", "all", "--budget", pretrain_budget)
    return model


def train_b(work: Path, model: Path, budget: str, seed: int, pretrained: bool) -> tuple[list[float], str]:
    """Fold 0 of half B with ``budget``, from scratch or from ``model``; its validation Dice per case."""
    root = work / f"{'finetune' if pretrained else 'scratch'}_seed{seed}"
    make_half(root, HALVES["B"], 1)
    name = f"{model.name}_from_{HALVES['A'].split('_')[0]}"
    if not (root / "preprocessed" / HALVES["B"] / "plans.json").is_file():
        autounet(root, "plan", HALVES["B"], "-c", "2d", "--device", "cpu", "--pretrained-plans", str(model))
    autounet(root, "preprocess", HALVES["B"], "-c", name)  # every time: it redoes only cases whose raw files changed
    fold = root / "results" / HALVES["B"] / name / "fold_0"
    if fold.exists():
        shutil.rmtree(fold)
    args = ["train", HALVES["B"], "-c", name, "--fold", "0", "--budget", budget, "--seed", str(seed)]
    if pretrained:
        args += ["--pretrained", str(model)]
    output = autounet(root, *args)
    scores = score_validation(HALVES["B"], fold / "validation", root / "raw")
    return scores["Dice"], output.strip().splitlines()[-1][:200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/autounet_bench_finetune"))
    parser.add_argument("--pretrain", default="10m", help="budget of the model trained on half A")
    parser.add_argument("--budget", default="5m", help="budget of each half-B run (fine-tuned and from scratch)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[12345])
    args = parser.parse_args()
    if not (SOURCE / "dataset.json").is_file():
        sys.exit(f"{SOURCE} is missing; this benchmark needs the real Hippocampus data.")
    work = args.work.resolve()
    model = pretrain(work, args.budget, args.pretrain)
    print(f"model on half A: {model}", flush=True)
    means: dict[str, list[float]] = {"scratch": [], "fine-tuned": []}
    rows = []
    for seed in args.seeds:
        for label, pretrained in (("scratch", False), ("fine-tuned", True)):
            dice, _ = train_b(work, model, args.budget, seed, pretrained)
            means[label].append(float(np.mean(dice)))
            rows.append([label, seed, float(np.mean(dice)), len(dice)])
            print(f"{label}, seed {seed}: mean Dice {np.mean(dice):.4f} over {len(dice)} cases", flush=True)
    for label, values in means.items():
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        rows.append([f"{label} mean", "", float(np.mean(values)), f"sd {sd:.3f}" if len(values) > 1 else "1 run"])
    print_table(f"Hippocampus half B, fold 0, {args.budget} per run on this CPU; model pretrained {args.pretrain} on "
                f"half A ({model.name})", ["run", "seed", "mean Dice", "cases"], rows)
    winner = verdict("Dataset004", means["fine-tuned"], means["scratch"])
    print(f"\nverdict: {'fine-tuned better' if winner == 'autounet' else 'scratch better' if winner == 'nnU-Net' else 'tie'}"
          f" (difference {np.mean(means['fine-tuned']) - np.mean(means['scratch']):+.4f})")


if __name__ == "__main__":
    main()
