"""The GPU check: in one run of under 10 minutes on one GPU, whether autounet's plans fit, how fast it trains and
predicts there, beside nnU-Net v2 on the same plan. See docs/gpu-check.md.

Datasets: Hippocampus (3d_fullres and 2d), ISBI 2012 (2d), PH2 (2d) from --data, and a synthetic CT set made with
../shared/bench/make_synthetic.py --kind ct (3d_fullres). Everything autounet does goes through its CLI
(``python -m autounet ...``); nnU-Net through its own entry points, in the Python given by --nnunet-python (default:
this one when it imports nnunetv2, else $NNUNET_VENV).

Phases, in this order over all datasets, so that a deadline cuts the least important work:

1. memory: ``autounet plan --verify`` for the detected GPU and for 8, 24 and 40 GB: estimated and measured peak
   against each budget (goal 85-100 %, never out of memory);
2. training: ``autounet train`` for 2 epochs of --iterations iterations with the default workers, with CPU and (when
   ``train --help`` offers ``--augment-on``) GPU augmentation; iterations per second and data-wait share of the second
   epoch (log.csv), GPU busy share and peak GPU memory sampled with nvidia-smi during that epoch;
3. nnU-Net's trainer (nnUNetTrainer_CPUBench, fixed iterations) on the same plan (patch, batch, network copied into
   its nnUNetPlans.json as configuration ``autounet_<config>``), same measurements;
4. prediction of --cases cases with mirroring TTA by both tools, in one call each: seconds per case (between the
   first and the last segmentation written), start-up (time to the first one minus one case), peak GPU memory.

Each stage is recorded (ok, failed with the end of its output, or skipped with the reason) and the run goes on; at
the deadline (--deadline-s, default 540 s) running commands are stopped and what was measured is written:
``gpu_check.json`` and ``gpu_check.md`` in --out, rewritten after every stage.

``--smoke`` rehearses all of it on the CPU in about a minute: --device cpu, 2 iterations, 2 cases, a tiny synthetic
Hippocampus-like set instead of the real data, the 8 GB budget only and plan --verify skipped (it needs CUDA).

    python bench/gpu_check.py --out /tmp/gpu_check
    python bench/gpu_check.py --smoke --out /tmp/gpu_smoke
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CARRIED = REPO / ".whl"  # what bench/fetch_gpu_wheels.sh gathers for a bare GPU machine
TRAINER = "nnUNetTrainer_CPUBench"
# Seconds one command of a stage may take, so that one hung command does not eat the whole run.
LIMITS = {"plan": 150, "preprocess": 200, "train": 200, "predict": 120}


@dataclass
class DatasetSpec:
    """One dataset of the check: its folder name, the configurations trained, and where its raw data comes from."""

    name: str
    configurations: list[str]
    source: Path | None = None  # a raw dataset folder; None: made by make_synthetic.py
    synthetic_kind: str = ""
    synthetic_cases: int = 0

    @property
    def number(self) -> str:
        return str(int(self.name[len("Dataset"):len("Dataset") + 3]))


@dataclass
class Check:
    """The run's settings and what it has measured so far."""

    out: Path
    work: Path
    device: str
    smoke: bool
    iterations: int
    cases: int
    budgets: list[str]
    deadline: float
    nnunet_python: str | None
    augment_modes: list[str]
    results: dict = field(default_factory=dict)
    stages: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.monotonic()


class DeadlineReached(Exception):
    """The global deadline came before a stage could start or finish."""


class StageFailed(Exception):
    """A command of a stage failed; the message holds its exit code and the end of its output."""


# --------------------------------------------------------------------------- commands and sampling

class GpuSampler:
    """Samples nvidia-smi's utilization.gpu and memory.used every 100 ms while a command runs.

    ``window`` is polled with each sample; the busy share is the mean utilisation of the samples taken while it
    returned True (the measured epoch), or of all samples when it never did. Peak memory is the highest
    memory.used above the level before the command started. Without nvidia-smi (the CPU) both stay None.
    """

    def __init__(self, window=None):
        self.window = window or (lambda: True)
        self.samples: list[tuple[float, float, bool]] = []
        self.baseline_mib: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = shutil.which("nvidia-smi") is not None

    def _query(self) -> tuple[float, float] | None:
        try:
            done = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                   "--format=csv,noheader,nounits", "-i", "0"], capture_output=True, text=True,
                                  timeout=5)
            util, used = (float(v) for v in done.stdout.strip().splitlines()[0].split(","))
            return util, used
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return None

    def __enter__(self) -> "GpuSampler":
        if self.available:
            first = self._query()
            self.baseline_mib = first[1] if first else None
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self._query()
            if sample:
                try:
                    inside = bool(self.window())
                except OSError:
                    inside = False
                self.samples.append((sample[0], sample[1], inside))
            self._stop.wait(0.1)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def busy_share(self) -> float | None:
        chosen = [s[0] for s in self.samples if s[2]] or [s[0] for s in self.samples]
        return round(sum(chosen) / len(chosen) / 100, 3) if chosen else None

    def peak_gb(self) -> float | None:
        if not self.samples or self.baseline_mib is None:
            return None
        return round((max(s[1] for s in self.samples) - self.baseline_mib) / 1024, 3)


