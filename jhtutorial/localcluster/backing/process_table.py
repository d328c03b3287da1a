"""Facts about one process of the machine, read from /proc."""

from __future__ import annotations

from pathlib import Path


def start_time(pid: int) -> int | None:
    """When a process started (clock ticks since boot): with the pid, it names one process for good."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
