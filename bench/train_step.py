"""Seconds per training iteration on the CPU: autounet beside nnU-Net v2, same data, network shape, batch and patch.

Makes a synthetic Hippocampus-like dataset (../shared/bench/make_synthetic.py), lets nnU-Net plan and preprocess it
(3d_fullres: 4 stages 32-64-128-256, patch 40x56x40, batch 2 for 40 cases) and train BENCH_TRAIN_ITERS iterations
with nnUNetTrainer_CPUBench (which records data wait and step time per iteration); then autounet preprocesses the
same raw data with a plan of the same network shape and trains the same number of iterations through the trainer's
own parts (batch stream, train step), timing each. Prints per-iteration times (first iteration excluded), the share
spent waiting for data, and the achieved GFLOP/s of a step against a large fp32 matrix product on the same cores.

    python bench/train_step.py --iters 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED, link_dataset, nnunet_bin, nnunet_env, print_table, run_measured  # noqa: E402

DATASET = "Dataset950_BenchTrainHippo"


@dataclass
class StepTimes:
    """Per-iteration timings of one tool or variant, first (warm-up) iteration excluded."""

    name: str
    step_s: list[float]
    wait_s: list[float]
    threads: int
    data_workers: int

    @property
    def iteration_s(self) -> float:
        return statistics.mean(s + w for s, w in zip(self.step_s, self.wait_s))

    @property
    def wait_share(self) -> float:
        return sum(self.wait_s) / (sum(self.step_s) + sum(self.wait_s))


def make_raw(work: Path, cases: int) -> Path:
    raw = work / "raw" / DATASET
    if not (raw / "dataset.json").is_file():
        subprocess.run([sys.executable, str(SHARED / "bench" / "make_synthetic.py"), "--out", str(raw), "--kind",
                        "hippo", "--n", str(cases), "--n-test", "0", "--seed", "0"], check=True)
    return raw


def run_nnunet(work: Path, raw: Path, iters: int) -> tuple[StepTimes, dict]:
    env = nnunet_env(work / "nnunet")
    link_dataset(raw, Path(env["nnUNet_raw"]))
    plans_file = Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans.json"
    if not plans_file.is_file():
        done = run_measured([nnunet_bin("nnUNetv2_plan_and_preprocess"), "-d", DATASET.split("_")[0][7:], "-c",
                             "3d_fullres", "-np", "2"], env=env)
        if done.returncode != 0:
            sys.exit(f"nnU-Net planning failed:\n{done.output[-3000:]}")
    bench_env = {**env, "BENCH_TRAIN_ITERS": str(iters), "BENCH_VAL_ITERS": "1", "BENCH_SKIP_FINAL_VAL": "1"}
    done = run_measured([nnunet_bin("nnUNetv2_train"), DATASET.split("_")[0][7:], "3d_fullres", "0", "-device",
                         "cpu", "-tr", "nnUNetTrainer_CPUBench"], env=bench_env)
    if done.returncode != 0:
        sys.exit(f"nnU-Net training failed:\n{done.output[-3000:]}")
    timings_file = next((Path(env["nnUNet_results"]) / DATASET).rglob("bench_timings.json"))
    timings = json.loads(timings_file.read_text())
    summary = timings["summary"]
    times = StepTimes("nnU-Net v2.8.1", timings["train_step_s"][1:], timings["train_wait_s"][1:],
                      summary["torch_threads"], int(summary["n_proc_DA"] or 0))
    return times, json.loads(plans_file.read_text())["configurations"]["3d_fullres"]


def autounet_plans(raw: Path, nnunet_config: dict):
    """A plan with nnU-Net's network shape, patch and batch for the same data."""
    from autounet.fingerprint.model import ChannelStats
    from autounet.network.config import NetworkConfig
    from autounet.planning.plans import ConfigurationPlan, HardwareInfo, Plans

    arch = nnunet_config["architecture"]["arch_kwargs"]
    network = NetworkConfig(3, 1, 3, list(arch["features_per_stage"]), [list(k) for k in arch["kernel_sizes"]],
                            [list(s) for s in arch["strides"]], list(arch["n_conv_per_stage"]),
                            list(arch["n_conv_per_stage_decoder"]))
    plan = ConfigurationPlan("3d_fullres", "autounet_3d_fullres", False, list(nnunet_config["spacing"]),
                             list(nnunet_config["median_image_size_in_voxels"]), list(nnunet_config["patch_size"]),
                             int(nnunet_config["batch_size"]), network, ["zscore"], [False])
    return Plans(DATASET, HardwareInfo("cpu"), 8.0, {"3d_fullres": plan},
                 [ChannelStats(0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0)])


