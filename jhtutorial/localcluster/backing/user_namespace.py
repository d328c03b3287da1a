"""The user namespace the supervisor makes its pod sandboxes in: the owner's own, with ids of its own.

Making a sandbox takes privileges: binding namespace files, building pod networks,
running a container as its ``runAsUser``. An owner who is not root gets them in a
user namespace of their own, as rootless container engines do: the owner is root
inside it, and the subordinate ids the machine grants them (``/etc/subuid`` and
``/etc/subgid``, written into the namespace by ``newuidmap``/``newgidmap``) are the
ids 1 to N inside. A pod's uid 1000 is then an id of the machine's that belongs to
the owner's range (say 100999): never the owner's own, never root's, and nothing
outside that range is theirs to touch. Root's supervisor runs in one too, with a
range recorded for root (:func:`ensure_range_for_root`): else a pod's uid 1000 would
be the machine's uid 1000, often a person's account, who could read the pod's files.

The supervisor runs inside (:func:`wrap` is its starting command), in a mount
namespace of its own whose ``/run`` is a tmpfs of its own
(:func:`settle_in`): the namespace files of its sandboxes and pod networks
are bound there. kwok runs outside, as the owner; for ``kubectl exec`` and
``kubectl port-forward`` it first enters the supervisor's namespaces with the words
of :func:`entry_words`.

    >>> wrap(["python", "-m", "jhtutorial.localcluster.backing.supervisor", "..."])   # doctest: +SKIP
    ['unshare', '--user', '--map-root-user', '--map-users=100000,1,65536', ...]
"""

from __future__ import annotations

import base64
import ctypes
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from ...errors import SandboxError
from .process_table import start_time

# Ids a pod may run as: up to 65535 (KubeSpawner's 1000, nobody's 65534); a range of that size is what
# useradd gives each new account by default.
IDS_NEEDED = 65536
SUBORDINATE_FILES = {"uid": Path("/etc/subuid"), "gid": Path("/etc/subgid")}
APPARMOR_RESTRICTION = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
MAX_USER_NAMESPACES = Path("/proc/sys/user/max_user_namespaces")
# What writes the subordinate ids into a user namespace (setuid root), and the packages that carry it
OWNER_PROGRAMS = {"newuidmap": "uidmap", "newgidmap": "uidmap", "unshare": "util-linux", "taskset": "util-linux"}
# Run by kwok, as the owner, in front of a sandbox's enter command: takes the supervisor's user and mount
# namespaces (the sandboxes' namespace files are bound in the latter) and executes the rest of its
# arguments there. The supervisor is named by its PID and its start time, checked after its namespace
# files are open, so a PID reused by another process is refused. Kept readable here and handed to
# python encoded, since kwok splits an exec prefix on white space.
ENTER_SCRIPT = """\
import ctypes, os, sys
pid, started, command = sys.argv[1], sys.argv[2], sys.argv[3:]
user = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
mounts = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
with open(f"/proc/{pid}/stat") as stat:
    if stat.read().rsplit(")", 1)[1].split()[19] != started:
        sys.exit("the supervisor of this pod's sandbox is gone: run `jhtutorial cluster up`")
libc = ctypes.CDLL(None, use_errno=True)
for fd, kind in ((user, 0x10000000), (mounts, 0x00020000)):  # CLONE_NEWUSER, CLONE_NEWNS
    if libc.setns(fd, kind) != 0:
        sys.exit(f"cannot enter the pod's sandbox: {os.strerror(ctypes.get_errno())}")
os.chdir("/")
os.execvp(command[0], command)
"""
_ENTER_WORD = f"exec(__import__('base64').b64decode('{base64.b64encode(ENTER_SCRIPT.encode()).decode()}'))"
MS_NOSUID, MS_NODEV = 2, 4
# CREATION_CPU_WHY: a sandbox's mount namespace file is bound in the supervisor's mount namespace, and the kernel
# refuses to bind the file of a mount namespace numbered below the binder's own (EINVAL: it could make a loop).
# The kernel numbers mount namespaces from batches it hands to each CPU, so one made later on another CPU may
# well get a lower number. So the supervisor's mount namespace and every sandbox's are made on one CPU, where
# each later number is higher. (Binding from the machine's first mount namespace, numbered below all, would not
# need this; the supervisor binds from its own.)
_creation_cpu: int | None = None


