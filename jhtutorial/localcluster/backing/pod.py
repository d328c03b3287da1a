"""What a kubelet does for a pod's containers, whatever runs them: processes, logs, restarts, probes, status.

The runtime that every backed pod shares (:class:`PodRuntime`); where the
containers run, and how they are reached, is its subclass's
(:class:`.sandboxed_pod.SandboxedPod`: a sandbox of the pod's own). It

- starts each container's command under a keeper (:mod:`.keeper`) that ends
  every process the program started when the program or the supervisor ends;
- writes each program's output to a file in the CRI log format
  (``<RFC3339 time> stdout F <line>``) that kwok's ``Logs`` object points at, so
  ``kubectl logs`` shows it;
- asks each container's readiness probe (httpGet or tcpSocket) and writes the
  pod's ``Ready`` condition and container statuses (:mod:`.status`); a program
  that exits is started again after a back-off (1, 2, 4 ... 16 s; the
  kubelet's goes up to 5 minutes) and its restart is counted;
- renews the pod's ServiceAccount token as the kubelet does (:mod:`.credentials`);
- keeps going while the API server does not answer (a restart, an outage):
  what could not be written is written again, with a back-off, once it
  answers.

The kwok objects (:mod:`.kwok_objects`) name the pod as their owner, so the
garbage collector removes them with the pod.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ...errors import KubeApiError, TutorialError
from ...kubeapi import PODS, KubeApi, Resource
from . import keeper
from .credentials import TokenLifetime, pod_token
from .kwok_objects import apply_kwok_objects, withdraw
from .mounts import PodFiles
from .programs import Program
from .retry import Backoff
from .status import ContainerState, now, readiness_matches, status_patch

Obj = dict[str, Any]
BACKOFF_CAP = 16.0
PROBE_UNTIL_READY = 0.5  # seconds between probes while a container is not ready yet
STOP_GRACE = 10.0  # the keeper's own grace (keeper.GRACE_SECONDS) is shorter: it ends its tree itself
TOKEN_RETRY_SECONDS = 10.0  # a renewal the API server did not answer is asked again after this long


@dataclass
class Launch:
    """How to start one container's program: the command line, its environment and working folder (in the pod)."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


@dataclass
class Container:
    """One container's program and what it did so far."""

    spec: Obj
    program: Program
    log_path: Path
    launch: Launch | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    restarts: int = 0
    ready: bool = False
    failures: int = 0
    last_exit: Obj | None = None
    restart_after: float = 0.0
    readers: list[threading.Thread] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def state(self) -> ContainerState:
        return ContainerState(self.name, str(self.spec.get("image", "")), self.ready, self.alive, self.restarts,
                              self.process.pid if self.process is not None else None, self.started_at,
                              self.last_exit)