def run_command(check: Check, cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None,
                limit_s: float | None = None) -> float:
    """Run ``cmd`` (output to ``log``) in its own process group, stopped at the deadline; its wall seconds.

    Raises StageFailed on a non-zero exit, DeadlineReached when the deadline stopped it."""
    if limit_s is not None and check.smoke:
        limit_s *= 3  # a loaded 2-core machine: nnU-Net took over 120 s to predict 2 tiny 2d cases there
    budget = check.left() if limit_s is None else min(limit_s, check.left())
    if budget <= 1:
        raise DeadlineReached("no time left before the deadline")
    stopped_by = "deadline" if limit_s is None or check.left() <= limit_s else "its time limit"
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    start = time.perf_counter()
    with open(log, "w") as handle:
        handle.write("$ " + " ".join(cmd) + "\n")
        handle.flush()
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=full_env, cwd=cwd or REPO,
                                start_new_session=True)
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if stopped_by == "deadline":
                raise DeadlineReached(f"stopped after {budget:.0f} s; log {log}") from None
            raise StageFailed(f"stopped after its limit of {budget:.0f} s; log {log}") from None
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise StageFailed(f"exit {proc.returncode}: ...{tail}")
    return time.perf_counter() - start


def autounet(*args: str) -> list[str]:
    return [sys.executable, "-m", "autounet", *args]


def nnunet(check: Check, entry: str, *args: str) -> list[str]:
    """An nnU-Net console entry point run as ``python -c``, so that it needs no installed scripts."""
    module, function = {"plan_and_preprocess": ("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints",
                                                "plan_and_preprocess_entry"),
                        "train": ("nnunetv2.run.run_training", "run_training_entry"),
                        "predict": ("nnunetv2.inference.predict_from_raw_data", "predict_entry_point")}[entry]
    code = f"import sys; sys.argv[0] = 'nnUNetv2_{entry}'; from {module} import {function} as f; sys.exit(f())"
    return [check.nnunet_python, "-c", code, *args]


# --------------------------------------------------------------------------- stage bookkeeping

def stage(check: Check, name: str, function, *args) -> object:
    """Run one stage; record its outcome and seconds; never raise (the next stage goes on)."""
    record = {"stage": name, "status": "ok", "seconds": 0.0, "detail": ""}
    start = time.perf_counter()
    value = None
    if check.left() <= 5:
        record.update(status="skipped", detail="deadline reached before it started")
    else:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ({check.left():.0f} s left)", flush=True)
        try:
            value = function(check, *args)
        except DeadlineReached as error:
            record.update(status="skipped", detail=f"deadline: {error}")
        except StageFailed as error:
            record.update(status="failed", detail=str(error))
        except Exception as error:  # noqa: BLE001 -- one broken stage must not stop the others
            record.update(status="failed", detail=f"{type(error).__name__}: {error}\n"
                                                  f"{traceback.format_exc()[-1500:]}")
    record["seconds"] = round(time.perf_counter() - start, 1)
    if record["status"] != "ok":
        print(f"    {record['status']}: {record['detail'][-600:]}", flush=True)
    check.stages.append(record)
    write_outputs(check)
    return value


def skip(check: Check, name: str, why: str) -> None:
    check.stages.append({"stage": name, "status": "skipped", "seconds": 0.0, "detail": why})
    print(f"[{time.strftime('%H:%M:%S')}] {name}: skipped ({why})", flush=True)


def slot(check: Check, *keys: str) -> dict:
    """The nested results dict at ``keys`` (made on first use)."""
    node = check.results
    for key in keys:
        node = node.setdefault(key, {})
    return node


# --------------------------------------------------------------------------- data

