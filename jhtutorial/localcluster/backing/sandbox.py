"""A pod's sandbox: a container without an image.

A sandbox is a set of Linux namespaces of its own (mount, UTS, network, PID, IPC)
whose file system is
the machine's own, read-only, with what belongs to no pod hidden and the pod's
volumes bound at their mount paths. ``sandbox_init.py`` builds it as the
sandbox's PID 1; this module starts that process, names its namespaces, runs
programs inside as a given user, and tears it all down.

    >>> box = create(SandboxSpec(key="tutorial.hub-0", hostname="hub-0",
    ...                          volumes=(Volume(Path("/srv/pods/db"), "/srv/jupyterhub"),),
    ...                          hidden=(Path.home(),)))        # doctest: +SKIP
    >>> box.run(["id", "-u"], RunAs(uid=1000, gid=1000))      # doctest: +SKIP
    >>> box.teardown()                                          # doctest: +SKIP

Entering is util-linux ``setpriv``, which sets the groups, no_new_privs and
a bounding set of only what entering needs, followed by ``sandbox_enter.py``,
which enters the namespaces by the files this module binds (never by a PID that
could be reused once the sandbox is gone), switches to the pod's uid (which
clears every capability), installs the pod's seccomp filter (:mod:`.seccomp`)
and executes the command. Their order is fixed by :meth:`Sandbox.enter_command`,
which kwok's Exec prefix and the runtime use alike. The sandbox's first process
runs under the same filter once the sandbox is made, so every process in it has
one.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ...errors import SandboxError
from . import seccomp, user_namespace
from .exec_session import words as exec_session_words

INIT_SCRIPT = Path(__file__).with_name("sandbox_init.py")
ENTER_SCRIPT = Path(__file__).with_name("sandbox_enter.py")
SPEC_VARIABLE = "JHTUTORIAL_SANDBOX_SPEC"  # how sandbox_init.py gets its spec (the same name there)
# Namespaces entered to run something inside, by the names of their files in /proc/PID/ns (and in
# sandbox_enter.py); the files are bound under the sandbox's folder so that they outlive no one and can be
# entered without a PID.
NAMESPACES = ("mnt", "uts", "ipc", "net", "pid")
READY_TIMEOUT = 20.0
# A sandbox's record in its folder: key, hostname and the PID of its first process.
RECORD = "sandbox.json"
# Run inside a sandbox for one `kubectl port-forward` connection: kwok hands the stream over as stdin and
# stdout; this copies it to and from PORT on the pod's own loopback (sys.argv[1]). The machine's own python3,
# standard library only, so it needs nothing of the project inside.
PORT_FORWARD_RELAY = """\
import os, socket, sys, threading
conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def upstream():
    while data := os.read(0, 65536):
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := conn.recv(65536):
    os.write(1, data)
