"""The time budget (``--budget 30m``): durations parsed and printed, the fewest iterations a budget must buy, and
the error for a budget that buys fewer.

Planning (``plan --budget``) and training (``train --budget``) both read it; it is pure (no torch, no clock).
"""

from __future__ import annotations

import math
import re

from autounet.errors import UserError

PRESETS = ("quick", "standard", "full")
"""The schedule presets' names, which ``--budget`` takes besides a duration."""
UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([a-zA-Z]*)")

MIN_TRAINING_ITERATIONS = 20
"""A time budget must buy at least this many training iterations, or training refuses to start."""


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``30m``, ``2h``, ``1h30m`` or ``1.5h``.

    Example:
        >>> parse_duration("1h30m"), parse_duration("90s")
        (5400.0, 90.0)
    """
    cleaned = text.strip().lower().replace(" ", "")
    parts = list(_PART.finditer(cleaned))
    if not cleaned or "".join(p.group(0) for p in parts) != cleaned:
        raise UserError(f"budget '{text}' is not a duration: write e.g. 90s, 30m, 2h or 1h30m, or a preset "
                        f"({', '.join(PRESETS)}).")
    seconds = 0.0
    for part in parts:
        unit = part.group(2)
        if not unit:
            raise UserError(f"budget '{text}' has a number without a unit: write e.g. {part.group(1)}m or "
                            f"{part.group(1)}s (units: h, m, s).")
        if unit not in UNIT_SECONDS:
            raise UserError(f"budget '{text}' has the unknown unit '{unit}': use h, m or s (e.g. 30m, 2h, 1h30m).")
        seconds += float(part.group(1)) * UNIT_SECONDS[unit]
    if seconds <= 0:
        raise UserError(f"budget '{text}' is zero; give a positive duration such as 30m.")
    return seconds


def time_budget_seconds(budget: str | None) -> float | None:
    """None for a preset name (or no budget), else the duration in seconds; a clear error for anything else."""
    if budget is None or budget.strip().lower() in PRESETS:
        return None
    return parse_duration(budget)


def format_duration(seconds: float) -> str:
    """A short human duration: ``1h30m``, ``12m05s``, ``42s``.

    Example:
        >>> format_duration(5400), format_duration(725), format_duration(41.6), format_duration(0.2)
        ('1h30m', '12m05s', '42s', '0.2s')
    """
    if 0 < seconds < 0.5:
        return f"{seconds:.2g}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_at_least(seconds: float) -> str:
    """:func:`format_duration` rounded up, not to the nearest: a suggested minimum budget that is never too small.

    Example:
        >>> format_at_least(0.5), format_at_least(18.2), format_at_least(3601)
        ('1s', '19s', '1h01m')
    """
    whole = max(1, math.ceil(seconds))
    if whole >= 3600:  # shown to the minute
        whole = math.ceil(whole / 60) * 60
    return format_duration(whole)


class TimeBudgetTooSmallError(UserError):
    """A time budget (--budget) that buys less than the shortest schedule: ``reason`` says why,
    ``smallest_seconds`` is a budget (per fold) that works, so a caller that split a larger budget can restate
    both for it."""

    def __init__(self, reason: str, smallest_seconds: float, budget_seconds: float | None = None):
        self.reason, self.smallest_seconds = reason, smallest_seconds
        budget = "the" if budget_seconds is None else f"a {format_duration(budget_seconds)}"
        super().__init__(f"{budget} budget is too small: {reason}; give --budget {format_at_least(smallest_seconds)} "
                         f"or more.")