def raw_root(check: Check, tool: str) -> Path:
    return check.work / tool / "raw"


def prepare_raw(check: Check, spec: DatasetSpec) -> dict:
    """The raw dataset under both tools' raw folders (a symlink; the synthetic set is made once)."""
    source = spec.source
    if source is None:
        source = check.work / "synthetic" / spec.name
        if not (source / "dataset.json").is_file():
            maker = SHARED / "bench" / "make_synthetic.py"
            if not maker.is_file():
                raise StageFailed(f"{maker} is missing, so the synthetic {spec.synthetic_kind} set cannot be made")
            run_command(check, [sys.executable, str(maker), "--out", str(source), "--kind", spec.synthetic_kind,
                                "--n", str(spec.synthetic_cases), "--n-test", "0", "--seed", "0"],
                        check.work / "logs" / f"{spec.name}_make.log")
    for tool in ("autounet", "nnunet"):
        link = raw_root(check, tool) / spec.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source.resolve(), target_is_directory=True)
    cases = sorted(p.name for p in (source / "imagesTr").iterdir())
    return {"source": str(source), "training_files": len(cases)}


def test_inputs(check: Check, spec: DatasetSpec) -> Path:
    """A folder of the last ``cases`` training cases' images (the models trained on them; only speed counts)."""
    source = (raw_root(check, "autounet") / spec.name).resolve()
    ending = json.loads((source / "dataset.json").read_text())["file_ending"]
    ids = sorted(p.name[: -len(ending)] for p in (source / "labelsTr").iterdir() if p.name.endswith(ending))
    folder = check.work / "test_inputs" / spec.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for case in ids[-check.cases:]:
        for image in (source / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}"):
            (folder / image.name).symlink_to(image)
    return folder


# --------------------------------------------------------------------------- phase 1: plans and memory

def plans_file(check: Check, spec: DatasetSpec) -> Path:
    return check.work / "autounet" / "preprocessed" / spec.name / "plans.json"


def plan_budget(check: Check, spec: DatasetSpec, budget: str) -> dict:
    """``autounet plan`` at one memory budget (``detected``: the GPU found), with --verify on CUDA."""
    args = ["plan", spec.name, "--root", str(check.work / "autounet"), "--device", check.device]
    for configuration in spec.configurations:
        args += ["-c", configuration]
    if budget != "detected":
        args += ["--gpu-memory", budget]
    verify = check.device == "cuda"
    if verify:
        args.append("--verify")
    seconds = run_command(check, autounet(*args), check.work / "logs" / f"{spec.name}_plan_{budget}.log",
                          limit_s=LIMITS["plan"])
    plans = json.loads(plans_file(check, spec).read_text())
    shutil.copy(plans_file(check, spec), check.work / "logs" / f"{spec.name}_plans_{budget}.json")
    rows = {}
    for configuration in spec.configurations:
        plan = plans["configurations"][configuration]
        budget_gb = plans["memory_budget_gb"]
        estimated, measured = plan.get("estimated_memory_gb"), plan.get("measured_memory_gb")
        rows[configuration] = {
            "budget_gb": budget_gb, "estimated_gb": estimated, "measured_gb": measured,
            "estimated_share": round(estimated / budget_gb, 3) if estimated else None,
            "measured_share": round(measured / budget_gb, 3) if measured else None,
            "patch_size": plan["patch_size"], "batch_size": plan["batch_size"],
            "features": plan["network"]["features_per_stage"],
            "verify": "measured" if verify else "skipped: plan --verify needs CUDA",
            "plan_seconds": round(seconds, 1)}
        slot(check, "memory", spec.name, configuration)[budget] = rows[configuration]
    slot(check, "hardware")[spec.name] = plans.get("hardware")
    return rows


# --------------------------------------------------------------------------- phase 2: autounet training

def preprocess(check: Check, spec: DatasetSpec) -> float:
    args = ["preprocess", spec.name, "--root", str(check.work / "autounet")]
    for configuration in spec.configurations:
        args += ["-c", configuration]
    return run_command(check, autounet(*args), check.work / "logs" / f"{spec.name}_preprocess.log",
                       limit_s=LIMITS["preprocess"])


def fold_folder(check: Check, spec: DatasetSpec, configuration: str) -> Path:
    return check.work / "autounet" / "results" / spec.name / configuration / "fold_all"


def model_folder(check: Check, spec: DatasetSpec, configuration: str, augment: str) -> Path:
    return check.work / "models" / f"{spec.name}_{configuration}_{augment}" / "fold_all"


