"""The first process of a pod's sandbox: builds its file system, then waits.

Run by ``sandbox.create`` as ``unshare --mount --uts --net --pid --ipc --fork
-- python -I sandbox_init.py`` with its spec (JSON) in ``JHTUTORIAL_SANDBOX_SPEC``, so it is PID 1 of the sandbox's PID
namespace and alone in fresh mount, UTS, network and IPC namespaces. It uses the
standard library only and imports nothing of the project: the folders it hides may
hold the very environment it was started from.

The file system it builds: a staging tmpfs holds the pod's root, itself a tmpfs; the
machine's top-level folders are bound into it, and the volumes' sources are bound
beside it, while the machine's tree is still reachable; then it ``pivot_root``s into
it and detaches the machine's tree before it looks at any path of the pod, so every
such path is resolved inside the sandbox:

- ``/``: a tmpfs holding each of the machine's top-level folders bound read-only,
  nosuid and nodev, with everything mounted below them (and its links as links);
  remounted read-only at the end. Only binds and tmpfs: what root may do on the
  machine and what root of a user namespace may do alike (an overlay over the
  machine's ``/`` cannot be made in a user namespace, which may not take ``/``
  apart from what is mounted below it).
- ``/proc`` of the sandbox's PID namespace (its machine-wide knobs read-only);
  a ``/dev`` of its own (null, zero, full, random, urandom, tty, a new devpts
  instance, a tmpfs ``/dev/shm``); fresh tmpfs ``/tmp`` and ``/run``, as a
  container's writable layer would give; an empty ``/sys``.
- an empty read-only tmpfs over each hidden folder that exists;
- each volume bound at its mount path (read-only when asked). A mount point
  the machine lacks is made without touching the machine: the nearest folder
  above it that the machine has is replaced, inside only, by a tmpfs holding
  binds of each of its entries, and the mount point is made there.

Every mount is made with the C library's ``mount(2)``, never by running a
program: once volumes are in place a program on PATH could be a pod's own.

Once it is built, this process puts itself under the pods' seccomp filter
(:mod:`.seccomp`, loaded by its path before anything is hidden), as every
process entered into the sandbox is: nothing in the sandbox runs without it.

It prints ``ready`` on stdout when done (or ``error: ...`` and exits 1), then
reaps children until it is killed or its stdin, a pipe whose other end only the
sandbox's maker holds, reaches end of file: the maker ended, however it ended.
Its end ends every process of the sandbox: the kernel kills a PID namespace's
processes when its init dies.
"""

from __future__ import annotations

import contextlib
import errno
import ctypes
import json
import os
import runpy
import select
import stat
import signal
import socket
import subprocess
import sys

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# The paths of /proc that runc also makes read-only, and those it masks.
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
PROC_MASKED = ("acpi", "kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi")
OLD_ROOT = "/.old-root"
# The machine's top-level folders a sandbox gets anew instead of bound
FRESH = ("proc", "sys", "dev", "tmp", "run")
VOLUMES = "/.volumes"  # each volume's source, bound here while the machine's tree is still reachable

# mount(2) flags (linux/mount.h)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
MNT_DETACH = 2
# mount_setattr(2) (linux/mount.h; the same system call number on every architecture)
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE = 442, -100, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]

# Mounts are made with the C library's calls, never by running `mount`: once a pod's volumes are in place,
# a program found on PATH could be the pod's own, and this process is root.
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def bind(source: str, target: str, flags: int = 0) -> None:
    mount(source, target, None, MS_BIND)
    if flags:
        mount("none", target, None, MS_REMOUNT | MS_BIND | flags)


def detach(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"umount {target}: {os.strerror(error)}")


def make_mount_point(target: str, like: str) -> None:
    """A folder, or an empty file when ``like`` is a file, at ``target`` (in the sandbox's writable layers)."""
    if os.path.isdir(like):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "a").close()


