"""Benchmark: a model trained by nnU-Net itself, predicted by nnU-Net and by autounet after ``install-model
--from-nnunet``; label maps compared per case.

nnU-Net v2 plans and preprocesses the dataset, its network is optionally narrowed (``--features``: the first stage's
width, doubling per stage up to 8x, so that several folds train in reasonable time on a CPU), and each fold is
trained with nnU-Net's recipe for ``--iterations`` iterations by the shared benchmark trainer (its poly learning
rate annealed over them), with nnU-Net's own final validation (its Dice on the fold's held-out cases is printed:
the model has to be a real one, Dice > 0.7). The folds are then installed into autounet with the code of
``autounet install-model --from-nnunet`` and both tools segment the same images with the ensemble of every fold,
with and without mirroring TTA (``bench/nnunet_equivalence.py``'s comparison: Dice per case between the tools, and
each tool's Dice against the reference labels).

Usage:
    python bench/nnunet_trained.py --dataset Dataset004_Hippocampus --configuration 3d_fullres --folds 0 \\
        --iterations 2000 --batch 2 --held-out --cases 20        (about 50 minutes on 2 CPU cores)
    python bench/nnunet_trained.py ... --folds 0 1 2 3 4 --iterations 1000   (same --work: trained folds are kept)
    python bench/nnunet_trained.py --dataset Dataset001_ISBI2012EM --configuration 2d --folds 0 --iterations 300
    python bench/nnunet_trained.py --results RESULTS/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres
    python bench/nnunet_trained.py --dataset Dataset001_ISBI2012EM --folds 0 --held-out \\
        --results WORK/nnunet_batch2/results/Dataset001_ISBI2012EM/nnUNetTrainer_CPUBench__nnUNetPlans__2d
        (a fold bench/quality.py trained: its --work folder keeps nnU-Net's results)
    python bench/nnunet_trained.py ... --spacing-scale 0.75   # the images' spacing scaled: both tools resample
    python bench/nnunet_trained.py --dataset Dataset001_ISBI2012EM --held-out --members RUN1/.../fold_0 RUN2/.../fold_0
        (separately trained folds of one plan, e.g. fold 0 of several bench/quality.py runs, as one ensemble)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED, SHARED_DATA, link_dataset, nnunet_bin, nnunet_env, run_measured  # noqa: E402
from bench.nnunet_equivalence import compare  # noqa: E402

TRAINER = "nnUNetTrainer_CPUBench"


def _must(measured, what: str):
    if measured.returncode != 0:
        sys.exit(f"{what} failed (exit {measured.returncode}):\n{measured.output[-4000:]}")
    return measured


def prepare(env: dict, dataset: str, configuration: str, features: int | None, batch: int | None) -> None:
    """nnU-Net's plans and preprocessed data for ``configuration``, its network narrowed to ``features`` and its
    batch set to ``batch`` (when given)."""
    identifier = str(int(dataset[7:10]))
    plans_file = Path(env["nnUNet_preprocessed"]) / dataset / "nnUNetPlans.json"
    if not plans_file.is_file():
        _must(run_measured([nnunet_bin("nnUNetv2_plan_and_preprocess"), "-d", identifier, "-c", configuration,
                            "-np", "2"], env=env), "nnU-Net plan_and_preprocess")
    plans = json.loads(plans_file.read_text())
    config = plans["configurations"][configuration]
    if features:
        arch = config["architecture"]["arch_kwargs"]
        arch["features_per_stage"] = [min(features * 2 ** s, 8 * features)
                                      for s in range(len(arch["features_per_stage"]))]
    if batch:
        config["batch_size"] = batch
    plans_file.write_text(json.dumps(plans, indent=2))


def train_fold(env: dict, dataset: str, configuration: str, fold: int, iterations: int) -> Path:
    """Fold ``fold`` trained by nnU-Net for ``iterations`` (skipped when its final checkpoint exists); the fold
    folder, with nnU-Net's validation of its held-out cases."""
    identifier = str(int(dataset[7:10]))
    folder = Path(env["nnUNet_results"]) / dataset / f"{TRAINER}__nnUNetPlans__{configuration}" / f"fold_{fold}"
    if not (folder / "checkpoint_final.pth").is_file():
        python = Path(nnunet_bin("nnUNetv2_train")).parent / "python"
        located = run_measured([str(python), "-c", "import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))"])
        package = Path(located.output.strip().splitlines()[-1])
        # every time: an older copy of the trainer (one that never annealed its learning rate) may be there
        shutil.copy(SHARED / "bench" / f"{TRAINER}.py", package / "training" / "nnUNetTrainer" / f"{TRAINER}.py")
        done = _must(run_measured([nnunet_bin("nnUNetv2_train"), identifier, configuration, str(fold), "-tr", TRAINER,
                                   "-device", "cpu"], env={**env, "BENCH_TRAIN_ITERS": str(iterations),
                                                           "BENCH_VAL_ITERS": "1"}),
                     f"nnU-Net training of fold {fold}")
        print(f"fold {fold}: trained {iterations} iterations in {done.wall_s:.0f} s", flush=True)
    return folder