def train_autounet(check: Check, spec: DatasetSpec, configuration: str, augment: str) -> dict:
    """2 epochs of ``iterations`` on every case (``--fold all``: no final validation); the second epoch counts."""
    fold = fold_folder(check, spec, configuration)
    if fold.exists():
        shutil.rmtree(fold)
    args = ["train", spec.name, "-c", configuration, "--fold", "all", "--epochs", "2", "--iterations-per-epoch",
            str(check.iterations), "--val-iterations", "0", "--device", check.device,
            "--root", str(check.work / "autounet")]
    if augment != "default":
        args += ["--augment-on", augment]
    log_csv = fold / "log.csv"

    def in_second_epoch() -> bool:  # log.csv appears after epoch 1 and gains a row after epoch 2
        try:
            return len(log_csv.read_text().splitlines()) == 2
        except OSError:
            return False

    with GpuSampler(in_second_epoch) as sampler:
        wall = run_command(check, autounet(*args), check.work / "logs" /
                           f"{spec.name}_{configuration}_train_{augment}.log", limit_s=LIMITS["train"])
    with open(log_csv) as handle:
        rows = list(csv.DictReader(handle))
    last = rows[-1]
    seconds = float(last["seconds"])
    plan = json.loads((fold / "plans.json").read_text())["configurations"][configuration]
    result = {"iterations_per_s": round(check.iterations / seconds, 3), "seconds_per_iteration":
              round(seconds / check.iterations, 4), "data_wait_share": float(last["data_wait_share"]),
              "gpu_busy_share": sampler.busy_share(), "peak_gpu_gb": sampler.peak_gb(),
              "batch_size": plan["batch_size"], "patch_size": plan["patch_size"], "command_s": round(wall, 1),
              "epochs_logged": len(rows)}
    target = model_folder(check, spec, configuration, augment)
    if target.parent.exists():
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    shutil.move(str(fold), str(target))
    slot(check, "training", spec.name, configuration)[f"autounet ({augment_label(augment)})"] = result
    return result


def augment_label(augment: str) -> str:
    return {"default": "CPU augmentation", "cpu": "CPU augmentation", "gpu": "GPU augmentation"}[augment]