def needed() -> bool:
    """Whether the pods' files need a user namespace to be read or removed: the owner is not root."""
    return os.geteuid() != 0


def ensure_range_for_root() -> str | None:
    """Give root a range of subordinate ids for the pods' users when it has none (root only); what was done.

    Root's supervisor runs in a user namespace too, so that a pod's uid 1000 is not the machine's uid 1000
    (often a person's account, who could then read the pod's files and trace its programs). newuidmap
    maps only ranges /etc/subuid and /etc/subgid grant, and a range recorded there is never handed to a
    new account, so one is recorded, above every range already granted.
    """
    if os.geteuid() != 0 or (subordinate_range("uid") and subordinate_range("gid")):
        return None
    if shutil.which("usermod") is None:
        return None  # problems() names the missing range and its fix
    start = free_range_start()
    subprocess.run(["usermod", f"--add-subuids={start}-{start + IDS_NEEDED - 1}",
                    f"--add-subgids={start}-{start + IDS_NEEDED - 1}", "root"],
                   check=True, capture_output=True, text=True)
    return (f"gave root the subordinate ids {start}-{start + IDS_NEEDED - 1} (/etc/subuid, /etc/subgid): "
            "the pods' users are ids of that range on this machine, never an account's")


def inside(pid: int | str = "self") -> bool:
    """Whether a process (this one) runs in a user namespace other than the machine's (its ids are mapped)."""
    try:
        first = Path(f"/proc/{pid}/uid_map").read_text().split()
    except OSError:
        return False
    return first[:3] != ["0", "0", "4294967295"]


def subordinate_range(kind: str, user: str | None = None, uid: int | None = None) -> tuple[int, int] | None:
    """The first range of subordinate ``kind`` ids ("uid" or "gid") granted to the user, as (start, count)."""
    uid = os.getuid() if uid is None else uid
    names = (user or pwd.getpwuid(uid).pw_name, str(uid))
    return next(((start, count) for owner, start, count in _granted(kind) if owner in names), None)


def free_range_start(lowest: int = 100000) -> int:
    """The start of a range of IDS_NEEDED ids above every range granted in /etc/subuid and /etc/subgid
    (files that do not exist yet are made: usermod adds to them only)."""
    for file in SUBORDINATE_FILES.values():
        file.touch(exist_ok=True)
    return max([lowest, *(start + count for kind in SUBORDINATE_FILES for _, start, count in _granted(kind))])


def _granted(kind: str) -> list[tuple[str, int, int]]:
    """Every range in the subordinate ``kind`` ids' file, as (account name or uid, start, count)."""
    try:
        lines = SUBORDINATE_FILES[kind].read_text().splitlines()
    except OSError:
        return []
    fields = (line.strip().split(":") for line in lines)
    return [(f[0], int(f[1]), int(f[2])) for f in fields if len(f) == 3 and f[1].isdigit() and f[2].isdigit()]


def wrap(argv: list[str]) -> list[str]:
    """``argv`` run as root of a new user namespace with the owner's subordinate ids, in a mount namespace of its
    own, made on this process's first CPU (see CREATION_CPU_WHY; :func:`settle_in` lets the program use every CPU)."""
    uids, gids = subordinate_range("uid"), subordinate_range("gid")
    if uids is None or gids is None:
        raise SandboxError("no subordinate id range for this account", fix=_range_fix())
    count = min(uids[1], gids[1], IDS_NEEDED - 1)
    return ["taskset", "--cpu-list", str(min(os.sched_getaffinity(0))),
            "unshare", "--user", "--map-root-user", f"--map-users={uids[0]},1,{count}",
            f"--map-groups={gids[0]},1,{count}", "--mount", "--propagation=private", "--", *argv]