def build_root(stage: str, spec: dict) -> None:
    """Make the pod's root and move into it; every path of the pod is resolved only after the move.

    The machine's tree is detached before the first volume is mounted: a symbolic link
    a pod left in a volume of its own (say ``sub -> /.old-root/etc``) then leads
    into the sandbox, never to the machine, and a mount path through a link
    (``/var/run`` -> ``/run``) makes its folders in the sandbox's own layers.
    """
    mount("sandbox-stage", stage, "tmpfs", 0, "mode=700")
    root = os.path.join(stage, "root")
    os.mkdir(root, 0o755)
    mount("sandbox-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    for name in sorted(os.listdir("/")):
        if name in FRESH:
            os.mkdir(os.path.join(root, name), 0o755)  # mounted anew below (/sys stays empty)
        else:
            bind_entry(os.path.join("/", name), os.path.join(root, name))
    os.mkdir(root + OLD_ROOT, 0o700)
    os.mkdir(root + VOLUMES, 0o700)
    mount("volumes", root + VOLUMES, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700")
    for number, volume in enumerate(spec["volumes"]):
        # sources are the caller's, resolved on the machine: bound before anything of the pod is looked at
        staged = f"{root}{VOLUMES}/{number}"
        make_mount_point(staged, volume["source"])
        bind(volume["source"], staged)
    subprocess.run(["pivot_root", root, root + OLD_ROOT], check=True, capture_output=True, text=True)
    os.chdir("/")

    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    make_dev("/dev")
    protect_proc()  # after /dev: masking binds /dev/null
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    detach(OLD_ROOT)
    os.rmdir(OLD_ROOT)

    # hidden folders stay writable until the mount points of volumes inside them exist
    hidden = [folder for folder in spec["hidden"] if os.path.isdir(folder)]
    for folder in hidden:
        mount("hidden", folder, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=4k")

    opened: list[str] = []
    # a folder before what is mounted in it (as container runtimes order mounts): a volume bound at /usr
    # (the Python installation, say) must not cover one bound at /usr/local/etc/jupyterhub
    in_order = sorted(enumerate(spec["volumes"]), key=lambda item: item[1]["mount_path"].rstrip("/").count("/"))
    for number, volume in in_order:
        staged = f"{VOLUMES}/{number}"
        make_mount_point_inside(volume["mount_path"], staged, opened)
        bind(staged, volume["mount_path"], MS_NOSUID | MS_NODEV | (MS_RDONLY if volume["read_only"] else 0))

    for folder in hidden + opened:
        mount("none", folder, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | (MS_NOEXEC if folder in hidden else 0))
    detach(VOLUMES)
    os.rmdir(VOLUMES)
    mount("none", "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def bind_entry(source: str, target: str) -> None:
    """``source`` (a folder of the machine, with what is mounted below it, or a file) at ``target``,
    read-only, nosuid and nodev, made in a tmpfs of the sandbox; a link is made again as a link."""
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        os.mkdir(target, 0o755)
        mount(source, target, None, MS_BIND | MS_REC)
        read_only_below(target)
    elif os.path.isfile(source):
        open(target, "a").close()
        mount(source, target, None, MS_BIND)
        read_only_below(target)
    # sockets, pipes and device files at the top of the machine's tree have no place in a pod


def read_only_below(target: str) -> None:
    """Make the mount at ``target`` and every mount below it read-only, nosuid and nodev (mount_setattr)."""
    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    if _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, target.encode(), AT_RECURSIVE, ctypes.byref(attr),
                     ctypes.sizeof(attr)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"make {target} read-only: {os.strerror(error)} (mount_setattr needs Linux 5.12)")


def make_mount_point_inside(mount_path: str, like: str, opened: list[str]) -> None:
    """The mount point for a volume, made in the sandbox's own layers.

    Where the folder it goes in belongs to the machine (a read-only bind), that folder is
    opened first: replaced, inside only, by a tmpfs with binds of each of its entries,
    remembered in ``opened`` to be made read-only once every mount point is made.
    """
    try:
        make_mount_point(mount_path, like)
        return
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
    folder = os.path.dirname(os.path.realpath(mount_path))
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    open_folder(folder)
    opened.append(folder)
    make_mount_point(mount_path, like)


def open_folder(folder: str) -> None:
    """Put a tmpfs over ``folder`` that holds binds of all its entries, so that new ones can be made in it."""
    if folder == "/":
        raise OSError(errno.EROFS, "a mount point directly in / is made at the start only")
    holder = "/.opening"
    os.mkdir(holder, 0o700)
    mount(folder, holder, None, MS_BIND | MS_REC)
    info = os.stat(holder)
    mount("opened", folder, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={stat.S_IMODE(info.st_mode):o}")
    for name in os.listdir(holder):
        bind_entry(os.path.join(holder, name), os.path.join(folder, name))
    detach(holder)
    os.rmdir(holder)


def protect_proc() -> None:
    """Make /proc's machine-wide knobs read-only and mask what leaks the machine's secrets, as container runtimes do.

    Without it a process running as uid 0, even with every capability dropped, can
    write many sysctls of the whole machine: /proc/sys files are owned by root.
    """
    for name in PROC_READ_ONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            bind(path, path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_MASKED:
        path = f"/proc/{name}"
        if os.path.isdir(path):
            mount("masked", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k")
        elif os.path.exists(path):
            bind("/dev/null", path)


def make_dev(dev: str) -> None:
    mount("dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755")
    for name in DEVICES:
        node = os.path.join(dev, name)
        open(node, "a").close()
        bind(f"{OLD_ROOT}/dev/{name}", node)
    os.mkdir(os.path.join(dev, "pts"), 0o755)
    mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.mkdir(os.path.join(dev, "shm"), 0o755)
    mount("shm", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", os.path.join(dev, name))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))


def reap_while_held(lifeline: int) -> None:
    """Reap orphans (PID 1 of a namespace gets them) until ``lifeline`` reaches end of file."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)  # a child's exit makes ``woken`` readable
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        readable, _, _ = select.select([lifeline, woken], [], [])
        if lifeline in readable and not os.read(lifeline, 4096):
            sys.exit(0)  # the maker is gone: so is the sandbox
        if woken in readable:
            os.read(woken, 4096)


def main() -> None:
    # from the environment (readable by root of the sandbox only), not the command line (readable by the pod)
    spec = json.loads(os.environ.pop("JHTUTORIAL_SANDBOX_SPEC"))
    # the filter's module is read now: the folder it is in may be one the sandbox hides
    seccomp = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp.py"))
    syscall_filter = seccomp["Filter"](seccomp["build"]())
    if spec.get("cpus"):  # its namespaces are made (on one CPU): the pod runs on the supervisor's CPUs
        os.sched_setaffinity(0, spec["cpus"])
    try:
        socket.sethostname(spec["hostname"])
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True, text=True)
        build_root(spec["stage"], spec)
        syscall_filter.install()  # this process needs no refused call from here on
    except subprocess.CalledProcessError as error:
        print(f"error: {' '.join(error.cmd)}: {error.stderr.strip()}", flush=True)
        sys.exit(1)
    except OSError as error:
        print(f"error: {error}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    sys.stdout.close()
    os.close(1)
    reap_while_held(0)


if __name__ == "__main__":
    main()
