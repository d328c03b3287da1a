"""What ends a `kubectl exec` session's processes in a pod's sandbox when its client goes away.

On a node, an exec whose kubectl is killed or disconnected leaves its command
running in the container as often as not (containerd and CRI-O wait for it to
exit on its own; a shell on a terminal is never hung up). A classroom's pods
would then fill with the shells of closed windows. Here the patched kwok sends
its command SIGHUP when the client's connection ends (patches/README.md), as a
terminal that closes does, and this script, in the exec's command on the machine
right before the sandbox is entered, passes that on to every process the exec
started in the sandbox.

It runs as root of the supervisor's user namespace (or of the machine), before
the sandbox is entered, and puts the rest of the command (``setpriv ... sandbox_enter.py
... COMMAND``) in a session of its own, so that the exec's processes inside are
told apart from the pod's and from other execs': they are the processes of the
sandbox's PID namespace in that session, or in the one a shell on a terminal
opens below it (``setsid --ctty``). On SIGHUP it sends them SIGHUP and SIGCONT,
waits ``GRACE`` seconds, and kills what is left. A process that left both
sessions on purpose (``setsid``, a daemon) stays, as it would on a node.

Otherwise it is transparent: it exits as the command does (its code; 128 plus
the signal's number when a signal ended it, as a container runtime reports it, so
that kubectl says "command terminated with exit code 137"; the signals the
command starts with are reset by ``sandbox_enter.py``, after it), and, when the command has ended while
processes of its session still hold its output pipes (``sh -c 'sleep 600 &'``),
waits for them, as kwok does anyway before the exec ends, so that they are hung
up too if the client leaves meanwhile.

Standard library only; handed to ``python -I -c`` as one word (kwok splits a prefix on white space).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

GRACE_SECONDS = 2.0
SCRIPT = f"""\
import os, signal, stat, sys, time
GRACE = {GRACE_SECONDS}
pid_namespace = f"pid:[{{os.stat(sys.argv[1]).st_ino}}]"
command = sys.argv[2:]
WAKERS = {{signal.SIGHUP, signal.SIGCHLD}}

def members(sessions):
    found = []
    for entry in os.listdir("/proc"):
        try:
            if not entry.isdigit() or os.readlink(f"/proc/{{entry}}/ns/pid") != pid_namespace:
                continue
            with open(f"/proc/{{entry}}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in "ZX" and int(fields[3]) in sessions:
            found.append(int(entry))
    return found

def signal_all(pids, *signals):
    for number in signals:
        for pid in pids:
            try:
                os.kill(pid, number)
            except OSError:
                pass

def hang_up(sessions):
    signal_all(members(sessions), signal.SIGHUP, signal.SIGCONT)
    deadline = time.monotonic() + GRACE
    while members(sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(100):
        left = members(sessions)
        if not left:
            return
        signal_all(left, signal.SIGKILL)
        time.sleep(0.02)

def sessions_of(child):
    try:
        with open(f"/proc/{{child}}/task/{{child}}/children") as file:
            return {{child, *map(int, file.read().split())}}
    except OSError:
        return {{child}}

def output_pipes():
    pipes = set()
    for fd in (1, 2):
        try:
            found = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISFIFO(found.st_mode):
            pipes.add((found.st_dev, found.st_ino))
    return pipes

def holds(pids, pipes):
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{{pid}}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                found = os.stat(f"/proc/{{pid}}/fd/{{fd}}")
            except OSError:
                continue
            if (found.st_dev, found.st_ino) in pipes:
                return True
    return False

def hung_up(timeout=None):
    info = signal.sigwaitinfo(WAKERS) if timeout is None else signal.sigtimedwait(WAKERS, timeout)
    return info is not None and info.si_signo == signal.SIGHUP

signal.pthread_sigmask(signal.SIG_BLOCK, WAKERS)
child = os.fork()
if child == 0:
    os.setsid()  # the command's signals are sandbox_enter.py's to reset: every one, right before it executes
    try:
        os.execvp(command[0], command)
    except OSError as error:
        sys.stderr.write(f"{{command[0]}}: {{error.strerror}}\\n")
        os._exit(127)
while True:
    done, status = os.waitpid(child, os.WNOHANG)
    if done:
        break
    if hung_up():
        hang_up(sessions_of(child))
pipes = output_pipes()
while pipes and holds(members({{child}}), pipes):
    if hung_up(0.5):
        hang_up({{child}})
os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
"""
_WORD = f"exec(__import__('base64').b64decode('{base64.b64encode(SCRIPT.encode()).decode()}'))"


def words(pid_namespace_file: Path) -> list[str]:
    """The words that run the rest of a command (appended after them) as an exec session of the sandbox whose
    PID namespace is bound at ``pid_namespace_file``."""
    return [sys.executable, "-I", "-c", _WORD, str(pid_namespace_file)]
