"""Helpers for the side-by-side benchmark scripts: run a command, time it, and track its memory.

Each bench script runs autounet and the reference tool (nnU-Net v2) on the same data in one run and prints a
table with ratios; absolute times on shared machines are noisy, ratios taken in one run are comparable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


def _find_nnunet_venv() -> Path:
    """$NNUNET_VENV, else a folder ``nnunet-venv`` beside the checkout (or one level up, from a worktree)."""
    if os.environ.get("NNUNET_VENV"):
        return Path(os.environ["NNUNET_VENV"])
    candidates = [REPO.parent / "nnunet-venv", REPO.parent.parent / "nnunet-venv"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


NNUNET_VENV = _find_nnunet_venv()


@dataclass
class Measured:
    """Wall time (s), peak resident memory of the whole process tree (GiB) and the exit code of one command.

    ``peak_anon_gb`` is the peak of its anonymous memory alone (``RssAnon``: what the kernel cannot drop; RSS also
    counts pages of mapped files, e.g. a memory-mapped scratch file, which it can write out and drop).
    ``cap_peak_gb`` is the peak the memory cgroup charged when the command ran under a cap (else NaN)."""

    wall_s: float
    peak_gb: float
    returncode: int
    output: str
    peak_anon_gb: float = float("nan")
    cap_peak_gb: float = float("nan")


def _anonymous_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemoryCap:
    """A cgroup (v1 memory controller or v2) that hard-limits the memory of the commands put in it; root only.
    Page cache is charged too, but the kernel reclaims it before it kills anything, so a command completes under
    the cap exactly when its memory that cannot be dropped fits."""

    def __init__(self, limit_bytes: int, name: str = "autounet_bench"):
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").is_file()
        base = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup/memory")
        self.folder = base / f"{name}_{os.getpid()}"
        self.v2 = v2
        self.folder.mkdir()
        (self.folder / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))
        if not v2 and (self.folder / "memory.memsw.limit_in_bytes").exists():
            (self.folder / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))

    def wrap(self, cmd: list[str]) -> list[str]:
        """``cmd`` started inside the cgroup."""
        return ["sh", "-c", f'echo $$ > {self.folder / "cgroup.procs"} && exec "$@"', "sh", *cmd]

    def peak_bytes(self) -> int:
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        path = self.folder / name
        return int(path.read_text()) if path.is_file() else -1

    def oom_kills(self) -> int:
        path = self.folder / ("memory.events" if self.v2 else "memory.oom_control")
        for line in path.read_text().splitlines() if path.is_file() else []:
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def remove(self) -> None:
        try:
            self.folder.rmdir()
        except OSError:
            pass


def run_measured(cmd: list[str], env: dict | None = None, cwd: Path | None = None, poll_s: float = 0.05,
                 cap: MemoryCap | None = None) -> Measured:
    """Run ``cmd`` (inside ``cap``'s cgroup when given) and measure its wall time and the peak summed RSS (and
    anonymous RSS) of it and all its children."""
    full_env = {**os.environ, **(env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(cap.wrap(cmd) if cap else cmd, env=full_env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = peak_anon = 0
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
            peak_anon = max(peak_anon, sum(_anonymous_bytes(p.pid) for p in tree))
        except psutil.Error:
            pass
        time.sleep(poll_s)
    reader.join()
    return Measured(time.perf_counter() - start, peak / 2**30, proc.returncode, "".join(chunks), peak_anon / 2**30,
                    cap.peak_bytes() / 2**30 if cap else float("nan"))


def autounet_cmd(*args: str) -> list[str]:
    """The command line that runs this checkout's autounet."""
    return [sys.executable, "-m", "autounet", *args]


def nnunet_bin(name: str) -> str:
    """Path of an nnU-Net console script in its venv (installed by ../shared/bench/install_nnunet.sh)."""
    path = NNUNET_VENV / "bin" / name
    if not path.exists():
        sys.exit(f"nnU-Net is not installed at {NNUNET_VENV}; run: bash ../shared/bench/install_nnunet.sh {NNUNET_VENV}")
    return str(path)


def nnunet_env(base: Path) -> dict:
    """nnU-Net's three folder variables under ``base``."""
    env = {"nnUNet_raw": str(base / "raw"), "nnUNet_preprocessed": str(base / "preprocessed"),
           "nnUNet_results": str(base / "results")}
    for value in env.values():
        Path(value).mkdir(parents=True, exist_ok=True)
    return env


def link_dataset(source: Path, raw_folder: Path, name: str | None = None) -> Path:
    """Make ``source`` available as ``raw_folder/name`` without copying (a symlink)."""
    raw_folder.mkdir(parents=True, exist_ok=True)
    target = raw_folder / (name or source.name)
    if target.is_symlink() or target.exists():
        if target.is_symlink():
            target.unlink()
        else:
            shutil.rmtree(target)
    target.symlink_to(source.resolve(), target_is_directory=True)
    return target


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    """Print a plain-text table (Markdown-compatible) for the issue notes."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(f"{c:.3g}" if isinstance(c, float) else str(c) for c in row) + " |")