class PodRuntime:
    """Runs one pod's containers and reports them to the API server; a subclass says where they run:
    :meth:`prepare` (each container's :class:`Launch`), :meth:`stop`, :meth:`_command` (the command line that
    starts a launch there), :meth:`_connect` (a probe's connection), :meth:`_publish` (kwok's objects),
    :meth:`_write_credentials` and :meth:`_pod_ip`."""

    def __init__(self, pod: Obj, folder: Path, kube: KubeApi, kubeconfig_cluster: Obj, log: Any, *,
                 tokens: TokenLifetime = TokenLifetime()) -> None:
        self.pod = pod
        self.uid = str(pod["metadata"]["uid"])
        self.namespace = str(pod["metadata"]["namespace"])
        self.name = str(pod["metadata"]["name"])
        self.folder = folder
        self.kube = kube
        self.kubeconfig_cluster = kubeconfig_cluster
        self.log = log
        self.files = PodFiles(pod, folder, kube)
        self.containers: list[Container] = []
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._written_status: tuple[list[ContainerState], bool, str | None] | None = None
        self._log_lock = threading.Lock()
        self._unwritten: dict[str, str | None] = {}  # annotations the API server did not take yet
        self._api = Backoff()  # while the API server does not answer: wait longer between writes
        self._published = False  # the kwok objects and annotations that say where the pod runs
        self.tokens = tokens
        self._renew_token_at: float | None = None  # time.time() at which the token is renewed (None: none given)
        self._token_failing = False

    # --- life cycle -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._thread is not None

    def prepare(self) -> None:
        """Make what the pod runs in and each container's launch (raises NotReadyYet to try later)."""
        raise NotImplementedError

    def start(self) -> None:
        for container in self.containers:
            self._spawn(container)
        self._thread = threading.Thread(target=self._run, name=f"jhtutorial-backing-{self.name}", daemon=True)
        self._thread.start()  # first: the processes run now, and only this thread may start them again

    def observe(self, pod: Obj) -> None:
        """The latest copy of the pod from the watch."""
        with self._lock:
            self.pod = pod
        self._wake.set()  # a status someone else wrote (kwok, before our annotation reached it) is corrected now

    def stop(self) -> None:
        """End every program of the pod and remove what was made for it."""
        raise NotImplementedError

    def report(self) -> Obj:
        return {
            "namespace": self.namespace, "pod": self.name, "uid": self.uid,
            "containers": {c.name: {"program": c.program.name, "pid": c.process.pid if c.process else None,
                                    "ready": c.ready, "restarts": c.restarts,
                                    "argv": c.launch.argv if c.launch else []}
                           for c in self.containers},
            "problems": self.problems,
        }

    @property
    def ready(self) -> bool:
        return bool(self.containers) and all(c.ready for c in self.containers)

    # --- processes ----------------------------------------------------------------------

    def _spawn(self, container: Container) -> None:
        assert container.launch is not None
        launch = container.launch
        argv, env, cwd = self._command(container, launch)
        # there from the start, as the kubelet's: `kubectl logs` of a program that printed nothing yet shows
        # nothing, not an error about a missing file
        container.log_path.touch()
        pipes = [os.pipe(), os.pipe()]  # stdout, stderr: (read end, write end)
        owner = self._stdio_owner(container)
        try:
            if owner is not None:
                # as a container runtime does: the program's own user may reopen them (nginx's /dev/stdout)
                for _, write_end in pipes:
                    os.fchown(write_end, owner, -1)
            # the keeper leads the process group (and session) and starts the program in it
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", keeper.__file__, str(os.getpid()), "--", *argv],
                env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=pipes[0][1], stderr=pipes[1][1], start_new_session=True,
            )
        except OSError as err:
            for read_end, write_end in pipes:
                os.close(read_end)
                os.close(write_end)
            self._write_log(container, "stderr", f"cannot start {launch.argv[0]}: {err}")
            container.last_exit = {"exitCode": 127, "reason": "StartError", "message": str(err),
                                   "startedAt": now(), "finishedAt": now()}
            container.restart_after = time.monotonic() + self._backoff(container)
            return
        streams = []
        for read_end, write_end in pipes:
            os.close(write_end)
            streams.append(os.fdopen(read_end, "rb"))
        container.process = process
        container.started_at = now()
        container.ready = False
        container.failures = 0
        container.readers = [
            threading.Thread(target=self._pump, args=(container, stream, name), daemon=True,
                             name=f"jhtutorial-backing-{self.name}-{container.name}-{name}")
            for stream, name in zip(streams, ("stdout", "stderr"))
        ]
        for reader in container.readers:
            reader.start()
        self.log(f"{self.namespace}/{self.name}: started {container.name} ({container.program.name}, "
                 f"pid {process.pid})")

    def _command(self, container: Container, launch: Launch) -> tuple[list[str], dict[str, str], Path]:
        """The command line, environment and (machine's) working folder that start a container's program."""
        raise NotImplementedError

    def _stdio_owner(self, container: Container) -> int | None:
        """The user the program's output pipes belong to (None: this process's)."""
        return None

    def _pump(self, container: Container, stream: IO[bytes] | None, name: str) -> None:
        # one thread per pipe reads it to the end: a full pipe would stop the program
        if stream is None:
            return
        with contextlib.suppress(OSError, ValueError):
            for raw in stream:
                self._write_log(container, name, raw.decode("utf-8", "replace").rstrip("\n"))
        with contextlib.suppress(OSError):
            stream.close()

    def _write_log(self, container: Container, stream: str, line: str) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._log_lock, open(container.log_path, "a", encoding="utf-8") as out:
            out.write(f"{stamp} {stream} F {line}\n")

    @staticmethod
    def _backoff(container: Container) -> float:
        return min(BACKOFF_CAP, 2.0 ** max(0, container.restarts - 1))

    # --- the loop: exits, restarts, probes, status --------------------------------------------

    def _run(self) -> None:
        next_probe: dict[str, float] = {}
        while not self._stop.is_set():
            for container in self.containers:
                self._check_exit(container)
                if container.alive and time.monotonic() >= next_probe.get(container.name, 0.0):
                    period = self._probe(container)
                    next_probe[container.name] = time.monotonic() + period
            if self._api.due():
                self._write_to_api()
            self._renew_token_when_due()
            self._wake.wait(0.25)
            self._wake.clear()

    def _write_to_api(self) -> None:
        """kwok objects, annotations and status, as far as the API server takes them. Nothing it refuses or
        misses ends this pod's thread: a restart of the API server is an outage to wait out, the programs keep
        running."""
        try:
            if not self._published:
                self._publish()
                self._published = True
            self._flush_annotations()
            self._write_status()
        except TutorialError as err:
            if self._api.failed() == 1:
                self.log(f"{self.namespace}/{self.name}: cannot write the pod's status ({err.problem.splitlines()[0]}); "
                         "trying again, less and less often, until the API server answers")
        else:
            if self._api.succeeded():
                self.log(f"{self.namespace}/{self.name}: the API server answers again; status written")

    def _check_exit(self, container: Container) -> None:
        process = container.process
        if process is not None and process.poll() is not None:
            code = process.returncode
            container.last_exit = {"exitCode": code if code >= 0 else 128 - code,
                                   "reason": "Completed" if code == 0 else "Error",
                                   "startedAt": container.started_at, "finishedAt": now()}
            container.process = None
            container.ready = False
            container.restarts += 1
            delay = self._backoff(container)
            container.restart_after = time.monotonic() + delay
            self.log(f"{self.namespace}/{self.name}: {container.name} exited with code {code}; "
                     f"restart {container.restarts} in {delay:.0f} s")
        if container.process is None and container.restart_after and time.monotonic() >= container.restart_after:
            container.restart_after = 0.0
            self._spawn(container)

    def _probe(self, container: Container) -> float:
        """Ask the readiness probe once; returns seconds until the next probe."""
        probe = container.spec.get("readinessProbe")
        if not probe:
            container.ready = True  # no probe: ready once the process runs, as for the kubelet
            return 5.0
        ok = self._ask(probe, container)
        period = float(probe.get("periodSeconds", 10))
        if ok:
            container.failures = 0
            container.ready = True
        else:
            container.failures += 1
            if not container.ready or container.failures >= int(probe.get("failureThreshold", 3)):
                container.ready = False
        return period if container.ready else PROBE_UNTIL_READY

    def _ask(self, probe: Obj, container: Container) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        check = probe.get("httpGet") or probe.get("tcpSocket")
        if check is None:
            return True  # exec probes: nothing to run them in; the process running stands for them
        port = self._port_number(check.get("port"), container)
        try:
            sock = self._connect(port, timeout) if port is not None else None
            if sock is None:
                return False
            if "path" in check or probe.get("httpGet") is not None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                connection.sock = sock  # connected already (http.client connects only when it has none)
                try:
                    connection.request("GET", check.get("path", "/"))
                    return 200 <= connection.getresponse().status < 400
                finally:
                    connection.close()
            sock.close()
            return True
        except (OSError, http.client.HTTPException):
            return False

    def _connect(self, port: int, timeout: float) -> socket.socket | None:
        """A connection to the container port as a probe makes it (None: there is nothing to connect to yet)."""
        raise NotImplementedError

    @staticmethod
    def _port_number(port: Any, container: Container) -> int | None:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return next((int(p["containerPort"]) for p in container.spec.get("ports") or [] if p.get("name") == port),
                    None)

    def _write_status(self) -> None:
        with self._lock:
            pod = self.pod
        status = pod.get("status") or {}
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        states = [c.state() for c in self.containers]
        # what was written last, unless someone else changed the readiness since: nothing to write (compared as
        # the containers' states, not their serialised statuses: this runs four times a second per pod)
        wanted = (states, self.ready, status.get("phase"))
        if wanted == self._written_status and readiness_matches(status, self.ready):
            return
        # kwok left the pod to us (or has not come to it yet): what it would write, with an address of its own
        address = (self._pod_ip(), status.get("startTime") or now()) if self._address_to_write(status) else None
        self.kube.call("PATCH", PODS.path(self.namespace, self.name, "status"),
                       body=status_patch(states, status, address=address), content_type="application/merge-patch+json")
        self._written_status = wanted

    def _address_to_write(self, status: Obj) -> bool:
        """Whether the status written now carries phase, start time and pod IP too."""
        return status.get("phase") != "Running" or status.get("podIP") != self._pod_ip()

    def _pod_ip(self) -> str:
        """The pod's IP, as its status says it."""
        raise NotImplementedError

    # --- the API side: token, kwok objects, annotations -----------------------------------------

    def _new_token(self) -> str:
        token = pod_token(self.kube, self.pod, self.tokens)
        self._renew_token_at = token.renew_at
        return token.value

    def _write_credentials(self, token: str) -> Path:
        """Put the token where the pod's programs read it (replacing the one before in one step)."""
        raise NotImplementedError

    def _renew_token_when_due(self) -> None:
        """A new token once the one given has lived the part of its life after which the kubelet renews it. The
        old one stays valid until it expires, so an API server that does not answer now is simply asked again."""
        if self._renew_token_at is None or time.time() < self._renew_token_at or self._stop.is_set():
            return
        try:
            self._write_credentials(self._new_token())
        except (TutorialError, OSError) as err:
            self._renew_token_at = time.time() + TOKEN_RETRY_SECONDS
            if not self._token_failing:  # said once per outage, not every 10 s
                why = err.problem if isinstance(err, TutorialError) else str(err)
                self.log(f"{self.namespace}/{self.name}: cannot renew the ServiceAccount token yet "
                         f"({why.splitlines()[0]}); trying again every {TOKEN_RETRY_SECONDS:.0f} s")
            self._token_failing = True
        else:
            self._token_failing = False
            self.log(f"{self.namespace}/{self.name}: ServiceAccount token renewed; the next renewal in "
                     f"{self._renew_token_at - time.time():.0f} s")

    def _publish(self) -> None:
        """kwok's objects that let kubectl reach the pod, and the annotations that say where it runs."""
        raise NotImplementedError

    def _apply_kwok_objects(self, specs: list[tuple[Resource, Obj]]) -> None:
        for problem in apply_kwok_objects(self.kube, self.pod, specs):
            self.problems.append(problem)
            self.log(f"{self.namespace}/{self.name}: {problem}")

    def _annotate(self, annotations: dict[str, str | None]) -> None:
        """Set (or, with None, remove) annotations; what the API server does not take now is sent again later."""
        self._unwritten.update(annotations)
        with contextlib.suppress(TutorialError):
            self._flush_annotations()

    def _flush_annotations(self) -> None:
        if not self._unwritten:
            return
        annotations = dict(self._unwritten)
        try:
            self.kube.call("PATCH", PODS.path(self.namespace, self.name),
                           body={"metadata": {"annotations": annotations}},
                           content_type="application/merge-patch+json")
        except KubeApiError as err:
            if err.status != 404:  # 404: the pod is gone, and so is the need
                raise
        for key, value in annotations.items():
            if self._unwritten.get(key, value) == value:
                self._unwritten.pop(key, None)

    def withdraw(self) -> None:
        """Hand the stopped pod back to kwok (raises ClusterUnreachable while the API server does not answer)."""
        self._unwritten.clear()
        withdraw(self.kube, self.namespace, self.name)

