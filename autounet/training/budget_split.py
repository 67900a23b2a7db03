"""Where a fold's time budget went: setup, training iterations, pseudo-Dice, checkpoints, final validation."""

from __future__ import annotations

from autounet.planning.time_budget import format_duration
from autounet.training.checkpoint import EpochRecord

PARTS = ("setup", "training iterations", "pseudo-Dice validation", "checkpoints and logs", "final validation")


def spent_seconds(setup: float, log: list[EpochRecord], training_wall: float, validation: float) -> dict[str, float]:
    """The fold's wall time by part: ``setup`` (before the first epoch), the epochs' training iterations and
    pseudo-Dice iterations (from ``log``), the rest of ``training_wall`` (the whole training process: saving
    checkpoints, logs and plots between epochs, starting the data workers) and the final ``validation``.

    Example:
        >>> record = EpochRecord(0, 1.0, 1.0, [0.5], 0.5, 0.01, seconds=50.0, training_seconds=40.0)
        >>> spent_seconds(5.0, [record], 60.0, 20.0)["checkpoints and logs"]
        5.0
    """
    training = sum(r.training_seconds for r in log)
    epochs = sum(r.seconds for r in log)
    values = (setup, training, epochs - training, max(0.0, training_wall - setup - epochs), validation)
    return {part: round(seconds, 1) for part, seconds in zip(PARTS, values)}


def describe_split(budget_seconds: float, spent: dict[str, float], iterations: int) -> str:
    """One line: each part's seconds and share of the budget, and what was left over (or overrun).

    Example:
        >>> print(describe_split(100, {"setup": 5.0, "training iterations": 80.0}, 400))
        budget 1m40s spent: setup 5 s (5 %), training iterations 80 s (80 %, 400 iterations); 15 s (15 %) unused
    """
    shown = []
    for part, seconds in spent.items():
        extra = f", {iterations} iterations" if part == "training iterations" else ""
        shown.append(f"{part} {seconds:.0f} s ({100 * seconds / budget_seconds:.0f} %{extra})")
    left = budget_seconds - sum(spent.values())
    ending = (f"{left:.0f} s ({100 * left / budget_seconds:.0f} %) unused" if left >= 0
              else f"{-left:.0f} s ({-100 * left / budget_seconds:.0f} %) over")
    return f"budget {format_duration(budget_seconds)} spent: {', '.join(shown)}; {ending}"
