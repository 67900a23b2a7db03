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
    """Wall time (s), peak resident memory of the whole process tree (GiB) and the exit code of one command."""

    wall_s: float
    peak_gb: float
    returncode: int
    output: str


def run_measured(cmd: list[str], env: dict | None = None, cwd: Path | None = None, poll_s: float = 0.05) -> Measured:
    """Run ``cmd`` and measure its wall time and the peak summed RSS of it and all its children."""
    full_env = {**os.environ, **(env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            total = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(poll_s)
    reader.join()
    return Measured(time.perf_counter() - start, peak / 2**30, proc.returncode, "".join(chunks))


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
