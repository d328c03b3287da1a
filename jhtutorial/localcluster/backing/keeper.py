"""The first process of every backed container: it starts the program and ends every process the program left.

    python -I -S keeper.py SUPERVISOR_PID -- PROGRAM [ARGS...]

In a cluster, a container's processes end with it, whatever they did: the
runtime kills everything in the container's PID namespace and cgroup. A backed
pod's sandbox has a PID namespace, but it is the pod's, shared by its
containers; and the programs start helpers that leave their process group and
session (JupyterLab starts kernels and terminals with ``setsid``; a daemon
forks twice), so killing a process group misses them, and a supervisor killed
with SIGKILL kills nothing at all.

This keeper, outside the sandbox, closes both gaps the way ``tini -s`` does in
the images:

- it is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): a descendant whose
  parent exits is re-parented to the keeper, not to init, whatever session it
  moved to; walking ``/proc`` from the keeper finds every one of them;
- it asks Linux for a signal when the supervisor dies (``PR_SET_PDEATHSIG``,
  and checks its parent once after asking, for a supervisor that died in
  between, and every second after, since the signal follows the supervisor's
  thread that started the keeper, not its process), and then ends its tree;
- when the program exits, the processes it left are ended too (a container
  ends with its main process), and the keeper exits as the program did, so the
  supervisor counts restarts and exit codes as before.

Ending a tree: SIGTERM to every process in it, SIGKILL to what is left after a
grace period shorter than the supervisor's, so the supervisor's own SIGKILL to
the process group (which would orphan what left the group) is never needed.
Only the standard library is used: it starts with ``-I -S`` in milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 7.0  # below the supervisor's STOP_GRACE (pod.py), so the keeper always ends its tree itself
LEFTOVER_GRACE_SECONDS = 2.0  # for what the program left behind once the program itself is gone


def descendants(root: int) -> list[int]:
    """Every process below ``root`` in the process tree (children first found, deepest last)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue += children.get(pid, [])
    return found


class Keeper:
    def __init__(self, supervisor: int, command: list[str]) -> None:
        self.supervisor = supervisor
        self.command = command
        self.program = 0
        self.ending_since: float | None = None  # when the tree was told to end (SIGTERM sent or received)
        self.killed = False

    def run(self) -> int:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGUSR1), 0, 0, 0)
        if os.getppid() != self.supervisor:
            return 1  # the supervisor died before the request above took effect: start nothing
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            # these reach the program too (one process group): only note that the tree is ending
            signal.signal(number, lambda *_: self._ending())
        signal.signal(signal.SIGUSR1, lambda *_: self._check_supervisor())
        signal.signal(signal.SIGALRM, lambda *_: self._tick())
        try:
            # the program starts with default signal handling (exec resets ours) and no timer
            self.program = os.posix_spawnp(self.command[0], self.command, os.environ)
        except OSError as err:
            print(f"cannot start {self.command[0]}: {err}", file=sys.stderr, flush=True)
            return 127
        signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)
        status = self._wait_for_program()
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._end_leftovers()
        return self._exit_code(status)

    def _wait_for_program(self) -> int:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)  # also reaps the orphans re-parented to us
            except ChildProcessError:
                return 0
            if pid == self.program:
                return status

    def _ending(self) -> None:
        if self.ending_since is None:
            self.ending_since = time.monotonic()

    def _check_supervisor(self) -> None:
        if os.getppid() != self.supervisor and self.ending_since is None:
            self._ending()
            self._signal_tree(signal.SIGTERM)  # the supervisor is gone: nobody else will stop us

    def _tick(self) -> None:
        self._check_supervisor()
        if self.ending_since is not None and not self.killed and time.monotonic() - self.ending_since > GRACE_SECONDS:
            self.killed = True
            self._signal_tree(signal.SIGKILL)

    def _signal_tree(self, number: int) -> None:
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, number)
            except (ProcessLookupError, PermissionError):
                pass

    def _end_leftovers(self) -> None:
        """The program is gone: end what it started (SIGTERM, then SIGKILL after a short grace), reap it all."""
        deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS
        self._signal_tree(signal.SIGTERM)
        while descendants(os.getpid()) and time.monotonic() < deadline + LEFTOVER_GRACE_SECONDS:
            self._reap()
            if time.monotonic() > deadline:
                self._signal_tree(signal.SIGKILL)
            time.sleep(0.05)
        self._reap()

    @staticmethod
    def _reap() -> None:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass

    @staticmethod
    def _exit_code(status: int) -> int:
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                signal.signal(number, signal.SIG_DFL)  # end as the program did, so the supervisor reads the same
            except (OSError, ValueError):
                pass  # SIGKILL keeps its default anyway
            os.kill(os.getpid(), number)
            return 128 + number
        return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: keeper.py SUPERVISOR_PID -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    return Keeper(int(argv[0]), argv[2:]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