def run_autounet(work: Path, raw: Path, nnunet_config: dict, iters: int, name: str, workers: int,
                 fast_kernels: bool) -> StepTimes:
    import torch

    from autounet.hardware import cpu_cores
    from autounet.paths import DatasetLocation
    from autounet.planning.plans import save_plans
    from autounet.preprocessing.dataset import preprocess_dataset
    from autounet.training.batches import BatchRecipe
    from autounet.training.config import TrainingConfig
    from autounet.training.distributed import Ranks
    from autounet.training.setup import prepare_fold
    from autounet.training.steps import train_step
    from autounet.training.trainer import build_run
    from autounet.training.workers import BatchStream

    location = DatasetLocation(DATASET, raw, work / "autounet" / "preprocessed" / DATASET,
                               work / "autounet" / "results" / DATASET)
    if not (location.preprocessed / "autounet_3d_fullres").is_dir():
        save_plans(autounet_plans(raw, nnunet_config), location.preprocessed)
        preprocess_dataset(location, ["3d_fullres"], workers=2)
    torch.set_num_threads(cpu_cores())
    config = TrainingConfig(iterations_per_epoch=iters, epochs=1, val_iterations=0, device="cpu",
                            num_workers=workers, cpu_fast_kernels=fast_kernels)
    setup = prepare_fold(location, config)
    run = build_run(setup, config, Ranks(), torch.device("cpu"), None)
    recipe = BatchRecipe(setup.store_folder, setup.split.train, setup.split.val, list(setup.plan.patch_size),
                         setup.global_batch_size, config.oversample_foreground, True, config.seed)
    step_s, wait_s = [], []
    with BatchStream(recipe, 0, iters, 0, workers) as stream:
        for _ in range(iters):
            start = time.perf_counter()
            batch = next(stream)
            got = time.perf_counter()
            train_step(run.parts, batch)
            wait_s.append(got - start)
            step_s.append(time.perf_counter() - got)
    return StepTimes(name, step_s[1:], wait_s[1:], torch.get_num_threads(), workers)


def step_gflop(nnunet_config: dict, work: Path, raw: Path) -> float:
    """GFLOP of one training step (forward + backward) of the network at the planned batch and patch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from autounet.network import build_network

    plan = autounet_plans(raw, nnunet_config).configurations["3d_fullres"]
    net = build_network(plan.network)
    x = torch.randn(plan.batch_size, 1, *plan.patch_size)
    with FlopCounterMode(display=False) as counter:
        outputs = net(x)
        sum(o.float().mean() for o in outputs).backward()
    return counter.get_total_flops() / 1e9


def matmul_gflops(size: int = 4096, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of a size x size matrix product with torch on this process's threads."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=int(os.environ.get("BENCH_TRAIN_ITERS", 10)))
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--work", type=Path, default=None, help="working folder (kept; default: a temporary one)")
    parser.add_argument("--variants", default="default,plain_kernels,no_workers",
                        help="autounet variants: default (1 data worker, CPU fast kernels), plain_kernels (instance "
                             "norm, channels-first), no_workers, workers2")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    raw = make_raw(work, args.cases)
    nnunet, nnunet_config = run_nnunet(work, raw, args.iters)
    variants = {"default": ("autounet", 1, True),
                "plain_kernels": ("autounet without CPU fast kernels", 1, False),
                "no_workers": ("autounet, batches in the main process", 0, True),
                "workers2": ("autounet, 2 data workers", 2, True)}
    results = [nnunet] + [run_autounet(work, raw, nnunet_config, args.iters, *variants[v])
                          for v in args.variants.split(",")]
    gflop = step_gflop(nnunet_config, work, raw)
    peak = matmul_gflops()
    rows = []
    for r in results:
        step = statistics.median(r.step_s)
        rows.append([r.name, r.threads, r.data_workers, round(r.iteration_s, 2), round(statistics.median(r.step_s), 2),
                     f"{100 * r.wait_share:.1f}%", round(r.iteration_s / nnunet.iteration_s, 2),
                     round(gflop / step, 1), f"{100 * gflop / step / peak:.0f}%"])
    print_table(f"Training iteration on CPU, batch {nnunet_config['batch_size']}, patch "
                f"{'x'.join(map(str, nnunet_config['patch_size']))}, {args.iters} iterations (first excluded); "
                f"step = {gflop:.1f} GFLOP; fp32 matmul peak {peak:.1f} GFLOP/s",
                ["tool", "threads", "data workers", "s / iteration", "step s (median)", "data wait",
                 "ratio vs nnU-Net", "step GFLOP/s", "of matmul peak"], rows)
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
