"""A harness that kills a real autounet command with SIGKILL at random moments and reruns it until it completes.

A *chain* starts the command fresh, kills it at the first moment, reruns it (``--resume``, ``--continue`` or the
same command line) and kills that at the next moment, and so on; the rerun that is not killed (or that finishes
before its moment) ends the chain, and its outputs are compared with an uninterrupted run's. When a chain ends
before every moment is used, a new chain starts from empty outputs with the moments left, so every moment is a
real kill. Moments are drawn by ``random.Random(seed)``, stratified over [5 %, 95 %] of the uninterrupted run's
measured duration, and each invocation is killed that long after its own start: early moments land in
start-up (imports, loading), later ones in the work and its writes.

After every kill the output folders are scanned: every file that looks complete must be whole (each JSON parses,
each array, archive, image and weights file reads to its end). Temporary files (``.NAME.XXXXXXXX.tmp...``, from
the atomic writers) are not complete files; what is left of them after the chain is reported by
:func:`leftover_temporaries`.

Environment: ``AUTOUNET_KILLS`` (kills per command; each test has a default sized for CI) and
``AUTOUNET_KILL_SEED`` (reproduce a failure; by default each test draws a new seed and prints it in every
assertion message).
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from autounet.utils.atomic import TEMPORARY_NAME

REPO = Path(__file__).resolve().parents[2]
LOW, HIGH = 0.05, 0.95
"""The kill moments are spread over this part of the uninterrupted run's duration."""
RUN_TIMEOUT = 300.0


def kill_count(default: int) -> int:
    """Kills per command: ``$AUTOUNET_KILLS`` or the test's default."""
    return int(os.environ.get("AUTOUNET_KILLS") or default)


def kill_seed() -> int:
    """``$AUTOUNET_KILL_SEED``, or a new seed each time (printed with every failure)."""
    value = os.environ.get("AUTOUNET_KILL_SEED")
    return int(value) if value else random.SystemRandom().randrange(2 ** 31)


def kill_fractions(seed: int, count: int) -> list[float]:
    """``count`` moments as fractions of a run, one drawn uniformly in each of ``count`` equal strata of
    [LOW, HIGH], in increasing order."""
    rng = random.Random(seed)
    width = (HIGH - LOW) / count
    return [LOW + (i + rng.random()) * width for i in range(count)]


@dataclass
class Outcome:
    """One invocation: its command line, return code (negative: killed by that signal), time and output."""

    argv: list[str]
    returncode: int
    seconds: float
    output: str
    killed_at: float | None = None
    progress: str = ""
    """What the outputs held when it ended (the test's ``progress()``)."""


class Command:
    """How to start one autounet command: its first command line, its rerun's, and the environment."""

    def __init__(self, first: list[str], rerun: list[str], root: Path, logs: Path):
        self.first, self.rerun = first, rerun
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "AUTOUNET_HOME": str(root)}
        self.logs = logs

    def run(self, argv: list[str], kill_after: float | None = None,
            kill_when: Callable[[], bool] | None = None) -> Outcome:
        """Run ``autounet ARGV``; with ``kill_after`` SIGKILL its process group that many seconds after the start,
        with ``kill_when`` as soon as that says so (checked every few milliseconds), unless it has ended by then."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{len(list(self.logs.iterdir())) + 1:03d}-{argv[0]}.log"
        with open(log, "w") as sink:
            start = time.monotonic()
            # A session of its own: killing its process group kills any worker processes with it.
            process = subprocess.Popen([sys.executable, "-m", "autounet", *argv], cwd=REPO, env=self.env,
                                       stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = start + (kill_after if kill_after is not None else RUN_TIMEOUT)
            killed_at = None
            try:
                while process.poll() is None:
                    left = deadline - time.monotonic()
                    if left <= 0 or (kill_when is not None and kill_when()):
                        killed_at = time.monotonic() - start
                        os.killpg(process.pid, signal.SIGKILL)
                        break
                    time.sleep(min(left, 0.005))
                returncode = process.wait(timeout=60)
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            seconds = time.monotonic() - start
        if killed_at is not None and returncode == 0:
            killed_at = None  # it had ended just before the kill
        return Outcome(argv, returncode, seconds, log.read_text(errors="replace"), killed_at)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class ChainFailure(AssertionError):
    """A kill run found half-written files or outputs unlike the uninterrupted run's (``problems``, one each)."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


