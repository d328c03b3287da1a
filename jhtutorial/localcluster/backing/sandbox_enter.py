"""Enter a pod's sandbox as its user, under its seccomp filter, and run a command there.

    python -I -S sandbox_enter.py NAMESPACES UID -- COMMAND [ARGS...]

The last privileged step of :meth:`.sandbox.Sandbox.enter_command`, after ``setpriv``
(which set the group, the supplementary groups, no_new_privs and a bounding set of
the three capabilities this needs). It does what util-linux ``nsenter --setuid``
did, with one step more between entering and executing: it enters the
sandbox's IPC, UTS, network, PID and mount namespaces by the files in the
folder NAMESPACES (the mount namespace last: it also makes the sandbox's root
this process's root), forks (a PID namespace takes only children), and in the
child switches to UID (which clears every capability), installs the pod's
seccomp filter (:mod:`.seccomp`) and executes COMMAND, found on the PATH inside.
The parent waits and ends as the child did, as nsenter's does.

Why not nsenter: the filter refuses ``setns``, so it can only be installed after
entering; and nothing of the sandbox's own file system may run before it, since a
pod's volume can stand at any path inside (over ``/usr/bin``, say) and a program
found there would run unfiltered. nsenter executes the command right after
entering, so the filter has to be installed by the process that entered.

Once the mount namespace is entered every path is the pod's, so this process
reads no file after that: the filter is built, the C library's functions looked
up and the command's words encoded before, and afterwards it only makes system
calls (through ``os`` and ``ctypes``, whose modules are loaded already) until
``execvp`` replaces it. Standard library only; it imports nothing of the
project (the filter's module is loaded by its path).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys

# The namespaces entered, in this order (the mount namespace last), with the CLONE_NEW* type setns checks the
# file against. Their files' names are those sandbox.py binds them under.
NAMESPACES = (("ipc", 0x08000000), ("uts", 0x04000000), ("net", 0x40000000), ("pid", 0x20000000),
              ("mnt", 0x00020000))
# An ignored or blocked signal stays so across exec, and what started this may have ignored some: Python ignores
# SIGPIPE and SIGXFSZ at its start (`yes | head` must end by SIGPIPE), a shell's background job SIGINT and SIGQUIT,
# nohup SIGHUP. A container's process starts with every signal at its default, unblocked, so this one's are reset.
# The C library refuses its own signals (32 and 33, for threads) to sigaction and leaves them out of its full set,
# so every number is taken, and set with the system call itself: rt_sigaction's number on each machine the seccomp
# filter knows.
RESET_SIGNALS = tuple(number for number in range(1, signal.NSIG) if number not in (signal.SIGKILL, signal.SIGSTOP))
RT_SIGACTION = {"x86_64": 13, "aarch64": 134}
USAGE = "usage: sandbox_enter.py NAMESPACES UID -- COMMAND [ARGS...]"


def module_beside(file_name: str) -> dict[str, object]:
    """The names a module beside this script defines, read from the machine's file system and run now (an import
    would look on sys.path; runpy.run_path, which the sandbox's first process uses, adds some 60 ms to every entry)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), file_name)
    with open(path, "rb") as source:
        names: dict[str, object] = {"__name__": file_name.removesuffix(".py")}
        exec(compile(source.read(), path, "exec"), names)  # noqa: S102 - the project's own file
    return names


def fail(message: str, code: int) -> None:
    os.write(2, f"{message}\n".encode())
    os._exit(code)


def run_command(uid: int, syscall_filter: object, execvp: object, words: ctypes.Array[ctypes.c_char_p]) -> None:
    """In the child, inside: become the pod's user, take the filter, execute (only returns by exiting)."""
    name = words[0].decode(errors="replace")
    try:
        os.setuid(uid)
        syscall_filter.install()  # type: ignore[attr-defined]
    except OSError as error:
        fail(f"cannot run {name} in the pod's sandbox: {error.strerror}", 1)
    execvp(words[0], words)  # type: ignore[operator]
    error = ctypes.get_errno()
    fail(f"cannot run {name}: {os.strerror(error)}", 127 if error == errno.ENOENT else 126)  # as a shell says


def end_as(child: int) -> None:
    """Wait for ``child`` and end as it did: its exit code, or killed by its signal (stopped with it, too)."""
    while True:
        _, status = os.waitpid(child, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            break
        os.kill(os.getpid(), signal.SIGSTOP)
        os.kill(child, signal.SIGCONT)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL's cannot be changed, and needs no change
        os.kill(os.getpid(), number)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--" or not argv[1].isdigit():
        fail(USAGE, 2)
    folder, uid, command = argv[0], int(argv[1]), argv[3:]
    # everything that reads the machine's files, before entering
    seccomp = module_beside("seccomp.py")
    syscall_filter = seccomp["Filter"](seccomp["build"]())
    libc = ctypes.CDLL(None, use_errno=True)
    setns, execvp = libc.setns, libc.execvp
    words = (ctypes.c_char_p * (len(command) + 1))(*(os.fsencode(word) for word in command), None)
    files = []
    for kind, flag in NAMESPACES:
        try:
            files.append((kind, os.open(os.path.join(folder, kind), os.O_RDONLY | os.O_CLOEXEC), flag))
        except OSError as error:
            fail(f"cannot open the sandbox's {kind} namespace ({folder}): {error.strerror}", 1)
    default_action = (ctypes.c_ulong * 4)()  # the kernel's struct sigaction, all zero: SIG_DFL, no flags, no mask
    for number in RESET_SIGNALS:
        libc.syscall(RT_SIGACTION[os.uname().machine], number, ctypes.byref(default_action), None, 8)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())

    for kind, descriptor, flag in files:
        if setns(descriptor, flag) != 0:
            fail(f"cannot enter the sandbox's {kind} namespace: {os.strerror(ctypes.get_errno())}", 1)
        os.close(descriptor)
    child = os.fork()
    if child == 0:
        run_command(uid, syscall_filter, execvp, words)
    end_as(child)


if __name__ == "__main__":
    main(sys.argv[1:])