def problems() -> list[SandboxError]:
    """Why the supervisor cannot have a user namespace of the owner's own here, each with its fix (empty: it can).

    Inside one already (the supervisor itself), there is nothing to ask."""
    if inside():
        return []
    found = []
    missing = sorted(name for name in OWNER_PROGRAMS if shutil.which(name) is None)
    if missing:
        packages = " ".join(sorted({OWNER_PROGRAMS[name] for name in missing}))
        found.append(SandboxError(f"the user namespace pod sandboxes are made in needs {', '.join(missing)}",
                                  fix=f"as root: apt-get install {packages} (Debian/Ubuntu)"))
    for kind in ("uid", "gid"):
        granted = subordinate_range(kind)
        if granted is None or granted[1] < IDS_NEEDED - 1:
            have = "none" if granted is None else f"{granted[1]} ids"
            found.append(SandboxError(
                f"pod sandboxes need {IDS_NEEDED - 1} subordinate {kind}s for this account in "
                f"{SUBORDINATE_FILES[kind]} ({have})", fix=_range_fix()))
    if _read_number(MAX_USER_NAMESPACES) == 0:
        found.append(SandboxError("user namespaces are switched off (user.max_user_namespaces = 0)",
                                  fix="as root: sysctl -w user.max_user_namespaces=15000"))
    if _read_number(APPARMOR_RESTRICTION) == 1 and needed():
        found.append(SandboxError(
            "AppArmor keeps accounts that are not root from making user namespaces "
            "(kernel.apparmor_restrict_unprivileged_userns = 1, Ubuntu's default since 24.04)",
            fix="as root: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or start the cluster as root"))
    if found:
        return found
    probe = subprocess.run(wrap(["true"]), capture_output=True, text=True, check=False, timeout=30)
    if probe.returncode != 0:
        found.append(SandboxError(f"a user namespace with this account's subordinate ids cannot be made: "
                                  f"{probe.stderr.strip() or 'unshare failed'}",
                                  fix="check that newuidmap and newgidmap are setuid root and that the ranges "
                                      "in /etc/subuid and /etc/subgid are this account's"))
    return found


def settle_in() -> None:
    """Called first by a supervisor started with :func:`wrap`: remember the CPU its mount namespace was made on,
    run on every CPU again, and mount a tmpfs of its own on /run (inside only), where the sandboxes' and the
    routers' namespace files are bound (the machine's /run belongs to root)."""
    global _creation_cpu
    _creation_cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, range(os.cpu_count() or 1))  # the kernel keeps only the CPUs this process may use
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"run", b"/run", b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=755") != 0:
        error = ctypes.get_errno()
        raise SandboxError(f"cannot mount a /run of the supervisor's own: {os.strerror(error)}")


def on_creation_cpu() -> list[str]:
    """The words that run a program that makes a sandbox's mount namespace on the CPU the supervisor's was made
    on (none outside a user namespace; see CREATION_CPU_WHY)."""
    return [] if _creation_cpu is None else ["taskset", "--cpu-list", str(_creation_cpu)]


def entry_words() -> list[str]:
    """The words that make a command kwok runs (as the owner) continue in this process's namespaces;
    none when this process is in the machine's own."""
    if not inside():
        return []
    pid = os.getpid()
    return [sys.executable, "-I", "-c", _ENTER_WORD, str(pid), str(start_time(pid))]


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything in it, files of the owner's subordinate ids included.

    A pod's volumes hold files its containers made as their own users. An owner who is
    not root cannot delete those on the machine; as root of a user namespace with the
    same ids they can, and nothing more.
    """
    shutil.rmtree(path, ignore_errors=True)
    if not path.exists() and not path.is_symlink():
        return
    if needed() and not problems():
        subprocess.run(wrap(["rm", "-rf", "--one-file-system", "--", str(path)]),
                       capture_output=True, check=False, timeout=120)


def _range_fix() -> str:
    user = pwd.getpwuid(os.getuid()).pw_name
    return (f"as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user} "
            "(pick a range no other account has), or start the cluster as root")


def _read_number(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
