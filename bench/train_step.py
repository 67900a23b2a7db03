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

# bench.common needs psutil, which nnU-Net's environment (where --compute-ab runs) lacks: imported where used.

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
        """Median seconds per iteration (data wait + step): robust to the load of a shared machine."""
        return statistics.median(s + w for s, w in zip(self.step_s, self.wait_s))

    @property
    def wait_share(self) -> float:
        return sum(self.wait_s) / (sum(self.step_s) + sum(self.wait_s))


def make_raw(work: Path, cases: int) -> Path:
    from bench.common import SHARED

    raw = work / "raw" / DATASET
    if not (raw / "dataset.json").is_file():
        subprocess.run([sys.executable, str(SHARED / "bench" / "make_synthetic.py"), "--out", str(raw), "--kind",
                        "hippo", "--n", str(cases), "--n-test", "0", "--seed", "0"], check=True)
    return raw


def run_nnunet(work: Path, raw: Path, iters: int) -> tuple[StepTimes, dict]:
    from bench.common import link_dataset, nnunet_bin, nnunet_env, run_measured

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


def compute_ab(rounds: int, nnunet_config_file: Path) -> None:
    """Run in nnU-Net's Python: the train step alone (no data loading) of nnU-Net's network and loss and of
    autounet's, alternating step by step so that both see the same machine load. Prints one JSON line."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from autounet.network import build_network
    from autounet.network.cpu_speed import channels_last_format, speed_up_for_cpu
    from autounet.network.loss import DeepSupervisionLoss, LossSettings, downsample_labels

    config = json.loads(nnunet_config_file.read_text())
    plan = autounet_plans(Path("."), config).configurations["3d_fullres"]
    net_cfg = plan.network
    theirs = PlainConvUNet(1, net_cfg.num_stages, net_cfg.features_per_stage, torch.nn.Conv3d, net_cfg.kernel_sizes,
                           net_cfg.strides, net_cfg.n_conv_per_stage, 3, net_cfg.n_conv_per_stage_decoder,
                           conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
                           norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
                           nonlin_kwargs={"inplace": True}, deep_supervision=True)
    n_out = net_cfg.num_stages - 1
    weights = [0.5 ** i for i in range(n_out)]
    weights[-1] = 0.0
    weights = [w / sum(weights) for w in weights]
    their_loss = DeepSupervisionWrapper(DC_and_CE_loss(
        {"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1, weight_dice=1,
        ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss), weights)
    torch.manual_seed(0)
    images = torch.randn(plan.batch_size, 1, *plan.patch_size)
    labels = torch.randint(0, 3, (plan.batch_size, 1, *plan.patch_size))
    targets = downsample_labels(labels, net_cfg.output_scales())
    ours_plain, ours_fast = build_network(net_cfg), speed_up_for_cpu(build_network(net_cfg))
    our_loss = DeepSupervisionLoss(LossSettings(3), n_out)
    variants = {"nnU-Net": (theirs, their_loss, images, [t.float() for t in targets]),
                "autounet": (ours_fast, our_loss, images.contiguous(memory_format=channels_last_format(5)), targets),
                "autounet without CPU fast kernels": (ours_plain, our_loss, images, targets)}
    optimizers = {k: torch.optim.SGD(v[0].parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
                  for k, v in variants.items()}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds + 1):
        for name, (net, loss_fn, x, t) in variants.items():
            start = time.perf_counter()
            loss = loss_fn(net(x), t)
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            optimizers[name].step()
            times[name].append(time.perf_counter() - start)
    print(json.dumps({k: v[1:] for k, v in times.items()}))


def run_compute_ab(work: Path, rounds: int, nnunet_config: dict) -> dict[str, list[float]]:
    from bench.common import NNUNET_VENV, REPO

    config_file = work / "nnunet_3d_fullres.json"
    config_file.write_text(json.dumps(nnunet_config))
    done = subprocess.run([str(NNUNET_VENV / "bin" / "python"), str(Path(__file__).resolve()), "--compute-ab",
                           str(rounds), "--nnunet-config", str(config_file)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        sys.exit(f"interleaved compute comparison failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=int(os.environ.get("BENCH_TRAIN_ITERS", 10)))
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--work", type=Path, default=None, help="working folder (kept; default: a temporary one)")
    parser.add_argument("--variants", default="default,plain_kernels,no_workers",
                        help="autounet variants: default (1 data worker, CPU fast kernels), plain_kernels (instance "
                             "norm, channels-first), no_workers, workers2")
    parser.add_argument("--ab-rounds", type=int, default=6, help="rounds of the interleaved compute-only comparison")
    parser.add_argument("--compute-ab", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--nnunet-config", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compute_ab is not None:
        compute_ab(args.compute_ab, args.nnunet_config)
        return
    from bench.common import print_table

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
                ["tool", "threads", "data workers", "s / iteration (median)", "step s (median)", "data wait",
                 "ratio vs nnU-Net", "step GFLOP/s", "of matmul peak"], rows)
    ab = run_compute_ab(work, args.ab_rounds, nnunet_config)
    reference = statistics.median(ab["nnU-Net"])
    print_table(f"Train step alone (forward, loss, backward, clip, SGD; no data), alternating step by step in one "
                f"process (nnU-Net's Python, same torch), {args.ab_rounds} rounds after one warm-up",
                ["network + loss", "step s (median)", "ratio vs nnU-Net", "GFLOP/s", "of matmul peak"],
                [[name, round(statistics.median(v), 2), round(statistics.median(v) / reference, 2),
                  round(gflop / statistics.median(v), 1), f"{100 * gflop / statistics.median(v) / peak:.0f}%"]
                 for name, v in ab.items()])
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