@dataclass
class ChainReport:
    """What a kill run did: every invocation, and how many chains (fresh starts) it took."""

    seed: int
    reference_seconds: float
    outcomes: list[Outcome] = field(default_factory=list)
    chains: int = 0

    @property
    def kills(self) -> int:
        return sum(1 for o in self.outcomes if o.killed_at is not None)

    def timeline(self) -> str:
        """One line per invocation: how long it ran and how it ended."""
        return "\n".join(f"  {i + 1:2d}. {'killed at' if o.killed_at is not None else 'ended after'} "
                         f"{o.killed_at if o.killed_at is not None else o.seconds:6.2f} s"
                         f"{'' if o.killed_at is not None else f' (exit {o.returncode})'}: autounet "
                         f"{' '.join(o.argv[:1] + [a for a in o.argv[1:] if a in ('--resume', '--continue')])}"
                         f"{'; ' + o.progress if o.progress else ''}" for i, o in enumerate(self.outcomes))

    def describe(self) -> str:
        return (f"seed {self.seed} (rerun with AUTOUNET_KILL_SEED={self.seed}), {self.kills} kill(s) in "
                f"{self.chains} chain(s), reference run {self.reference_seconds:.2f} s")


def kill_anywhere(command: Command, reference_seconds: float, seed: int, count: int,
                  reset: Callable[[], None], check_whole: Callable[[], list[str]],
                  check_complete: Callable[[], list[str]],
                  progress: Callable[[], str] = lambda: "") -> ChainReport:
    """Kill ``command`` at ``count`` moments drawn from ``seed``; after each kill ``check_whole()`` lists the
    files that look complete but are not; after each chain's last run ``check_complete()`` lists how the outputs
    differ from the uninterrupted run's. ``reset()`` empties the outputs before a fresh start; ``progress()`` says
    how far each invocation got (for the timeline). Fails with the seed and the moment on the first problem."""
    report = ChainReport(seed, reference_seconds)
    fractions = kill_fractions(seed, count)
    duration = reference_seconds
    fresh = True
    index = 0

    def where(outcome: Outcome, fraction: float | None) -> str:
        moment = ("the final rerun, not to be killed" if fraction is None else
                  f"moment {index + 1} of {count}: {fraction:.3f} of the {duration:.2f} s run = "
                  f"{fraction * duration:.2f} s")
        ended = (f"killed at {outcome.killed_at:.2f} s" if outcome.killed_at is not None else
                 f"ended by itself after {outcome.seconds:.2f} s with exit {outcome.returncode}")
        return (f"{report.describe()}; invocation {len(report.outcomes)}: autounet {' '.join(outcome.argv)} "
                f"({moment}), {ended}\ninvocations so far:\n{report.timeline()}\n")

    def finish_chain(outcome: Outcome, fraction: float | None) -> None:
        problems = check_complete() + check_whole()
        if problems:
            raise ChainFailure(f"{where(outcome, fraction)}after the chain completed:\n" + "\n".join(problems),
                               problems)

    while index < count:
        fraction = fractions[index]
        if fresh:
            reset()
            report.chains += 1
        outcome = command.run(command.first if fresh else command.rerun, kill_after=fraction * duration)
        outcome.progress = progress()
        report.outcomes.append(outcome)
        if outcome.killed_at is None:
            assert outcome.returncode == 0, f"{where(outcome, fraction)}the run failed:\n{_tail(outcome.output)}"
            finish_chain(outcome, fraction)
            if fresh:
                # An uninterrupted run ended before this moment: the reference was slow; measure by this run.
                duration = min(duration, outcome.seconds) * 0.97
            fresh = True
            continue
        assert outcome.returncode == -signal.SIGKILL, \
            f"{where(outcome, fraction)}it failed just before the kill (exit {outcome.returncode}):\n" \
            f"{_tail(outcome.output)}"
        problems = check_whole()
        if problems:
            raise ChainFailure(f"{where(outcome, fraction)}half-written files that look complete:\n" +
                               "\n".join(problems), problems)
        index += 1
        fresh = False
    if not fresh:
        outcome = command.run(command.rerun)
        outcome.progress = progress()
        report.outcomes.append(outcome)
        assert outcome.returncode == 0, f"{where(outcome, None)}the final rerun failed:\n{_tail(outcome.output)}"
        finish_chain(outcome, None)
    return report


