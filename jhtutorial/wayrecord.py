"""The records of the ways in that ``jhtutorial access open`` left running, and how one ends.

Each way in (:mod:`.wayin`) is a keeper (:mod:`.forwardkeeper`) running ``kubectl port-forward``, recorded in one
file per context and namespace under the local cluster's state folder::

    ~/.local/state/jhtutorial/ways-in/kwok-jhtutorial--jhtutorial.json     {"pid": ..., "port": 8080, "server": ...}
    ~/.local/state/jhtutorial/ways-in/classroom-room-1--room-1.json         (one per learner who logged in)

Reading and ending them needs no connection to the cluster, so the local cluster's ``down`` ends the ways in to
its API server (:func:`close_ways_in_to`) before it stops that server: otherwise their keepers would start
kubectl again and again against an address nothing answers at any more, holding their local ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

from . import forwardkeeper

END_GRACE_SECONDS = 5.0  # how long a keeper (and its kubectl) may take to end on SIGTERM before SIGKILL


@dataclass(frozen=True)
class WayIn:
    """A recorded ``kubectl port-forward``: its keeper's process and where it listens."""

    pid: int
    port: int
    namespace: str
    context: str
    server: str = ""  # the API server kubectl talks to ("" in records written before it was kept)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def records_folder(state: Path) -> Path:
    """Where the ways in are recorded, for the local cluster state folder ``state``."""
    return state / "ways-in"


def read_record(path: Path) -> WayIn | None:
    """The way in a record file names, whether or not its process still runs (None: no readable record)."""
    try:
        return WayIn(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_record(path: Path, way: WayIn) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(way)))


def log_path(record: Path) -> Path:
    """The keeper's output (kubectl's lines), beside its record."""
    return record.with_suffix(".log")


def is_running_forward(way: WayIn) -> bool:
    """Does the recorded process still run, as that keeper of a port-forward (not a program that reused its pid
    after a reboot, which must never be signalled)?"""
    if not running(way.pid):
        return False
    try:
        argv = Path(f"/proc/{way.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [a.decode(errors="replace") for a in argv]
    return forwardkeeper.__name__ in words and "port-forward" in words and way.namespace in words


def end_recorded(record: Path) -> WayIn | None:
    """End the way in recorded in ``record``: its keeper, the kubectl it runs, so that the port is free; remove the
    record and its log. Returns the way in it ended, or None when none was running."""
    way = read_record(record)
    record.unlink(missing_ok=True)
    log_path(record).unlink(missing_ok=True)
    if way is None or not is_running_forward(way):
        return None
    kubectls = _children(way.pid)  # read before the keeper ends: then they would be init's, not found by parent
    _end([way.pid])
    _end(kubectls)  # the keeper ends its kubectl first; this is for a keeper that had to be killed
    return way


def close_ways_in_to(state: Path, server: str) -> list[WayIn]:
    """End every way in recorded in the state folder ``state`` whose kubectl talks to the API server at
    ``server`` (whatever its context or namespace: a classroom has one per learner who logged in). Ways in to
    other clusters, recorded in the same folder, stay open; so do records without a server (written before the
    server was recorded: which cluster they reach cannot be told)."""
    closed = []
    for record in sorted(records_folder(state).glob("*.json")):
        way = read_record(record)
        if way is not None and way.server and same_server(way.server, server):
            ended = end_recorded(record)
            if ended is not None:
                closed.append(ended)
    return closed


def same_server(first: str, second: str) -> bool:
    """Do two API server URLs name the same server (``localhost`` and ``127.0.0.1`` alike)?"""

    def key(url: str) -> tuple[str, str, int | None]:
        parts = urllib.parse.urlsplit(url.strip().rstrip("/"))
        host = parts.hostname or ""
        return parts.scheme, "127.0.0.1" if host in ("localhost", "::1") else host, parts.port

    return key(first) == key(second)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; its parent has not reaped it yet


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _end(pids: list[int]) -> None:
    """SIGTERM, then SIGKILL to whatever still runs after the grace period."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + END_GRACE_SECONDS
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)  # another process's exit has nothing to wait on
    for pid in pids:
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
