"""Two commands on the same thing at once: the second is refused with a sentence naming the first (pid, host,
command); a killed holder never leaves the lock stuck. Each test runs a second real process."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autounet.utils.locks as locks
from autounet.cli.main import app
from autounet.errors import LockedError
from autounet.preprocessing.store import CaseStore
from tests.conftest import make_nifti_dataset
from tests.preprocessing.plans_factory import make_configuration, make_plans, prepare_dataset

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
HOLD = """
import sys, time
from autounet.utils import locks
with getattr(locks, sys.argv[1])(sys.argv[2], sys.argv[3]):
    print("held", flush=True)
    time.sleep(120)
"""


def _python(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _holder(kind: str, folder: Path, what: str) -> subprocess.Popen:
    """Another process holding ``folder``'s lock until killed."""
    process = _python("-c", HOLD, kind, str(folder), what)
    assert process.stdout.readline().strip() == "held"
    return process


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def test_predict_into_a_folder_another_predict_writes_is_refused_until_it_dies(trained_3d, tmp_path):
    out = tmp_path / "out"
    holder = _holder("exclusive", out, "autounet predict")
    try:
        result = runner.invoke(app, ["predict", "-i", str(trained_3d / "imagesTs"), "-o", str(out), "--no-tta"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"{out}: autounet predict (pid {holder.pid} on {socket.gethostname()}, since" in result.output
        assert "cannot start now" in result.output and "model:" not in result.output
    finally:
        _kill(holder)  # SIGKILL: the holder gets no chance to clean up
    result = runner.invoke(app, ["predict", "-i", str(trained_3d / "imagesTs"), "-o", str(out), "--no-tta"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["case_001.nii.gz", "case_002.nii.gz"]  # lock removed


@pytest.fixture
def slow_dataset(data_root):
    """A dataset whose preprocessing takes a few seconds; returns its preprocessed folder."""
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=6, shape=(40, 44, 42))
    location = prepare_dataset(raw, data_root, make_plans(make_configuration(spacing=(0.5, 0.5, 0.5))))
    return location.preprocessed


def _wait_for_lock(folder: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not (folder / locks.LOCK_FILE).is_file() or not (folder / locks.LOCK_FILE).read_text():
        assert process.poll() is None and time.monotonic() < deadline, "the first command ended too soon"
        time.sleep(0.01)


def test_a_second_preprocess_of_a_dataset_is_refused_while_the_first_runs(slow_dataset):
    first = _python("-m", "autounet", "preprocess", "Dataset100", "--workers", "1")
    try:
        _wait_for_lock(slow_dataset, first)
        second = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1", "--overwrite"])
        assert second.exit_code == 1, second.output
        assert f"autounet preprocess Dataset100_Tiny (pid {first.pid}" in second.output
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            _kill(first)
    assert first.returncode == 0, output
    assert len(CaseStore(slow_dataset / "autounet_3d_fullres").case_ids()) == 6
    assert not (slow_dataset / locks.LOCK_FILE).exists()


def test_a_killed_preprocess_does_not_leave_the_dataset_locked(slow_dataset):
    first = _python("-m", "autounet", "preprocess", "Dataset100", "--workers", "1")
    _wait_for_lock(slow_dataset, first)
    _kill(first)
    assert (slow_dataset / locks.LOCK_FILE).is_file()  # the file stays, the lock does not
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert len(CaseStore(slow_dataset / "autounet_3d_fullres").case_ids()) == 6


def test_readers_share_a_folder_and_keep_writers_out(tmp_path):
    reader = _holder("shared", tmp_path, "autounet train")
    try:
        with locks.shared(tmp_path, "autounet train --fold 1"):
            pass
        with pytest.raises(LockedError, match="another autounet command .*so autounet preprocess cannot start"):
            with locks.exclusive(tmp_path, "autounet preprocess"):
                pass
    finally:
        _kill(reader)
    with locks.exclusive(tmp_path, "autounet preprocess"):
        pass


def test_without_flock_a_lock_whose_process_is_dead_is_taken_over(tmp_path, monkeypatch):
    def no_flock(fd, mode):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_flock)
    dead = _python("-c", "pass")
    dead.wait()
    lock = tmp_path / locks.LOCK_FILE
    host = socket.gethostname()
    lock.write_text(f'{{"pid": {dead.pid}, "host": "{host}", "command": "autounet predict"}}')
    with locks.exclusive(tmp_path, "autounet predict") as path:
        assert f'"pid": {os.getpid()}' in path.read_text()
    alive = _python("-c", "import time; time.sleep(60)")
    try:
        lock.write_text(f'{{"pid": {alive.pid}, "host": "{host}", "command": "autounet predict"}}')
        with pytest.raises(LockedError, match=f"pid {alive.pid}"):
            with locks.exclusive(tmp_path, "autounet predict"):
                pass
    finally:
        _kill(alive)
    lock.write_text('{"pid": 1, "host": "another-machine", "command": "autounet predict"}')
    with pytest.raises(LockedError, match="on another-machine"):  # its process cannot be checked from here
        with locks.exclusive(tmp_path, "autounet predict"):
            pass


def test_planning_while_a_training_reads_the_cache_is_refused_and_leaves_plans_json_alone(slow_dataset):
    before = (slow_dataset / "plans.json").read_bytes()
    reader = _holder("shared", slow_dataset, "autounet train Dataset100 --fold 0")
    try:
        result = runner.invoke(app, ["plan", "Dataset100"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        printed = " ".join(result.output.split())
        assert "another autounet command" in printed and "so autounet plan Dataset100_Tiny cannot start now" in printed
        assert (slow_dataset / "plans.json").read_bytes() == before
    finally:
        _kill(reader)
    result = runner.invoke(app, ["plan", "Dataset100"])
    assert result.exit_code == 0, result.output
