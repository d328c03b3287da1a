"""What the backed pods of a namespace take of this machine's memory (read from /proc, as root).

A sandboxed pod's processes are those of its sandbox (its first process, the programs, whatever they started:
kernels, terminals) and, outside it, the ``unshare`` that holds the sandbox and each container's keeper with its
enter command. Summed, per namespace: what one learner's hub, proxy and user servers cost
(``bench/classroom --backed`` measures it; :mod:`jhtutorial.classroom.sizing` keeps the figure).

    >>> used = namespace_memory(status, "learner-1")     # doctest: +SKIP
    >>> used.pss / 2**20, used.processes                 # doctest: +SKIP
    (312.4, 17)

PSS (proportional set size) counts a page shared by n processes as 1/n in each, so the sum over every learner
is the memory they take together; RSS counts shared libraries in full for each process and overstates it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sandbox import processes_in_namespace

Obj = dict[str, Any]


@dataclass(frozen=True)
class Memory:
    rss: int = 0  # bytes
    pss: int = 0
    processes: int = 0

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.rss + other.rss, self.pss + other.pss, self.processes + other.processes)


def namespace_memory(status: Obj, namespace: str) -> Memory:
    """The memory of every process of the namespace's backed pods (``status``: the supervisor's status.json)."""
    pids: set[int] = set()
    for key, report in (status.get("pods") or {}).items():
        if key.startswith(f"{namespace}/"):
            pids |= pod_processes(report)
    return memory_of(pids)


def pod_processes(report: Obj) -> set[int]:
    """A backed pod's processes, from its report in the supervisor's status: its containers' process trees and,
    for a sandboxed pod, everything in its sandbox and the process holding it."""
    children = _children()
    roots = [c["pid"] for c in (report.get("containers") or {}).values() if c.get("pid")]
    if report.get("sandbox_pid"):
        try:
            init = int(report["sandbox_pid"])
            inside = processes_in_namespace(os.readlink(f"/proc/{init}/ns/pid"))
            roots += [init, *inside, _parent(init)]
        except (OSError, ValueError, KeyError):
            pass  # torn down meanwhile: nothing of it to count
    found: set[int] = set()
    while roots:
        pid = roots.pop()
        if pid and pid not in found:
            found.add(pid)
            roots.extend(children.get(pid, ()))
    return found


def memory_of(pids: Iterable[int]) -> Memory:
    total = Memory()
    for pid in pids:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
        except (OSError, ValueError):
            continue  # ended meanwhile
        total += Memory(_kib(fields.get("Rss")), _kib(fields.get("Pss")), 1)
    return total


def _kib(value: str | None) -> int:
    return int(value.split()[0]) * 1024 if value else 0


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.setdefault(_parent(int(entry.name)), []).append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found
