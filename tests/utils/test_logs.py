"""Log files: a plain-text copy of what the consoles print, debug detail, and errors with their traceback."""

from __future__ import annotations

import logging

import pytest
from rich.table import Table

from autounet.utils.logs import LoggedConsole, debug, log_to, plain_line, set_verbosity


@pytest.fixture(autouse=True)
def _normal_verbosity():
    set_verbosity()
    yield
    set_verbosity()


def test_printed_lines_reach_the_log_as_plain_text_and_the_terminal_unchanged(tmp_path, capsys):
    console = LoggedConsole(stderr=True, notes=True, force_terminal=False)
    table = Table("case", "Dice")
    table.add_row("a", "0.9")
    with log_to(tmp_path / "x.log"):
        console.print("[bold]epoch 1/2[/bold]: loss 0.5")
        console.print(table)
        debug("resolved config: {}")
        plain_line("predict: 2/2 done in 1.0 s")
    console.print("after the block")
    terminal = capsys.readouterr().err
    assert "epoch 1/2: loss 0.5" in terminal and "resolved config" not in terminal
    log = (tmp_path / "x.log").read_text()
    assert "INFO    epoch 1/2: loss 0.5" in log and "[bold]" not in log and "\x1b[" not in log
    assert "Dice" in log and "0.9" in log
    assert "DEBUG   resolved config: {}" in log and "torch " in log  # the head names the versions
    assert "predict: 2/2 done" in log and "after the block" not in log


def test_quiet_keeps_notes_off_the_terminal_but_in_the_log_and_verbose_shows_debug(tmp_path, capsys):
    notes = LoggedConsole(stderr=True, notes=True, force_terminal=False)
    results = LoggedConsole(stderr=True, force_terminal=False)
    set_verbosity(quiet=True)
    with log_to(tmp_path / "q.log"):
        notes.print("a note")
        results.print("a result")
    assert capsys.readouterr().err == "a result\n"
    assert "a note" in (tmp_path / "q.log").read_text()
    set_verbosity(verbose=True)
    debug("detail")
    assert capsys.readouterr().err == "detail\n"


def test_an_error_leaving_the_block_is_logged_with_its_traceback_in_every_open_log(tmp_path):
    with pytest.raises(ValueError):
        with log_to(tmp_path / "outer.log"), log_to(tmp_path / "inner.log", head=False):
            raise ValueError("the cache is corrupt")
    for name in ("outer.log", "inner.log"):
        log = (tmp_path / name).read_text()
        assert "ERROR   stopped by ValueError: the cache is corrupt" in log
        assert "Traceback (most recent call last)" in log
    assert "torch " not in (tmp_path / "inner.log").read_text()
    assert not [h for h in logging.getLogger("autounet").handlers
                if isinstance(h, logging.FileHandler) and str(tmp_path) in h.baseFilename]
