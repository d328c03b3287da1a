"""Start, find, report and stop the local cluster's supervisor (used by ``jhtutorial cluster up/status/down``).

    >>> control = SupervisorControl(state_dir, kubeconfig)     # doctest: +SKIP
    >>> control.ensure_running()                               # started, or the live one kept
    >>> print("\\n".join(control.lines()))
    supervisor:    running (pid 4242), 3 pods backed in sandboxes of their own (namespaces, pod IPs, the pod's user)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..paths import private_dir
from . import user_namespace
from .credentials import TokenLifetime

STOP_SECONDS = 20.0
START_SECONDS = 15.0
# In the supervisor's folder of a cluster made by an earlier version: "processes" when its backed pods ran as
# processes on the machine's loopback (`cluster up --no-sandboxes`, now gone). Only read to say so, then removed.
FORMER_MODE_FILE = "mode"

class SupervisorControl:
    def __init__(self, state_dir: Path, kubeconfig: Path) -> None:
        self.folder = state_dir / "backing"
        self.kubeconfig = kubeconfig
        self.pid_file = self.folder / "supervisor.pid"
        self.log_file = self.folder / "supervisor.log"
        self.status_file = self.folder / "status.json"

    def forget_former_mode(self) -> str | None:
        """Remove what an earlier version recorded about running pods as processes; returns what to tell the
        owner when it did (None otherwise)."""
        former = self.folder / FORMER_MODE_FILE
        try:
            chosen = former.read_text().strip()
        except OSError:
            return None
        former.unlink(missing_ok=True)
        if chosen != "processes":
            return None
        return ("this cluster's pods ran as processes on the machine's loopback (`--no-sandboxes`, chosen earlier): "
                "that way is gone, backed pods now always run in sandboxes of their own")

    def pid(self) -> int | None:
        """The running supervisor's process id, or None (no pid file, or its process is gone or another one)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if b"jhtutorial.localcluster.backing.supervisor" not in command:
            return None
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return None
        return pid

    def ensure_running(self, tokens: TokenLifetime | None = None) -> tuple[int, bool]:
        """Start the supervisor unless one runs; returns (pid, started_now). ``tokens``: the lifetime of the pods'
        ServiceAccount tokens, and when they are renewed, for a supervisor started now (default: the kubelet's)."""
        pid = self.pid()
        done = user_namespace.ensure_range_for_root()
        if done:
            print(done, flush=True)
        wrapped = not user_namespace.problems()
        if pid is not None and self.status().get("sandboxes") is not False and (
                user_namespace.inside(pid) or not wrapped):
            return pid, False
        if pid is not None:
            # an earlier version's: running pods as processes on the machine's loopback, or in sandboxes
            # whose users were the machine's own ids
            self.stop()
        self.stop_leftovers()
        private_dir(self.folder)
        self.status_file.unlink(missing_ok=True)
        command = [sys.executable, "-m", "jhtutorial.localcluster.backing.supervisor",
                   "--kubeconfig", str(self.kubeconfig), "--folder", str(self.folder),
                   *([f"--token-seconds={tokens.seconds}", f"--token-renew-after={tokens.renew_after}"] if tokens else [])]
        if wrapped:
            # root of a user namespace of the owner's own, the pods' users ids of its range (unshare execs the
            # supervisor, so the pid is still its own); if none can be made, it starts as it is, says why and
            # backs no pod
            command = user_namespace.wrap(command)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env=supervisor_environment(os.environ),
            )
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + START_SECONDS
        while not self.status_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the status file appears once it follows the cluster; nothing to wait on
        return process.pid, True

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        """Stop the supervisor (it stops every process it started)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)  # process exit has no event to wait on
            if self.pid() is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.stop_leftovers()
        self.pid_file.unlink(missing_ok=True)

    def stop_leftovers(self) -> None:
        """Remove what a supervisor killed with SIGKILL left of its sandboxes.

        Their processes ended with it (each container's keeper has the kernel tell it when the supervisor dies,
        and a sandbox's first process reads a pipe only the supervisor held)."""
        if os.geteuid() == 0:
            # what a supervisor of an earlier version, running in the machine's own mount namespace, left: its
            # folders, namespace files and pod networks (one in its own user namespace leaves none: they are
            # bound in its own /run, which ends with it)
            from .pod_networks import remove_recorded_routers
            from .sandbox import remove_all
            from .sandboxed_pod import sandbox_prefix

            remove_all(sandbox_prefix(self.folder))
            remove_recorded_routers(self.folder)

    def lines(self) -> list[str]:
        pid = self.pid()
        if pid is None:
            return ["  supervisor:    not running (pods are purely simulated; `jhtutorial cluster up` starts it)"]
        status = self.status()
        pods = status.get("pods", {})
        how = "backed in sandboxes of their own (namespaces, pod IPs, the pod's user)"
        out = [f"  supervisor:    running (pid {pid}), {len(pods)} pod{'s' if len(pods) != 1 else ''} {how}"]
        for key, report in sorted(pods.items()):
            ready = all(c.get("ready") for c in report.get("containers", {}).values())
            programs = ", ".join(f"{name}={c.get('program')}" for name, c in report.get("containers", {}).items())
            out.append(f"    {key}: {programs}{'' if ready else ' (not ready)'}")
        for why in status.get("sandbox_problems", []):
            out.append(f"  no pod backed: sandboxes cannot be made here: {why}")
        for name, why in sorted(status.get("missing", {}).items()):
            out.append(f"  not installed: {name}: {why}")
        log = self.log_file
        out.append(f"  its log:       {log}")
        return out


# Where ip, nft, pivot_root and mount live; the PATH of an account that is not root lacks them on Debian.
SYSTEM_FOLDERS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def supervisor_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The supervisor's environment: the caller's, without KUBECONFIG (it is given its own), with the
    system folders on PATH."""
    env = {k: v for k, v in environ.items() if k != "KUBECONFIG"}
    path = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p]
    env["PATH"] = os.pathsep.join([*path, *(folder for folder in SYSTEM_FOLDERS if folder not in path)])
    return env