def augmentation_modes() -> tuple[list[str], str | None]:
    """``gpu`` and ``cpu`` when ``autounet train --help`` offers --augment-on; else the default (CPU) path alone."""
    done = subprocess.run(autounet("train", "--help"), capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200"})
    if "--augment-on" in done.stdout:
        return ["gpu", "cpu"], None
    return ["default"], "GPU augmentation: not built yet (autounet train --help offers no --augment-on)"


# --------------------------------------------------------------------------- phase 3: nnU-Net on the same plan

def nnunet_env(check: Check) -> dict:
    base = check.work / "nnunet"
    env = {"nnUNet_raw": str(base / "raw"), "nnUNet_preprocessed": str(base / "preprocessed"),
           "nnUNet_results": str(base / "results")}
    for value in env.values():
        Path(value).mkdir(parents=True, exist_ok=True)
    return env


def install_bench_trainer(check: Check) -> Path:
    """Copy nnUNetTrainer_CPUBench into nnU-Net's trainer package (where nnU-Net's trainer lookup finds it)."""
    source = next((p for p in (CARRIED / "nnunet" / f"{TRAINER}.py", SHARED / "bench" / f"{TRAINER}.py")
                   if p.is_file()), None)
    if source is None:
        raise StageFailed(f"{TRAINER}.py is in neither .whl/nnunet nor ../shared/bench")
    done = subprocess.run([check.nnunet_python, "-c", "import nnunetv2, os; print(os.path.join("
                           "nnunetv2.__path__[0], 'training', 'nnUNetTrainer'))"], capture_output=True, text=True,
                          check=True)
    destination = Path(done.stdout.strip().splitlines()[-1]) / f"{TRAINER}.py"
    if not destination.is_file() or destination.read_bytes() != source.read_bytes():
        shutil.copy(source, destination)
    return destination


def nnunet_preprocess(check: Check, spec: DatasetSpec) -> float:
    args = ["-d", spec.number, "-np", str(max(1, min(8, os.cpu_count() or 1)))]
    args += ["-c", *spec.configurations]
    return run_command(check, nnunet(check, "plan_and_preprocess", *args),
                       check.work / "logs" / f"{spec.name}_nnunet_plan_and_preprocess.log", env=nnunet_env(check),
                       limit_s=LIMITS["preprocess"])


def nnunet_plans_path(check: Check, spec: DatasetSpec) -> Path:
    return check.work / "nnunet" / "preprocessed" / spec.name / "nnUNetPlans.json"


def add_autounet_plan_to_nnunet(check: Check, spec: DatasetSpec, configuration: str) -> str:
    """Copy autounet's patch, batch and network (the plan trained in phase 2) into nnU-Net's plans as
    ``autounet_<configuration>``, on nnU-Net's own preprocessed data of that configuration."""
    ours = json.loads((model_folder(check, spec, configuration, check.augment_modes[-1]) / "plans.json")
                      .read_text())["configurations"][configuration]
    path = nnunet_plans_path(check, spec)
    plans = json.loads(path.read_text())
    theirs = json.loads(json.dumps(plans["configurations"][configuration]))
    network = ours["network"]
    arch = theirs["architecture"]["arch_kwargs"]
    arch.update(n_stages=len(network["features_per_stage"]), features_per_stage=network["features_per_stage"],
                kernel_sizes=network["kernel_sizes"], strides=network["strides"],
                n_conv_per_stage=network["n_conv_per_stage"],
                n_conv_per_stage_decoder=network["n_conv_per_stage_decoder"])
    theirs.update(patch_size=ours["patch_size"], batch_size=ours["batch_size"])
    theirs.pop("inherits_from", None)
    name = f"autounet_{configuration}"
    plans["configurations"][name] = theirs
    path.write_text(json.dumps(plans, indent=2))
    return name


def nnunet_device(check: Check) -> str:
    return "cuda" if check.device == "cuda" else "cpu"


def train_nnunet(check: Check, spec: DatasetSpec, configuration: str) -> dict:
    name = add_autounet_plan_to_nnunet(check, spec, configuration)
    # nnUNet_compile=f: no torch.compile, as autounet trains by default (and its compile minutes do not fit the run)
    env = {**nnunet_env(check), "BENCH_TRAIN_ITERS": str(2 * check.iterations), "BENCH_VAL_ITERS": "1",
           "BENCH_SKIP_FINAL_VAL": "1", "nnUNet_compile": "f"}
    output = check.work / "nnunet" / "results" / spec.name / f"{TRAINER}__nnUNetPlans__{name}" / "fold_all"
    if output.exists():
        shutil.rmtree(output)
    # the measured window: from the end of the first half of the iterations to the last, as for autounet
    half, last = check.iterations, 2 * check.iterations - 1

    def in_second_half() -> bool:
        logs = sorted(output.glob("training_log_*.txt")) if output.is_dir() else []
        if not logs:
            return False
        text = logs[-1].read_text(errors="replace")
        return f"bench iter {half}:" in text and f"bench iter {last}:" not in text

    with GpuSampler(in_second_half) as sampler:
        wall = run_command(check, nnunet(check, "train", spec.number, name, "all", "-tr", TRAINER, "-device",
                                         nnunet_device(check)),
                           check.work / "logs" / f"{spec.name}_{configuration}_nnunet_train.log", env=env,
                           limit_s=LIMITS["train"])
    timings = json.loads((output / "bench_timings.json").read_text())
    steps, waits = timings["train_step_s"][half:], timings["train_wait_s"][half:]
    seconds = sum(steps) + sum(waits)
    result = {"iterations_per_s": round(len(steps) / seconds, 3), "seconds_per_iteration":
              round(seconds / len(steps), 4), "data_wait_share": round(sum(waits) / seconds, 4),
              "gpu_busy_share": sampler.busy_share(), "peak_gpu_gb": sampler.peak_gb(),
              "batch_size": timings["summary"]["batch_size"], "patch_size": timings["summary"]["patch_size"],
              "command_s": round(wall, 1), "data_workers": timings["summary"]["n_proc_DA"] or "nnU-Net default"}
    slot(check, "training", spec.name, configuration)["nnU-Net v2"] = result
    return result


# --------------------------------------------------------------------------- phase 4: prediction with TTA

class OutputWatcher:
    """Records when each segmentation (a file with the dataset's ending, not a hidden temporary one) appears in a
    folder, polling every 50 ms, from entering the block."""

    def __init__(self, folder: Path, ending: str):
        self.folder, self.ending = folder, ending
        self.seen: dict[str, float] = {}
        self.start = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.05)

    def poll(self) -> None:
        try:
            names = [p.name for p in self.folder.iterdir()]
        except OSError:
            return
        now = time.perf_counter()
        for name in names:
            if name.endswith(self.ending) and not name.startswith(".") and name not in self.seen:
                self.seen[name] = now

    def __enter__(self) -> "OutputWatcher":
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()


