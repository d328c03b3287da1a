"""A way in to the hub that outlives the notebook that opened it, until it is told to close.

Notebook 07 opens the way in, the learner's browser keeps using it in another tab, and notebook 08 (another
kernel), ``jhtutorial access close`` or ``jhtutorial down`` closes it (``jhtutorial cluster down`` closes every
one to the local cluster it deletes: :mod:`.wayrecord`). So it cannot be a thread or a child
that dies with 07's kernel: it is a ``kubectl port-forward`` in a session of its own (no terminal, no parent
that a kernel's shutdown takes with it), listening on 127.0.0.1 only, and recorded in one small file per
context and namespace, from which any process finds it again:

    $ jhtutorial access open -n jhtutorial        # http://127.0.0.1:8080, until closed
    $ jhtutorial access close -n jhtutorial       # ends that kubectl port-forward, and only that one

Before it ends a recorded process, :func:`close_way_in` checks that the process is still that port-forward
(its command line), so a pid reused by something else after a reboot is never signalled.
Where the hub is reachable without any process (a NodePort this machine can reach), nothing is recorded.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from .access import (SERVICE, Access, check_health, hub_access, kubectl_command, not_backed, port_forward_command,
                     require_deployed)
from .connect import Connection
from .errors import AccessError
from .forwardkeeper import FORWARDING
from .localcluster.paths import state_dir
from .localcluster.ports import PortTaken, on_preferred_port, says_address_in_use
from .wayrecord import WayIn, end_recorded, is_running_forward, log_path, read_record, records_folder, write_record

PREFERRED_PORT = 8080  # the port notebook 05 and the docs type: kubectl port-forward svc/proxy-public 8080:80


def record_path(conn: Connection) -> Path:
    """The file that records the way in of one context's namespace."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", conn.context or "default")
    return records_folder(state_dir()) / f"{safe}--{conn.namespace}.json"


def reopen_command(conn: Connection) -> str:
    return f"jhtutorial access open -n {conn.namespace}"


def close_command(conn: Connection) -> str:
    return f"jhtutorial access close -n {conn.namespace}"


def recorded(conn: Connection) -> WayIn | None:
    """The way in recorded for this namespace, if its process still runs as that port-forward."""
    way = read_record(record_path(conn))
    # a process that ended (a reboot, a kill) is not open, but its record stays until closed, so that the next
    # open takes the same port (see open_way_in)
    return way if way is not None and is_running_forward(way) else None


def open_way_in(conn: Connection, *, local_port: int | None = None, timeout: float = 30.0) -> Access:
    """The hub's URL on this machine, open until :func:`close_way_in`: the recorded way in if it still answers,
    a reachable NodePort or minikube URL (nothing to keep open), else a new detached ``kubectl port-forward``
    on ``local_port`` (another free port, said in a note, when that one is taken). Without ``local_port``:
    the port of this namespace's last way in, so that a browser tab left open on it works again, else 8080."""
    how_to_close = f"it stays open after this notebook; `{close_command(conn)}` (or notebook 08) closes it"
    last = read_record(record_path(conn))  # read once: its port, and whether its process still runs
    if local_port is None:
        # the port of the last way in, whether or not its process still runs: a tab left open on it works again
        local_port = last.port if last is not None else PREFERRED_PORT
    way = last if last is not None and is_running_forward(last) else None
    if way is not None:
        access = _access(conn, way, [f"open since earlier (kubectl port-forward, pid {way.pid}); {how_to_close}"])
        if check_health(access, timeout) is None:
            return access
        close_way_in(conn)  # it runs but no longer reaches the hub (the proxy pod was replaced): open a new one
    if conn.cluster_kind not in ("local", "kind"):
        with contextlib.suppress(AccessError):
            reachable = hub_access(conn, method="minikube" if conn.cluster_kind == "minikube" else "nodeport",
                                   timeout=min(timeout, 10.0))
            return reachable  # a URL no process of ours carries: nothing to close later
    require_deployed(conn, through="deployments")
    problem = not_backed(conn) if conn.cluster_kind == "local" else None
    if problem:
        return Access(None, "simulated", f"kubectl port-forward -n {conn.namespace} svc/{SERVICE} 8080:80",
                      [problem], simulated=True)
    way, port_note = on_preferred_port(local_port, lambda port: _start_detached(conn, port, timeout))
    notes = [f"{port_note}: forwarding from port {way.port} instead"] if port_note else []
    access = _access(conn, way, [*notes, f"a `kubectl port-forward` process (pid {way.pid}) carries the "
                                          f"connections; {how_to_close}"])
    deadline = time.monotonic() + timeout
    problem = check_health(access, timeout)
    while problem is not None and time.monotonic() < deadline:
        time.sleep(0.5)  # a hub still starting: CHP answers 503 until its route's target does
        problem = check_health(access, max(1.0, deadline - time.monotonic()))
    if problem is not None:
        close_way_in(conn)
        raise AccessError(f"the way in opened but the hub does not answer: {problem}",
                          fix=f"check the proxy pod: kubectl get pods -n {conn.namespace}")
    return access


def close_way_in(conn: Connection) -> WayIn | None:
    """End the recorded way in of this namespace; returns the one it closed, or None when none was open."""
    return end_recorded(record_path(conn))


def _access(conn: Connection, way: WayIn, notes: list[str]) -> Access:
    return Access(way.url, "kubectl", f"kubectl port-forward -n {conn.namespace} svc/{SERVICE} {way.port}:80",
                  notes, simulated=conn.cluster_kind == "local")


def _start_detached(conn: Connection, local_port: int, timeout: float) -> WayIn:
    binary = kubectl_command(conn)
    if binary is None:
        raise AccessError("kubectl is not installed here", fix="install kubectl, or open the way in yourself")
    args, env = port_forward_command(binary, conn, local_port)
    # under a keeper that starts it again on the same port: kubectl ends for good on one broken connection
    args = [sys.executable, "-m", "jhtutorial.forwardkeeper", *args]
    log = _log_path(conn)
    log.parent.mkdir(parents=True, exist_ok=True)
    # Its output goes to a file, not a pipe: a pipe's reader would die with this process, and kubectl,
    # which writes a line per connection, would then stop on a full or broken pipe.
    with log.open("w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    # Reap it if it ends while this process lives (08 closing it from another kernel); once this process is
    # gone, init does.
    threading.Thread(target=process.wait, name=f"way-in-{process.pid}", daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = FORWARDING.search(text)
        if found:
            way = WayIn(process.pid, int(found.group(1)), conn.namespace, conn.context or "", conn.server)
            write_record(record_path(conn), way)
            return way
        if process.poll() is not None:
            log.unlink(missing_ok=True)  # nothing runs that it could tell about
            if local_port and says_address_in_use(text):
                raise PortTaken(local_port, "kubectl: " + text.strip().splitlines()[-1])
            raise AccessError(f"`kubectl port-forward` ended at once: {text.strip()[-400:]}")
        time.sleep(0.1)
    process.terminate()
    text = log.read_text(errors="replace")
    log.unlink(missing_ok=True)
    raise AccessError(f"`kubectl port-forward` did not start within {timeout:.0f} s: {text[-400:]}")


def _log_path(conn: Connection) -> Path:
    return log_path(record_path(conn))