"""
# What sandbox_enter.py needs to enter the namespaces (sys_admin, sys_chroot) and switch to the pod's uid
# (setuid): the only capabilities left in the bounding set, and none of them effective once the uid is the pod's.
ENTER_CAPABILITIES = "+sys_admin,+sys_chroot,+setuid"
# For a command on a terminal, run on the machine before entering: the session leader (this process, which
# kwok started with the terminal as its controlling one) gives the terminal up, ignoring the SIGHUP that
# giving it up sends, so that a session inside the sandbox can take it without privileges. One word, as
# kwok splits its prefix on white space.
RELEASE_TERMINAL = ";".join([
    "fcntl,os,signal,sys,termios=map(__import__,('fcntl','os','signal','sys','termios'))",
    "signal.signal(signal.SIGHUP,signal.SIG_IGN)",
    "fcntl.ioctl(0,termios.TIOCNOTTY)if(os.isatty(0)and(os.getsid(0)==os.getpid()))else(None)",
    "signal.signal(signal.SIGHUP,signal.SIG_DFL)",
    "os.execvp(sys.argv[1],sys.argv[1:])",
])
# For a container's environment kept in a file (a JSON object of names and values), run on the machine before
# entering: the environment becomes the file's, then the next word is executed. Values taken from Secrets then
# appear on no command line (any account of the machine may read /proc/PID/cmdline) and in no kwok object
# (which the cluster's admin reads), and `kubectl exec` gets the environment the container's program got. One
# word, as kwok splits its prefix on white space.
ENVIRONMENT_FROM_FILE = ";".join([
    "json,os,sys=map(__import__,('json','os','sys'))",
    "os.execve(sys.argv[2],sys.argv[2:],json.load(open(sys.argv[1],encoding='utf-8')))",
])
# PATH inside a sandbox: the machine's programs, as a container's default PATH.
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# Where sandboxes keep their namespace files and staging folders: /run, which a reboot empties, as the
# namespaces themselves are gone then (for an owner who is not root, the /run of the supervisor's own mount
# namespace, which ends with it).
RUNTIME_ROOT = Path("/run/jhtutorial/sandboxes")


@dataclass(frozen=True)
class Volume:
    """A folder (or file) the caller prepared, bound at ``mount_path`` inside."""

    source: Path
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class RunAs:
    """The user a process runs as inside (a container's runAsUser/runAsGroup/supplementalGroups)."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandbox is made of. ``key`` names it on the machine (unique per pod)."""

    key: str
    hostname: str
    volumes: tuple[Volume, ...] = ()
    hidden: tuple[Path, ...] = field(default_factory=tuple)


def checked_mount_path(mount_path: str, *, where: str) -> str:
    """The normalised absolute mount path, or SandboxError if it is relative or climbs with ``..``."""
    path = PurePosixPath(mount_path)
    if not path.is_absolute():
        raise SandboxError(
            f"{where}: mountPath {mount_path!r} is relative",
            fix="give the volume an absolute mountPath, as Kubernetes requires (e.g. /srv/data)",
        )
    if ".." in path.parts:
        raise SandboxError(
            f"{where}: mountPath {mount_path!r} contains '..'",
            fix="write the mountPath without '..' (a pod may not mount outside the place it names)",
        )
    if path == PurePosixPath("/"):
        raise SandboxError(f"{where}: mountPath '/' would replace the pod's whole file system", fix="mount the volume in a folder")
    return str(path)


@dataclass
class Sandbox:
    """A running sandbox: its folder of namespace files and its PID 1 (as seen from the machine)."""

    spec: SandboxSpec
    folder: Path
    init_pid: int
    _unshare: subprocess.Popen[str] | None = None
    # The write end of the pipe that is the sandbox's PID 1's stdin; only its maker holds it. When the maker
    # ends, however it ends (SIGKILL included), the kernel closes it, PID 1 reads end of file and exits, and
    # the kernel ends every process of the sandbox: nothing of a pod outlives its supervisor.
    _lifeline: int | None = None

    def namespace_file(self, kind: str) -> Path:
        return self.folder / "ns" / kind

    @property
    def net_namespace(self) -> Path:
        """The network namespace file, for ``nsenter --net=`` or ``ip netns attach``."""
        return self.namespace_file("net")

    def environment(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a process inside: ``env``, plus PATH and HOSTNAME when it has none."""
        return {"PATH": SANDBOX_PATH, "HOSTNAME": self.spec.hostname, **(env or {})}

    def enter_command(self, user: RunAs, env: Mapping[str, str] | None = None, *, env_file: Path | None = None,
                      terminal: bool = False, exec_session: bool = False) -> list[str]:
        """The words that run a command (appended after them) inside, as ``user``, unprivileged.

        Nothing of the sandbox's own file system runs with privileges: a pod's volume may be mounted at the
        head of PATH or over /usr/bin, so a program found there must already run as the pod's user. So every
        privileged step runs from the machine's programs before entering: ``env -i`` sets the environment
        (:meth:`environment`: nothing of the caller's leaks in), or, with ``env_file`` (a JSON object of the
        whole environment, readable by root only), this Python replaces it by the file's as the command starts;
        ``setpriv`` sets the group and supplementary groups, no_new_privs, and keeps in the bounding set
        only the three capabilities entering needs; ``sandbox_enter.py`` (the machine's Python, loaded before
        it enters) enters every namespace (the mount namespace's root with it), forks into the PID namespace,
        switches to the user's uid, which clears every remaining capability, and installs the pod's seccomp
        filter before it executes the command: nothing found inside runs before the filter is in place.

        With ``terminal``, the caller's terminal is first released from its session (on the machine, by
        the one program that may: the session's leader, which is this process), and ``setsid --ctty``,
        run inside as the user, makes a session there that takes it, so a shell has job control and
        Ctrl-C stops its foreground job.

        With ``exec_session`` (kwok's exec), the rest runs in a session of its own under
        :mod:`.exec_session`, which ends the exec's processes inside when kwok hangs it up (its client left).
        """
        if env_file is not None:
            if env:
                raise ValueError("an environment is given either inline or in a file, not both")
            words = [sys.executable, "-I", "-c", ENVIRONMENT_FROM_FILE, str(env_file)]
        else:
            words = ["/usr/bin/env", "-i", *(f"{name}={value}" for name, value in self.environment(env).items())]
        if terminal:
            words += [sys.executable, "-I", "-c", RELEASE_TERMINAL]
        if exec_session:
            words += exec_session_words(self.namespace_file("pid"))
        groups = ",".join(str(g) for g in user.groups) if user.groups else None
        words += [
            shutil.which("setpriv") or "/usr/bin/setpriv", f"--regid={user.gid}",
            f"--groups={groups}" if groups else "--clear-groups",
            "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", f"--bounding-set=-all,{ENTER_CAPABILITIES}",
            "--",
        ]
        namespaces = self.namespace_file(NAMESPACES[0]).parent  # the folder of every namespace's file
        words += [sys.executable, "-I", "-S", str(ENTER_SCRIPT), str(namespaces), str(user.uid), "--"]
        if terminal:
            words += ["setsid", "--ctty", "--"]
        return words

    def port_forward_command(self, port: int, user: RunAs) -> list[str]:
        """The ``command`` of a kwok PortForward for ``port``: a relay run inside, as ``user``, like an exec.

        kwok runs it as the cluster's owner; where that is not root, it first enters the supervisor's user
        namespace (:func:`.user_namespace.entry_words`), where the sandbox's namespace files are."""
        return [*user_namespace.entry_words(), *self.enter_command(user),
                "python3", "-I", "-c", PORT_FORWARD_RELAY, str(int(port))]

    def kwok_exec_envs(self, user: RunAs, env: Mapping[str, str] | None = None, *,
                       env_file: Path | None = None) -> list[dict[str, str]]:
        """The envs of a kwok Exec that make ``kubectl exec`` run inside, as ``user``, with ``env`` or the
        environment in ``env_file`` (kwok splits them on white space)."""
        envs = []
        for name, terminal in (("KWOK_EXEC_PREFIX", False), ("KWOK_EXEC_TTY_PREFIX", True)):
            words = [*user_namespace.entry_words(),
                     *self.enter_command(user, env, env_file=env_file, terminal=terminal, exec_session=True)]
            spaced = [word for word in words if not word or any(c.isspace() for c in word)]
            if spaced:
                raise SandboxError(f"sandbox {self.spec.key}: {spaced} cannot go into kwok's exec prefix")
            envs.append({"name": name, "value": " ".join(words)})
        return envs

    def run(self, argv: Sequence[str], user: RunAs, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside as ``user``, wait for it and return its output."""
        return subprocess.run([*self.enter_command(user), *argv], capture_output=True, text=True, check=False,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def processes(self) -> list[int]:
        """The machine's PIDs of the processes inside, its PID 1 left out (none once that is gone)."""
        pid_namespace = _namespace_id(self.namespace_file("pid"))
        if pid_namespace is None or not self.alive():
            return []
        return [pid for pid in processes_in_namespace(pid_namespace) if pid != self.init_pid]

    def alive(self) -> bool:
        """Whether the sandbox's PID 1 still runs (checked by its namespace, so a reused PID does not count)."""
        bound = _namespace_id(self.namespace_file("pid"))
        try:
            return bound is not None and os.readlink(f"/proc/{self.init_pid}/ns/pid") == bound
        except OSError:
            return False

    def teardown(self) -> None:
        """Kill the sandbox's PID 1 (the kernel then kills everything in it) and unbind its namespaces."""
        pid_namespace = _namespace_id(self.namespace_file("pid"))
        try:
            os.kill(self.init_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._unshare is not None:
            self._unshare.wait(timeout=10)
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        deadline = time.monotonic() + 10
        while pid_namespace and processes_in_namespace(pid_namespace) and time.monotonic() < deadline:
            time.sleep(0.02)
        _unbind_all(self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)


def create(spec: SandboxSpec) -> Sandbox:
    """Make a sandbox and return it once its file system is in place (SandboxError if it cannot be made)."""
    where = f"sandbox {spec.key}"
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,200}[a-z0-9])?", spec.key) or ".." in spec.key:
        raise SandboxError(f"{where}: the key must be lowercase letters, digits, '.' and '-' (namespace.pod)")
    if not 0 < len(spec.hostname) <= 63:
        raise SandboxError(f"{where}: hostname {spec.hostname!r} must be 1 to 63 characters")
    volumes = []
    for volume in spec.volumes:
        mount_path = checked_mount_path(volume.mount_path, where=where)
        if not volume.source.exists():
            raise SandboxError(f"{where}: volume source {volume.source} does not exist", fix="prepare the volume first")
        # resolved here, on the machine: inside, the machine's tree is reached under another root
        source = str(volume.source.resolve(strict=True))
        volumes.append({"source": source, "mount_path": mount_path, "read_only": volume.read_only})
    # Binding the namespace files and running as the pod's uid need root: on the machine, or in the user
    # namespace an owner who is not root runs the supervisor in (user_namespace.py)
    for reason in unavailable_reasons():
        raise SandboxError(f"{where}: {reason.problem}", fix=reason.fix)

    folder = RUNTIME_ROOT / spec.key
    if folder.exists():
        raise SandboxError(f"{where} exists already ({folder})", fix="tear the old sandbox down first")
    (folder / "ns").mkdir(parents=True, mode=0o700)
    (folder / "stage").mkdir(mode=0o700)
    init_spec = {
        "cpus": sorted(os.sched_getaffinity(0)),  # made on one CPU (see on_creation_cpu), it then runs on these
        "hostname": spec.hostname,
        "stage": str(folder / "stage"),
        "hidden": [str(p) for p in spec.hidden],
        "volumes": volumes,
    }
    unshare = ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "--kill-child=SIGKILL",
               "--propagation=private"]
    lifeline, kept = os.pipe()  # both close-on-exec here: no other program this process starts inherits them
    try:
        process = subprocess.Popen(
            [*user_namespace.on_creation_cpu(), *unshare, "--", sys.executable, "-I", str(INIT_SCRIPT)],
            # in its environment, not on its command line: /proc/1/cmdline is the pod's to read, and the spec
            # names the machine's folders behind the volumes and the hidden ones
            env={**os.environ, SPEC_VARIABLE: json.dumps(init_spec)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=lifeline, text=True,
            start_new_session=True,  # a terminal's Ctrl-C is not meant for the sandboxes
        )
    except BaseException:
        os.close(kept)
        raise
    finally:
        os.close(lifeline)
    try:
        answer = _read_line(process, READY_TIMEOUT)
        if answer != "ready":
            process.wait(timeout=5)
            assert process.stderr is not None
            detail = answer.removeprefix("error: ") or process.stderr.read().strip() or "it exited"
            raise SandboxError(f"{where} could not be made: {detail}", fix=_fix_for(detail))
        init_pid = _only_child(process.pid)
        box = Sandbox(spec=spec, folder=folder, init_pid=init_pid, _unshare=process, _lifeline=kept)
        for kind in NAMESPACES:
            target = box.namespace_file(kind)
            target.touch()
            bound = subprocess.run(["mount", "--bind", f"/proc/{init_pid}/ns/{kind}", str(target)],
                                   capture_output=True, text=True, check=False)
            if bound.returncode != 0:
                raise SandboxError(f"{where}: its {kind} namespace could not be bound: {bound.stderr.strip()}",
                                   fix=_fix_for(bound.stderr))
        # what a later supervisor needs to adopt the sandbox (see existing())
        (folder / RECORD).write_text(json.dumps({"init_pid": init_pid, "key": spec.key, "hostname": spec.hostname}))
        return box
    except BaseException:
        os.close(kept)
        process.kill()
        process.wait()
        _unbind_all(folder)
        shutil.rmtree(folder, ignore_errors=True)
        raise


def existing() -> tuple[list[Sandbox], list[str]]:
    """The sandboxes on this machine whose PID 1 runs (to adopt), and the keys of those whose PID 1 is gone.

    A sandbox's processes end with the process that made it (see ``Sandbox._lifeline``),
    but its folder, with the bound namespace files, stays when that process was killed;
    the next supervisor removes such folders with :func:`remove_dead`. A live one (made
    by a process that still runs) knows its key, hostname and PID 1, enough to enter it
    and tear it down; its volumes and hidden folders are in place.
    """
    alive, dead = [], []
    if not RUNTIME_ROOT.is_dir():
        return alive, dead
    for folder in sorted(RUNTIME_ROOT.iterdir()):
        try:
            record = json.loads((folder / RECORD).read_text())
            box = Sandbox(spec=SandboxSpec(key=record["key"], hostname=record["hostname"]), folder=folder,
                          init_pid=int(record["init_pid"]))
        except (OSError, ValueError, KeyError):
            dead.append(folder.name)  # interrupted while being made
            continue
        if box.alive():
            alive.append(box)
        else:
            dead.append(folder.name)
    return alive, dead


def remove_dead(key: str) -> None:
    """Remove a sandbox that cannot be adopted: kill whatever still runs in its PID namespace, unbind, delete.

    Its network and mount namespaces end with their last binding, and the veth of its
    pod network with them.
    """
    folder = RUNTIME_ROOT / key
    pid_namespace = _namespace_id(folder / "ns" / "pid")
    if pid_namespace:
        for pid in processes_in_namespace(pid_namespace):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _unbind_all(folder)
    shutil.rmtree(folder, ignore_errors=True)


def remove_all(prefix: str) -> list[str]:
    """Tear down every sandbox whose key starts with ``prefix.`` (one cluster's), live or dead; their keys."""
    alive, dead = existing()
    removed = []
    for box in alive:
        if box.spec.key.startswith(prefix + "."):
            box.teardown()
            removed.append(box.spec.key)
    for key in dead:
        if key.startswith(prefix + "."):
            remove_dead(key)
            removed.append(key)
    return removed


def processes_in_namespace(pid_namespace: str) -> list[int]:
    """Host PIDs of the processes whose PID namespace is ``pid_namespace`` (as readlink shows it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "pid") == pid_namespace:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _namespace_id(bound_file: Path) -> str | None:
    try:
        return f"pid:[{bound_file.stat().st_ino}]"
    except OSError:
        return None


def _unbind_all(folder: Path) -> None:
    for file in (folder / "ns").glob("*"):
        subprocess.run(["umount", str(file)], capture_output=True, check=False)


def _only_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if len(children) != 1:
        raise SandboxError(f"expected one child of unshare ({pid}), found {children}")
    return int(children[0])


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise SandboxError(f"a sandbox did not get ready within {timeout:.0f} s", fix="see `dmesg` for mount errors")
    return process.stdout.readline().strip()


# The machine's programs a sandbox and its network use, and the packages that carry them (Debian/Ubuntu names).
REQUIRED_PROGRAMS = {"unshare": "util-linux", "nsenter": "util-linux", "setpriv": "util-linux",
                     "setsid": "util-linux", "pivot_root": "util-linux", "ip": "iproute2", "nft": "nftables"}


def unavailable_reasons() -> list[SandboxError]:
    """Why pod sandboxes cannot be made on this machine, each with its fix; empty when they can.

    For ``cluster status`` and the lessons to say which setting is in the way, rather
    than a sandbox failing obscurely half-way through.
    """
    reasons = list(user_namespace.problems())  # an owner who is not root makes them in a user namespace
    missing = sorted(name for name in REQUIRED_PROGRAMS if shutil.which(name) is None)
    if missing:
        packages = sorted({REQUIRED_PROGRAMS[name] for name in missing})
        reasons.append(SandboxError(
            f"pod sandboxes need {', '.join(missing)}, not found on PATH",
            fix=f"install them (Debian/Ubuntu: apt-get install {' '.join(packages)})",
        ))
    unfiltered = seccomp.unsupported_reason()
    if unfiltered:
        reasons.append(SandboxError(unfiltered, fix="run the cluster on an x86_64 or aarch64 Linux with seccomp "
                                                    "(every distribution's kernel has it)"))
    filesystems = Path("/proc/filesystems").read_text() if Path("/proc/filesystems").exists() else ""
    for needed in ("tmpfs", "devpts"):
        if f"\t{needed}\n" not in filesystems:
            reasons.append(SandboxError(
                f"the kernel offers no {needed} file system, which a sandbox's root needs",
                fix=f"load its module (modprobe {needed}) or use a kernel built with it",
            ))
    return reasons


def _fix_for(detail: str) -> str:
    if "Operation not permitted" in detail or "Permission denied" in detail:
        return "the kernel refused a namespace or a mount: run the cluster as root, outside a container that forbids them"
    return "see the message above; `dmesg` may say more about a refused mount"