def timed_predictions(check: Check, spec: DatasetSpec, configuration: str, tool: str) -> dict:
    """One call predicting ``cases`` cases with mirroring TTA: seconds per case from when the first and the last
    segmentation appeared, start-up = time to the first one minus one case."""
    inputs = test_inputs(check, spec)
    ending = json.loads(((raw_root(check, "autounet") / spec.name).resolve() / "dataset.json").read_text())[
        "file_ending"]
    output = check.work / "predictions" / f"{spec.name}_{configuration}_{tool}"
    if output.exists():
        shutil.rmtree(output)
    log = check.work / "logs" / f"{spec.name}_{configuration}_{tool}_predict.log"
    if tool == "autounet":
        model = model_folder(check, spec, configuration, check.augment_modes[-1])
        cmd = autounet("predict", "-i", str(inputs), "-o", str(output), "-m", str(model), "--device", check.device)
        env = None
    else:
        cmd = nnunet(check, "predict", "-i", str(inputs), "-o", str(output), "-d", spec.number, "-c",
                     f"autounet_{configuration}", "-f", "all", "-tr", TRAINER, "-device", nnunet_device(check),
                     "--disable_progress_bar")
        if check.smoke:  # its default 3 + 3 helper processes stalled a 2-core machine (no output in 200 s; 63 s so)
            cmd += ["-npp", "1", "-nps", "1"]
        env = {**nnunet_env(check), "nnUNet_compile": "f"}
    with GpuSampler() as sampler, OutputWatcher(output, ending) as watcher:
        wall = run_command(check, cmd, log, env=env, limit_s=LIMITS["predict"])
    times = sorted(watcher.seen.values())
    if len(times) < check.cases:
        raise StageFailed(f"{tool} wrote {len(times)} of {check.cases} segmentations to {output}")
    per_case = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else times[0] - watcher.start
    result = {"seconds_per_case": round(per_case, 3),
              "startup_s": round(max(times[0] - watcher.start - per_case, 0.0), 2), "cases": len(times),
              "tta": True, "peak_gpu_gb": sampler.peak_gb(), "command_s": round(wall, 2)}
    slot(check, "prediction", spec.name, configuration)[tool] = result
    return result


# --------------------------------------------------------------------------- outputs

def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return str(value)


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def ratio(a, b) -> str:
    return "n/a" if a is None or b in (None, 0) else f"{a / b:.2f}"


def markdown(check: Check) -> str:
    lines = ["# autounet GPU check", "",
             f"Device {check.device}; GPU: {fmt(check.results.get('gpu'))}; mode {'smoke' if check.smoke else 'full'}; "
             f"{check.iterations} iterations per epoch; {check.cases} predicted cases; "
             f"written {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.", ""]
    lines += [f"- {note}" for note in check.notes] + [""]
    lines += ["## Memory: estimated and measured peak against each budget (goal 85-100 %, no OOM)", "",
              "| dataset | configuration | budget | budget GB | patch | batch | estimated GB | measured GB | "
              "estimated / budget | measured / budget | verify |", "|" + "---|" * 11]
    for dataset, configurations in check.results.get("memory", {}).items():
        for configuration, budgets in configurations.items():
            for budget, row in budgets.items():
                lines.append(f"| {dataset} | {configuration} | {budget} | {fmt(row['budget_gb'])} | "
                             f"{fmt(row['patch_size'])} | {row['batch_size']} | {fmt(row['estimated_gb'])} | "
                             f"{fmt(row['measured_gb'])} | {pct(row['estimated_share'])} | "
                             f"{pct(row['measured_share'])} | {row['verify']} |")
    lines += ["", "## Training (second epoch; goals: GPU busy >= 90 %, s/iteration <= 0.7x nnU-Net's)", "",
              "| dataset | configuration | tool | batch | patch | it/s | s/iteration | GPU busy | data wait | "
              "peak GPU GB | s/iteration vs nnU-Net |", "|" + "---|" * 11]
    for dataset, configurations in check.results.get("training", {}).items():
        for configuration, tools in configurations.items():
            reference = tools.get("nnU-Net v2", {}).get("seconds_per_iteration")
            for tool, row in tools.items():
                lines.append(f"| {dataset} | {configuration} | {tool} | {row['batch_size']} | "
                             f"{fmt(row['patch_size'])} | {fmt(row['iterations_per_s'])} | "
                             f"{fmt(row['seconds_per_iteration'])} | {pct(row['gpu_busy_share'])} | "
                             f"{pct(row['data_wait_share'])} | {fmt(row['peak_gpu_gb'])} | "
                             f"{ratio(row['seconds_per_iteration'], reference)} |")
    lines += ["", "## Prediction with mirroring TTA (goals: <= 0.5x nnU-Net's s/case, start-up <= 3 s)", "",
              "| dataset | configuration | tool | cases | s/case | start-up s | peak GPU GB | s/case vs nnU-Net |",
              "|" + "---|" * 8]
    for dataset, configurations in check.results.get("prediction", {}).items():
        for configuration, tools in configurations.items():
            reference = tools.get("nnU-Net v2", {}).get("seconds_per_case")
            for tool, row in tools.items():
                lines.append(f"| {dataset} | {configuration} | {tool} | {row['cases']} | "
                             f"{fmt(row['seconds_per_case'])} | {fmt(row['startup_s'])} | {fmt(row['peak_gpu_gb'])} | "
                             f"{ratio(row['seconds_per_case'], reference)} |")
    lines += ["", "## Stages", "", "| stage | status | s | detail |", "|---|---|---|---|"]
    for record in check.stages:
        detail = " ".join(record["detail"].split())[-300:].replace("|", "/")
        lines.append(f"| {record['stage']} | {record['status']} | {record['seconds']} | {detail} |")
    return "\n".join(lines) + "\n"


