"""How many processes the kernel's out-of-memory killer has ended in this process's memory cgroup.

A process killed with SIGKILL may have been ended by the OOM killer or by a person; the cgroup's counter of OOM
kills tells the two apart where the kernel exposes it (cgroup v2 ``memory.events``, v1 ``memory.oom_control``).
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_paths(proc_cgroup: str) -> tuple[str | None, str | None]:
    """This process's (v2 path, v1 memory path) from the text of ``/proc/self/cgroup``."""
    v2 = v1 = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _oom_kill_line(text: str) -> int | None:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def oom_kill_count(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The OOM-kill counter of this process's memory cgroup, or None where the kernel does not show it.

    Example:
        >>> before = oom_kill_count()        # doctest: +SKIP
        >>> ...                              # a worker dies of SIGKILL
        >>> oom_kill_count() > before        # doctest: +SKIP
        True
    """
    try:
        v2, v1 = _cgroup_paths(proc_cgroup.read_text())
    except OSError:
        v2 = v1 = None
    candidates = []
    if v2 is not None:
        candidates += [root / v2.lstrip("/") / "memory.events", root / "memory.events"]
    if v1 is not None:
        candidates += [root / "memory" / v1.lstrip("/") / "memory.oom_control"]
    candidates.append(root / "memory" / "memory.oom_control")
    for candidate in candidates:
        try:
            count = _oom_kill_line(candidate.read_text())
        except OSError:
            continue
        if count is not None:
            return count
    return None
