"""The report as a person sees it: headless Chromium opens the file and takes a screenshot, which must not be
blank, and the page must raise no script error. Skipped when Chromium is not installed (CI installs Debian's
``chromium`` package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autounet.report import write_report

CHROMIUM = next((path for path in (shutil.which("chromium"), "/usr/bin/chromium") if path and Path(path).is_file()),
                None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


def screenshot(page: Path, output: Path, profile: Path, height: int = 2000) -> subprocess.CompletedProcess:
    """Chromium's screenshot of ``page`` at 1280 x ``height`` pixels, with everything that reaches out turned off
    and the page's console messages logged to stderr."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", f"--screenshot={output}",
               f"--window-size=1280,{height}", page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def problems(output: Path, result: subprocess.CompletedProcess) -> list[str]:
    """What is wrong with a screenshot: missing, blank (almost one colour), or a script error on the page."""
    from PIL import Image

    found = [line for line in result.stderr.splitlines() if ":CONSOLE" in line and "Uncaught" in line]
    if result.returncode != 0 or not output.is_file():
        return found + [f"no screenshot (exit {result.returncode}): {result.stderr[-1000:]}"]
    pixels = np.asarray(Image.open(output).convert("RGB"))
    if len(np.unique(pixels.reshape(-1, 3), axis=0)) < 50 or np.all(pixels == pixels[0, 0], axis=-1).mean() > 0.97:
        found.append("the screenshot is blank")
    return found


def test_chromium_renders_the_report(nifti_run, tmp_path):
    page = write_report(nifti_run)
    output = tmp_path / "report.png"
    result = screenshot(page, output, tmp_path / "profile")
    assert problems(output, result) == []


def test_a_blank_page_or_a_script_error_is_caught(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedThing.call();</script></body></html>")
    output = tmp_path / "broken.png"
    found = problems(output, screenshot(page, output, tmp_path / "profile", height=400))
    assert any("Uncaught ReferenceError" in p for p in found) and "the screenshot is blank" in found
