"""The local cluster's control-plane processes: which run, and starting one again after it died.

kwokctl records every component it runs in the cluster folder's ``kwok.yaml``: binary, arguments, working
folder, environment. A component that died (a crash, an out-of-memory kill, a reboot) is started again
from that record, with the same arguments, so it finds the same data folder, port and certificates:

    >>> plane = ControlPlane(cluster_dir)                     # doctest: +SKIP
    >>> [c.name for c in plane.stopped()]                     # doctest: +SKIP
    ['kube-apiserver']
    >>> plane.start(plane.component("kube-apiserver"))       # doctest: +SKIP
    51234

Why not ``kwokctl start cluster``: it empties each component's log as it starts it (the crash's last words
are lost exactly when they are needed), and after it has started what was missing it waits up to two minutes
for the API server without saying what it waits for. Starting one process is all a repair needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import LocalClusterError

# Why a component is started again, unless its starter says otherwise (in its log, before the new process's lines)
CRASHED = "the process before this line had died"
# The order in which a cluster comes up: the API server needs etcd, everything else needs the API server.
START_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


@dataclass(frozen=True)
class Component:
    """One control-plane process as kwokctl started it."""

    name: str
    binary: Path
    args: tuple[str, ...]
    work_dir: Path
    envs: dict[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()  # where it listens on 127.0.0.1

    @property
    def pid_file(self) -> Path:
        # kwokctl names pid and log files after the binary, not the component (kwok-controller runs `kwok`)
        return self.work_dir / "pids" / f"{self.binary.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "logs" / f"{self.binary.name}.log"


class ControlPlane:
    """The components recorded in a cluster folder, and their processes."""

    def __init__(self, cluster_dir: Path) -> None:
        self.cluster_dir = cluster_dir

    def components(self) -> list[Component]:
        """Every component, in start order (an empty list when the folder has no record)."""
        try:
            documents = list(yaml.safe_load_all((self.cluster_dir / "kwok.yaml").read_text()))
        except (OSError, yaml.YAMLError):
            return []
        found: list[Component] = []
        for document in documents:
            if not isinstance(document, dict) or document.get("kind") != "KwokctlConfiguration":
                continue
            for raw in document.get("components") or []:
                if not raw.get("binary"):
                    continue
                found.append(Component(
                    name=raw["name"],
                    binary=Path(raw["binary"]),
                    args=tuple(raw.get("args") or ()),
                    work_dir=Path(raw.get("workDir") or self.cluster_dir),
                    envs={env["name"]: str(env.get("value", "")) for env in raw.get("envs") or []},
                    ports=tuple(int(port["port"]) for port in raw.get("ports") or [] if port.get("port")),
                ))
        rank = {name: index for index, name in enumerate(START_ORDER)}
        return sorted(found, key=lambda c: rank.get(c.name, len(rank)))

    def component(self, name: str) -> Component:
        for component in self.components():
            if component.name == name:
                return component
        raise LocalClusterError(f"the local cluster has no component {name!r}",
                                fix=f"components: {', '.join(c.name for c in self.components()) or '(none)'}")

    def pid(self, component: Component) -> int | None:
        """The component's process id, or None when it does not run (pid files outlive their process)."""
        try:
            pid = int(component.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if runs(pid, component.binary.name) else None

    def pids(self) -> dict[str, int | None]:
        return {component.name: self.pid(component) for component in self.components()}

    def stopped(self) -> list[Component]:
        return [component for component in self.components() if self.pid(component) is None]

    def set_argument(self, component: Component, key: str, value: str) -> None:
        """Record ``--key=value`` for the component in kwokctl's record (kwok.yaml), in place of the one it had,
        for every later start; the other components and documents of the record stay as they are."""
        path = self.cluster_dir / "kwok.yaml"
        documents = list(yaml.safe_load_all(path.read_text()))
        for document in documents:
            if not isinstance(document, dict) or document.get("kind") != "KwokctlConfiguration":
                continue
            for raw in document.get("components") or []:
                if raw.get("name") == component.name:
                    args = [a for a in raw.get("args") or [] if not a.startswith(f"--{key}=")]
                    raw["args"] = [*args, f"--{key}={value}"]
        temporary = path.with_suffix(".yaml.tmp")
        temporary.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)

    def start(self, component: Component, why: str = CRASHED) -> int:
        """Start one component as kwokctl did, appending to its log (with ``why``); returns the new process id.

        Its own session, so that it outlives the command that started it, as kwokctl's do.
        """
        component.log_file.parent.mkdir(parents=True, exist_ok=True)
        component.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(component.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')}: started again by "
                      f"`jhtutorial cluster up` ({why})\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    [str(component.binary), *component.args], cwd=component.work_dir,
                    env={**os.environ, **component.envs}, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True,
                )
            except OSError as err:
                raise LocalClusterError(
                    f"cannot start {component.name} ({component.binary}): {err.strerror or err}",
                    fix=f"check that {component.binary} exists and is executable; nothing of the cluster "
                    "was changed or deleted",
                ) from None
        temporary = component.pid_file.with_suffix(".pid.tmp")
        temporary.write_text(str(process.pid))
        os.replace(temporary, component.pid_file)
        return process.pid


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (not Linux): ask the kernel directly
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def runs(pid: int, program: str) -> bool:
    """True if ``pid`` is alive and still runs ``program`` (pids get reused after a crash or a reboot)."""
    if not alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return True
    return Path(command).name == program


def wait_until_gone(pids: list[int], timeout: float) -> None:
    """Wait for processes to end; SIGKILL those still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    remaining = list(pids)
    while remaining:
        remaining = [pid for pid in remaining if alive(pid)]
        if remaining and time.monotonic() > deadline:
            for pid in remaining:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
        if remaining:
            time.sleep(0.05)  # process exit has no event we could wait on
