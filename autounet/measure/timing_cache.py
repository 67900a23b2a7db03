"""Step timings remembered per machine, so a network measured once is not measured again.

A time budget measures networks before it trains (planning's ladder, the batch search, the fold's own step
timing). On a machine that has measured the same network, patch, batch and thread count before -- with the same
processor, device and torch -- the remembered median is used instead: ``run --budget`` counts planning inside
the budget, and a measurement repeated per fold or per run is time not spent training. A remembered timing can
be stale (the machine's load changes); training re-fits its schedule to its own first iterations either way.

The cache is one JSON file, ``step_timings.json``, in ``$AUTOUNET_CACHE_DIR`` (``none`` turns it off), else
``$XDG_CACHE_HOME/autounet`` or ``~/.cache/autounet``. A file that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import torch

from autounet.utils.atomic import write_json
from autounet.utils.logs import debug

CACHE_ENV = "AUTOUNET_CACHE_DIR"
FILE_NAME = "step_timings.json"
MAX_ENTRIES = 2000
"""The oldest entries are dropped beyond this many (a few hundred bytes each)."""


def cache_file() -> Path | None:
    """The cache file, or None when ``$AUTOUNET_CACHE_DIR`` is ``none``."""
    folder = os.environ.get(CACHE_ENV)
    if folder is not None and folder.strip().lower() in ("none", "off", "0", ""):
        return None
    if folder is None:
        folder = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autounet")
    return Path(folder) / FILE_NAME


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device) -> dict:
    """What a timing depends on besides the network: processor, cores, device and torch."""
    described = {"processor": _processor(), "cores": os.cpu_count(), "device": device.type, "torch": torch.__version__}
    if device.type == "cuda":
        described["gpu"] = torch.cuda.get_device_name(device)
    return described


def timing_key(device: torch.device, **measured) -> str:
    """A stable key for a measurement of ``measured`` (network, patch, batch, threads, ...) on this machine."""
    text = json.dumps({"machine": machine_description(device), **measured}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _read(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text())
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        return {}


def remembered(key: str) -> list[float] | None:
    """The values stored under ``key`` (seconds per iteration, per forward pass), if any."""
    path = cache_file()
    value = _read(path).get(key) if path is not None and path.is_file() else None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in value):
        return [float(v) for v in value]
    return None


def remember(key: str, values: list[float]) -> None:
    """Store ``values`` under ``key`` (atomically; a failure to write is only logged)."""
    path = cache_file()
    if path is None:
        return
    entries = _read(path) if path.is_file() else {}
    entries.pop(key, None)
    entries[key] = [round(float(v), 6) for v in values]
    while len(entries) > MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, entries)
    except OSError as error:  # StorageError is an OSError too: a cache is never worth failing a run for
        debug(f"step timings not remembered in {path}: {error}")