def write_outputs(check: Check) -> None:
    """gpu_check.json and gpu_check.md in --out, each written to a temporary file and renamed."""
    check.out.mkdir(parents=True, exist_ok=True)
    document = {"device": check.device, "smoke": check.smoke, "iterations": check.iterations, "cases": check.cases,
                "budgets": check.budgets, "notes": check.notes, "results": check.results, "stages": check.stages}
    for name, text in (("gpu_check.json", json.dumps(document, indent=2)), ("gpu_check.md", markdown(check))):
        temporary = check.out / f".{name}.tmp"
        temporary.write_text(text)
        os.replace(temporary, check.out / name)


# --------------------------------------------------------------------------- the run

def datasets_for(args, data: Path | None) -> list[DatasetSpec]:
    if args.smoke:
        return [DatasetSpec("Dataset991_SmokeHippo", ["2d"], None, "hippo", 4)]
    specs = []
    for name, configurations in (("Dataset004_Hippocampus", ["3d_fullres", "2d"]),
                                 ("Dataset001_ISBI2012EM", ["2d"]), ("Dataset010_PH2Dermoscopy", ["2d"])):
        source = data / name if data else None
        specs.append(DatasetSpec(name, configurations, source))
    specs.append(DatasetSpec("Dataset992_SynthCT", ["3d_fullres"], None, "ct", args.ct_cases))
    return specs


def find_nnunet_python(explicit: str | None) -> tuple[str | None, str | None]:
    """A Python that imports nnunetv2: the one given, this one, or $NNUNET_VENV's / ../nnunet-venv's."""
    candidates = [explicit] if explicit else [sys.executable, str(Path(os.environ.get(
        "NNUNET_VENV", REPO.parent / "nnunet-venv")) / "bin" / "python")]
    for candidate in candidates:
        if candidate and Path(candidate).exists() and subprocess.run(
                [candidate, "-c", "import nnunetv2"], capture_output=True).returncode == 0:
            return candidate, None
    return None, f"nnU-Net v2: not importable (tried {', '.join(c for c in candidates if c)}); its columns are skipped"


