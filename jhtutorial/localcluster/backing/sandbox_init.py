"""The first process of a pod's sandbox: builds its file system, then waits.

Run by ``sandbox.create`` as ``unshare --mount --uts --net --pid --ipc --fork
-- python -I sandbox_init.py SPEC_JSON``, so it is PID 1 of the sandbox's PID
namespace and alone in fresh mount, UTS, network and IPC namespaces. It uses the
standard library only and imports nothing of the project: the folders it hides may
hold the very environment it was started from.

The file system it builds: a staging tmpfs holds an overlay, the pod's root, and
it ``pivot_root``s into it before anything else, so that every path of the pod
is resolved inside the sandbox, never against the machine's root:

- ``/``: an overlay whose lower layer is the machine's root file system and whose
  upper layer is in the staging tmpfs, so mount points for volumes can be made
  without touching the machine; remounted read-only once they exist.
- ``/proc`` of the sandbox's PID namespace; a ``/dev`` of its own (null, zero,
  full, random, urandom, tty, a new devpts instance, a tmpfs ``/dev/shm``); fresh
  tmpfs ``/tmp`` and ``/run``, as a container's writable layer would give.
- an empty read-only tmpfs over each hidden folder that exists;
- each volume bound at its mount path (read-only when asked), from the machine's
  tree kept at ``/.old-root`` until the end, then detached.

It prints ``ready`` on stdout when done (or ``error: ...`` and exits 1), then
reaps children until it is killed. Killing it ends every process of the sandbox:
the kernel kills a PID namespace's processes when its init dies.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# The paths of /proc that runc also makes read-only, and those it masks.
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
PROC_MASKED = ("acpi", "kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi")


def mount(*args: str) -> None:
    run("mount", *args)


OLD_ROOT = "/.old-root"


def build_root(stage: str, spec: dict) -> None:
    """Make the pod's root and move into it; every path of the pod is resolved only after the move.

    A mount path is resolved inside the new root, never against the machine's: a
    symbolic link on the way (``/var/run`` -> ``/run``) then leads into the
    sandbox's own folders, and nothing is created on the machine.
    """
    mount("-t", "tmpfs", "-o", "mode=700", "sandbox-stage", stage)
    for name in ("upper", "work", "root"):
        os.mkdir(os.path.join(stage, name), 0o755)
    root = os.path.join(stage, "root")
    mount("-t", "overlay", "-o", f"lowerdir=/,upperdir={stage}/upper,workdir={stage}/work", "sandbox-root", root)
    os.mkdir(os.path.join(root, OLD_ROOT.lstrip("/")), 0o700)
    run("pivot_root", root, os.path.join(root, OLD_ROOT.lstrip("/")))
    os.chdir("/")

    mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", "/proc")
    make_dev("/dev")
    protect_proc()  # after /dev: masking binds /dev/null
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", "/tmp")
    mount("-t", "tmpfs", "-o", "mode=755,nosuid,nodev", "tmpfs", "/run")

    # hidden folders stay writable until the mount points of volumes inside them exist
    hidden = [folder for folder in spec["hidden"] if os.path.isdir(folder)]
    for folder in hidden:
        mount("-t", "tmpfs", "-o", "mode=755,size=4k,nosuid,nodev,noexec", "hidden", folder)

    for volume in spec["volumes"]:
        source = OLD_ROOT + volume["source"]  # resolved by the caller on the machine
        target = volume["mount_path"]
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "a").close()
        mount("--bind", source, target)
        mount("-o", "remount,bind,nosuid,nodev" + (",ro" if volume["read_only"] else ""), target)

    for folder in hidden:
        mount("-o", "remount,ro", folder)
    run("umount", "--lazy", OLD_ROOT)
    os.rmdir(OLD_ROOT)
    mount("-o", "remount,ro", "/")


def protect_proc() -> None:
    """Make /proc's machine-wide knobs read-only and mask what leaks the machine's secrets, as container runtimes do.

    Without it a process running as uid 0, even with every capability dropped, can
    write many sysctls of the whole machine: /proc/sys files are owned by root.
    """
    for name in PROC_READ_ONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            mount("--bind", path, path)
            mount("-o", "remount,bind,ro,nosuid,nodev,noexec", path)
    for name in PROC_MASKED:
        path = f"/proc/{name}"
        if os.path.isdir(path):
            mount("-t", "tmpfs", "-o", "ro,size=4k,nosuid,nodev,noexec", "masked", path)
        elif os.path.exists(path):
            mount("--bind", "/dev/null", path)


def make_dev(dev: str) -> None:
    mount("-t", "tmpfs", "-o", "mode=755,nosuid,noexec", "dev", dev)
    for name in DEVICES:
        node = os.path.join(dev, name)
        open(node, "a").close()
        mount("--bind", f"{OLD_ROOT}/dev/{name}", node)
    os.mkdir(os.path.join(dev, "pts"), 0o755)
    mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620,nosuid,noexec", "devpts", os.path.join(dev, "pts"))
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.mkdir(os.path.join(dev, "shm"), 0o755)
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "shm", os.path.join(dev, "shm"))
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", os.path.join(dev, name))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))


def run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, text=True)


def reap_forever() -> None:
    # PID 1 of a namespace: orphans are re-parented here and must be reaped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGCHLD, lambda *_: None)  # so that pause() wakes for an orphan's exit
    while True:
        try:
            os.wait()
        except ChildProcessError:
            signal.pause()


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        socket.sethostname(spec["hostname"])
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True, text=True)
        build_root(spec["stage"], spec)
    except subprocess.CalledProcessError as error:
        print(f"error: {' '.join(error.cmd)}: {error.stderr.strip()}", flush=True)
        sys.exit(1)
    except OSError as error:
        print(f"error: {error}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    sys.stdout.close()
    os.close(1)
    reap_forever()


if __name__ == "__main__":
    main()