def link_members(members: list[Path], work: Path) -> Path:
    """One nnU-Net results folder under ``work`` whose folds 0..n-1 are links to ``members`` (fold folders trained
    separately with one and the same plan), so that both tools ensemble them as the folds of one model."""
    for member in members:
        if not (member / "checkpoint_final.pth").is_file() or not (member.resolve().parent / "plans.json").is_file():
            sys.exit(f"--members: {member} is not an nnU-Net fold folder (fold_K/checkpoint_final.pth beside "
                     "its model's plans.json)")
    plans = [(m.resolve().parent / "plans.json").read_text() for m in members]
    if any(p != plans[0] for p in plans[1:]):
        sys.exit("--members must come from one nnU-Net plan: their plans.json differ")
    source = members[0].resolve().parent
    results = work / "members" / source.parent.name / source.name
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        shutil.copy(source / name, results / name)
    for index, member in enumerate(members):
        (results / f"fold_{index}").symlink_to(member.resolve(), target_is_directory=True)
    return results


def validation_dice(fold_folder: Path) -> float:
    """nnU-Net's own mean foreground Dice over the fold's held-out cases (its validation/summary.json)."""
    summary = json.loads((fold_folder / "validation" / "summary.json").read_text())
    return float(summary["foreground_mean"]["Dice"])


def trained_iterations(folders: list[Path]) -> str:
    """The iterations the benchmark trainer ran for each fold (their bench_timings.json), as text for a title."""
    timings = [folder / "bench_timings.json" for folder in folders]
    if not all(path.is_file() for path in timings):
        return "its own schedule"
    counts = [len(json.loads(path.read_text())["train_step_s"]) for path in timings]
    return "/".join(map(str, counts)) + " iterations"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="Dataset004_Hippocampus")
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--iterations", type=int, default=500, help="training iterations per fold")
    parser.add_argument("--features", type=int, default=None, help="first-stage width (default: nnU-Net's plan)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: nnU-Net's plan)")
    parser.add_argument("--cases", type=int, default=10, help="images (from imagesTr) both tools segment")
    parser.add_argument("--held-out", action="store_true",
                        help="segment the first fold's held-out cases (the names in its validation folder; at most "
                             "--cases) rather than the first images of imagesTr")
    parser.add_argument("--tta", choices=("both", "off", "on"), default="both")
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--results", type=Path, default=None,
                        help="an nnU-Net results folder trained elsewhere (e.g. nnUNetv2_train on a GPU: "
                             "DATASET/TRAINER__PLANS__CONFIG); nothing is trained here")
    parser.add_argument("--members", type=Path, nargs="+", default=None,
                        help="fold folders trained separately with one plan (e.g. fold_0 of several runs), ensembled "
                             "as folds 0..n-1; --held-out takes the first one's held-out cases, so give folds that "
                             "share them when the scores against the reference labels should mean anything")
    parser.add_argument("--spacing-scale", type=float, default=None,
                        help="scale the images' spacing by this, so that both tools resample (e.g. 0.75)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/autounet_bench_nnunet_trained"))
    args = parser.parse_args()
    work = args.work.resolve()
    if args.members:
        args.results = link_members(args.members, work)
        args.folds = list(range(len(args.members)))
    if args.results:
        results = args.results.resolve()
        env = {"nnUNet_raw": str(work / "raw"), "nnUNet_preprocessed": str(work / "preprocessed"),
               "nnUNet_results": str(results.parent.parent)}
        folders = [results / f"fold_{fold}" for fold in args.folds]
    else:
        env = nnunet_env(work / "nnunet")
        link_dataset(args.data / args.dataset, work / "nnunet" / "raw")
        prepare(env, args.dataset, args.configuration, args.features, args.batch)
        folders = [train_fold(env, args.dataset, args.configuration, fold, args.iterations) for fold in args.folds]
    scores = [validation_dice(folder) for folder in folders]
    for fold, score in zip(args.folds, scores):
        print(f"fold {fold}: nnU-Net's validation Dice {score:.4f} (its held-out cases)", flush=True)
    from autounet.inference.nnunet_import import import_nnunet_model

    installed = import_nnunet_model([folders[0].parent], work / "autounet" / "results",
                                    folds=[str(f) for f in args.folds], overwrite=True)[0].folder
    images = args.data / args.dataset / "imagesTr"
    cases: int | list[str] = args.cases
    if args.held_out:
        ending = json.loads((folders[0].parent / "dataset.json").read_text())["file_ending"]
        cases = sorted(p.name[: -len(ending)] for p in (folders[0] / "validation").glob(f"*{ending}"))[:args.cases]
    compare(folders[0].parent, installed, env, images, cases, args.tta, work,
            f"trained by nnU-Net, {trained_iterations(folders)}, validation Dice "
            f"{min(scores):.3f}-{max(scores):.3f}", labels_folder=args.data / args.dataset / "labelsTr",
            folds=[str(f) for f in args.folds], spacing_scale=args.spacing_scale)


if __name__ == "__main__":
    main()
