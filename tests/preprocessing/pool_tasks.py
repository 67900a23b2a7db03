"""Task functions for process-pool tests (spawned workers import them from here)."""

from __future__ import annotations

import os


def square_or_fail(n: int) -> int:
    if n == 3:
        raise ValueError("three is refused")
    return n * n


def die_on_two(n: int) -> int:
    if n == 2:
        os._exit(1)  # as if killed for lack of memory
    return n
