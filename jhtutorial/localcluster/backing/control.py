"""Start, find, report and stop the local cluster's supervisor (used by ``jhtutorial cluster up/status/down``).

    >>> control = SupervisorControl(state_dir, kubeconfig)     # doctest: +SKIP
    >>> control.ensure_running()                               # started, or the live one kept
    >>> print("\\n".join(control.lines()))
    supervisor:    running (pid 4242), 3 pods backed by local processes
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
from . import PROCESSES_WARNING, user_namespace
from .credentials import TokenLifetime
from .process_table import start_time

STOP_SECONDS = 20.0
START_SECONDS = 15.0
LEFTOVER_SECONDS = 12.0  # a keeper ends its program's tree within its grace (keeper.GRACE_SECONDS + 2 s)
# In the supervisor's folder: how backed pods run when it is not the default (sandboxes), chosen when the
# cluster is made or repaired (`jhtutorial cluster up --no-sandboxes` / `--sandboxes`), so every later start keeps it.
MODE_FILE = "mode"
SANDBOXES, PROCESSES = "sandboxes", "processes"

class SupervisorControl:
    def __init__(self, state_dir: Path, kubeconfig: Path) -> None:
        self.folder = state_dir / "backing"
        self.kubeconfig = kubeconfig
        self.pid_file = self.folder / "supervisor.pid"
        self.log_file = self.folder / "supervisor.log"
        self.status_file = self.folder / "status.json"
        self.mode_file = self.folder / MODE_FILE

    @property
    def sandboxes(self) -> bool:
        """Whether backed pods run in sandboxes of their own: yes unless ``--no-sandboxes`` was chosen.

        The other way (processes on the machine's loopback) lets every account on the machine reach the hub,
        so it is never the default, only an explicit choice."""
        try:
            return self.mode_file.read_text().strip() != PROCESSES
        except OSError:
            return True

    def choose_mode(self, sandboxes: bool) -> None:
        """Record how backed pods run; a supervisor running the other way is restarted by ensure_running."""
        private_dir(self.folder)
        self.mode_file.write_text(f"{SANDBOXES if sandboxes else PROCESSES}\n")

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
        if pid is not None and bool(self.status().get("sandboxes")) == self.sandboxes:
            return pid, False
        if pid is not None:
            self.stop()  # it runs pods the other way than the mode now recorded
        self.stop_leftovers()
        private_dir(self.folder)
        self.status_file.unlink(missing_ok=True)
        command = [sys.executable, "-m", "jhtutorial.localcluster.backing.supervisor",
                   "--kubeconfig", str(self.kubeconfig), "--folder", str(self.folder),
                   *(["--sandboxes"] if self.sandboxes else []),
                   *([f"--token-seconds={tokens.seconds}", f"--token-renew-after={tokens.renew_after}"] if tokens else [])]
        if self.sandboxes and user_namespace.needed() and not user_namespace.problems():
            # an owner who is not root: root of a user namespace of their own (unshare execs the supervisor,
            # so the pid is still its own); if that cannot be made, it starts as it is and says why
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

    def stop(self) -> list[int]:
        """Stop the supervisor (it stops every process it started); returns the process groups left, killed."""
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
        killed = self.stop_leftovers()
        self.pid_file.unlink(missing_ok=True)
        return killed

    def stop_leftovers(self) -> list[int]:
        """End the process groups a dead supervisor left behind (recorded in its status file).

        Each group is led by a keeper (keeper.py), which normally ended its tree when the supervisor died.
        One still there gets SIGTERM first, so that it ends the processes that left its group too; SIGKILL
        only for what is left after its grace period."""
        recorded = self.status().get("process_groups", [])
        left = [group for group, started in recorded if start_time(group) == started]  # else gone, or reused
        for group in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + LEFTOVER_SECONDS
        while any(start_time(group) == started for group, started in recorded) and time.monotonic() < deadline:
            time.sleep(0.1)  # process exit has no event to wait on
        for group in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        if self.sandboxes and os.geteuid() == 0:
            # a supervisor killed with SIGKILL ends its sandboxes' processes (their first process reads a pipe only
            # it held), but their folders, namespace files and pod networks stay: this cluster's go now
            from .pod_networks import remove_recorded_routers
            from .sandbox import remove_all
            from .sandboxed_pod import sandbox_prefix

            remove_all(sandbox_prefix(self.folder))
            remove_recorded_routers(self.folder)
        return left

    def lines(self) -> list[str]:
        pid = self.pid()
        if pid is None:
            return ["  supervisor:    not running (pods are purely simulated; `jhtutorial cluster up` starts it)"]
        status = self.status()
        pods = status.get("pods", {})
        how = ("backed in sandboxes of their own (namespaces, pod IPs, the pod's user)" if status.get("sandboxes") else
               "backed by local processes on the machine's loopback, not containers")
        out = [f"  supervisor:    running (pid {pid}), {len(pods)} pod{'s' if len(pods) != 1 else ''} {how}"]
        if not status.get("sandboxes"):
            out.append(f"  WARNING:       {PROCESSES_WARNING}")
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