# ---------------------------------------------------------------------------------------------------------------
# Is every file that looks complete whole?


def _check_json(path: Path) -> None:
    json.loads(path.read_text())


def _check_npy(path: Path) -> None:
    np.load(path, allow_pickle=False)  # reads the whole array: a short file fails


def _check_npz(path: Path) -> None:
    with np.load(path, allow_pickle=False) as npz:
        for name in npz.files:
            npz[name]  # noqa: B018 - reading checks the member's CRC


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"member {bad} fails its CRC")


def _check_safetensors(path: Path) -> None:
    from safetensors.numpy import load_file

    load_file(str(path))


def _check_image(path: Path) -> None:
    import SimpleITK as sitk

    sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _check_png(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        image.load()


def _check_csv(path: Path) -> None:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or any(len(row) != len(rows[0]) for row in rows) or not path.read_text().endswith("\n"):
        raise ValueError("rows of unequal length or a cut last line")


CHECKS = {".json": _check_json, ".npy": _check_npy, ".npz": _check_npz, ".zip": _check_zip,
          ".safetensors": _check_safetensors, ".nii.gz": _check_image, ".nii": _check_image, ".png": _check_png,
          ".csv": _check_csv}
LOG_ENDING = ".log"
"""Logs (training.log, preprocess.log) are appended to as a run goes, with times; a killed run's ends where it was
killed. They are neither checked as whole nor compared."""


def half_written(*places: Path) -> list[str]:
    """The files under ``places`` (folders or files) that look complete but do not read to their end; hidden
    files (temporaries, locks) are not complete files and are skipped. A file of an unknown kind is listed."""
    problems = []
    for place in places:
        files = [place] if place.is_file() else sorted(p for p in place.rglob("*") if p.is_file()) \
            if place.is_dir() else []
        for path in files:
            if path.name.startswith(".") or path.name.endswith(LOG_ENDING):
                continue
            check = next((c for ending, c in CHECKS.items() if path.name.endswith(ending)), None)
            if check is None:
                problems.append(f"{path}: no check for this kind of file (add one to kill_harness.CHECKS)")
                continue
            try:
                check(path)
            except Exception as error:  # noqa: BLE001 - any failure to read is the finding
                problems.append(f"{path}: does not read whole ({type(error).__name__}: {error})")
    return problems


def leftover_temporaries(*folders: Path) -> list[Path]:
    """Temporary files of the atomic writers under ``folders``."""
    return sorted(p for folder in folders if folder.is_dir() for p in folder.rglob(".*")
                  if p.is_file() and TEMPORARY_NAME.match(p.name))


# ---------------------------------------------------------------------------------------------------------------
# Outputs to compare


def arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a safetensors, npz or npy file (their bytes may hold metadata that is allowed to differ)."""
    if path.name.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return load_file(str(path))
    if path.name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    return {"": np.load(path, allow_pickle=False)}


def snapshot(folder: Path, exclude: Callable[[Path], bool] = lambda path: False,
             transform: dict[str, Callable[[Path], object]] | None = None) -> dict[str, object]:
    """Every visible file under ``folder`` by relative path: its bytes, or ``transform[name](path)`` for the files
    named there, leaving out those ``exclude`` names."""
    transform = transform or {}
    found: dict[str, object] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.startswith(".") or exclude(path):
            continue
        relative = str(path.relative_to(folder))
        if path.name in transform:
            found[relative] = transform[path.name](path)
        elif path.name.endswith((".safetensors", ".npz")):
            found[relative] = arrays(path)
        else:
            found[relative] = path.read_bytes()
    return found


def differences(reference: dict[str, object], now: dict[str, object]) -> list[str]:
    """How ``now`` differs from ``reference`` (missing, extra and changed files), one line each."""
    lines = [f"{name}: missing" for name in sorted(set(reference) - set(now))]
    lines += [f"{name}: not in the uninterrupted run's outputs" for name in sorted(set(now) - set(reference))]
    for name in sorted(set(reference) & set(now)):
        if not _equal(reference[name], now[name]):
            lines.append(f"{name}: differs from the uninterrupted run's")
    return lines


def _equal(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and a.tobytes() == b.tobytes())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b