def detect_device(requested: str) -> str:
    if requested != "auto":
        return requested
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                          capture_output=True, text=True)
    return "cuda" if done.stdout.strip().endswith("True") else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--work", type=Path, default=None, help="working folder [default: OUT/work]")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the real datasets [default: .whl/data when present, else ../shared/data]")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--smoke", action="store_true", help="rehearse on the CPU: tiny data, 2 iterations, 2 cases")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per epoch [40; smoke 2]")
    parser.add_argument("--cases", type=int, default=None, help="cases predicted [10; smoke 2]")
    parser.add_argument("--ct-cases", type=int, default=12, help="synthetic CT training cases")
    parser.add_argument("--budgets", default=None, help="memory budgets [detected,8,24,40; smoke 8]")
    parser.add_argument("--deadline-s", type=float, default=540.0, help="stop and write what was measured")
    parser.add_argument("--nnunet-python", default=None)
    parser.add_argument("--no-nnunet", action="store_true", help="skip nnU-Net's columns")
    parser.add_argument("--datasets", default=None,
                        help="only these, comma-separated parts of their names (e.g. Hippocampus,SynthCT)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    device = "cpu" if args.smoke else detect_device(args.device)
    data = args.data or next((p for p in (CARRIED / "data", SHARED / "data") if p.is_dir()), None)
    out = args.out.resolve()
    check = Check(out=out, work=(args.work or out / "work").resolve(), device=device, smoke=args.smoke,
                  iterations=args.iterations or (2 if args.smoke else 40), cases=args.cases or (2 if args.smoke else 10),
                  budgets=(args.budgets or ("8" if args.smoke else "detected,8,24,40")).split(","),
                  deadline=started + args.deadline_s, nnunet_python=None, augment_modes=["default"])
    check.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if device == "cuda":
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True) if shutil.which("nvidia-smi") else None
        check.results["gpu"] = done.stdout.strip() if done and done.returncode == 0 else "CUDA (nvidia-smi absent)"
    else:
        check.results["gpu"] = None
        check.notes.append("no CUDA device: plan --verify is skipped (it needs CUDA); GPU busy share and GPU "
                           "memory are n/a")
    check.augment_modes, note = augmentation_modes()
    if note:
        check.notes.append(note)
    if args.no_nnunet:
        check.notes.append("nnU-Net v2: skipped (--no-nnunet)")
    else:
        check.nnunet_python, note = find_nnunet_python(args.nnunet_python)
        if note:
            check.notes.append(note)
    for note in check.notes:
        print(note, flush=True)
    specs = datasets_for(args, data)
    if args.datasets:
        specs = [s for s in specs if any(part in s.name for part in args.datasets.split(","))]
    ready = []
    for spec in specs:
        if spec.source is not None and not (spec.source / "dataset.json").is_file():
            skip(check, f"{spec.name}: data", f"{spec.source} has no dataset.json")
            continue
        if stage(check, f"{spec.name}: raw data", prepare_raw, spec) is not None:
            ready.append(spec)
    # phase 1: plans and their memory, every budget; the 8 GB plan (nnU-Net's default target) last, so that it is
    # the plans.json that preprocessing and training use
    budgets = sorted(check.budgets, key=lambda b: b == "8")
    for spec in ready:
        for budget in budgets:
            stage(check, f"{spec.name}: plan {budget}", plan_budget, spec, budget)
    # phase 2: autounet training
    trained = {}
    for spec in ready:
        if stage(check, f"{spec.name}: preprocess", preprocess, spec) is None:
            continue
        for configuration in spec.configurations:
            for augment in check.augment_modes:
                if stage(check, f"{spec.name} {configuration}: train autounet ({augment_label(augment)})",
                         train_autounet, spec, configuration, augment) is not None:
                    trained[(spec.name, configuration)] = spec
    # phase 3: nnU-Net on the same plans
    nnunet_trained = set()
    if check.nnunet_python:
        if stage(check, "nnU-Net: benchmark trainer", install_bench_trainer) is not None:
            for spec in ready:
                if not any(key[0] == spec.name for key in trained):
                    continue
                if stage(check, f"{spec.name}: nnU-Net plan_and_preprocess", nnunet_preprocess, spec) is None:
                    continue
                for configuration in spec.configurations:
                    if (spec.name, configuration) in trained and stage(
                            check, f"{spec.name} {configuration}: train nnU-Net", train_nnunet, spec,
                            configuration) is not None:
                        nnunet_trained.add((spec.name, configuration))
    # phase 4: prediction with TTA
    for (name, configuration), spec in trained.items():
        stage(check, f"{name} {configuration}: predict autounet", timed_predictions, spec, configuration, "autounet")
        if (name, configuration) in nnunet_trained:
            stage(check, f"{name} {configuration}: predict nnU-Net", timed_predictions, spec, configuration,
                  "nnU-Net v2")
    check.results["total_seconds"] = round(time.monotonic() - started, 1)
    write_outputs(check)
    print("\n" + markdown(check), flush=True)
    failed = [s["stage"] for s in check.stages if s["status"] == "failed"]
    print(f"done in {check.results['total_seconds']} s; {len(failed)} failed stage(s); "
          f"{out / 'gpu_check.json'}, {out / 'gpu_check.md'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
