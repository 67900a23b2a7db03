"""The CLI reads well with the typer a fresh install resolves: --help, shell completion and option errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from tests.conftest import REPO

runner = CliRunner()
COMMANDS = ["verify", "fingerprint", "doctor", "plan", "preprocess", "train", "predict", "evaluate", "find-best",
            "run", "export-model", "install-model", "report"]


@pytest.mark.parametrize("command", [[], *[[name] for name in COMMANDS]])
def test_help_has_an_example_and_no_bool_type_on_flags(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert "<bool>" not in result.output  # typer 0.29 prints it for on/off flags, which reads as a value


def _complete(words: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1),
           "_AUTOUNET_COMPLETE": "complete_bash"}
    script = Path(sys.executable).with_name("autounet")  # completion keys on the program's name
    if not script.is_file():
        pytest.skip(f"{script}: no installed console script beside this Python")
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=120)
    return done.stdout.split()


def test_shell_completion_offers_commands_and_options():
    assert _complete("autounet pre") == ["preprocess", "predict"]
    assert _complete("autounet predict --no") == ["--no-tta"]


def test_a_bad_option_value_is_a_usage_error_naming_the_option():
    result = runner.invoke(app, ["predict", "-i", "x", "-o", "y", "--step", "abc"])
    assert result.exit_code == 2
    assert "--step" in result.output and "Traceback" not in result.output
