"""The local simulated cluster: a real control plane, simulated nodes and pods.

kube-apiserver, etcd, kube-controller-manager and kube-scheduler run as
ordinary processes on 127.0.0.1 (kwokctl's ``binary`` runtime); the kwok
controller plays the kubelet for a few fake nodes. RBAC, admission, Services,
EndpointSlices, ServiceAccount tokens, Deployments and PersistentVolume binding
are the real thing; no container ever runs.

    $ jhtutorial cluster up        # build once, then start (about 5 s warm)
    $ export KUBECONFIG=$(jhtutorial cluster kubeconfig)
    $ kubectl get nodes
    $ jhtutorial cluster down

From Python:

    >>> cluster = LocalCluster()
    >>> status = cluster.up()          # idempotent: reuses a healthy cluster
    >>> status.kubeconfig              # doctest: +SKIP
    PosixPath('/root/.local/state/jhtutorial/kubeconfig')
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ClusterBusy, LocalClusterError, PortInUse
from ..objects import default_storage_class, node_is_ready
from ..readable import Readable
from . import paths, versions
from .backing import KWOK_STATUS_ANNOTATION
from .backing.admission import policy_objects
from .backing.control import SupervisorControl
from .build import Binaries, Progress, ensure_binaries, say
from .ports import free_port, port_free

CLUSTER_NAME = "jhtutorial"
NODE_COUNT = 3
# Each fake node offers far more than a workshop needs, so a classroom of
# learners, each with a hub, a proxy and a user pod, fits with room to spare.
NODE_CAPACITY = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"}
# kwok's resources that send `kubectl port-forward` and `kubectl logs` of a pod to a
# process or file on this machine; the supervisor makes one of each per backed pod.
KWOK_CRDS = ["PortForward", "ClusterPortForward", "Logs", "ClusterLogs", "Exec", "ClusterExec"]
# Pod and Service ranges that do not overlap (kwok's default pod range,
# 10.0.0.0/24, collides with the apiserver's default Service range).
POD_CIDR_PREFIX = "10.244"
SERVICE_CIDR = "10.96.0.0/16"
STORAGE_CLASS = "standard"
# kube-controller-manager's in-tree hostPath provisioner creates each volume
# as a folder here; `down` removes the ones this cluster made.
HOSTPATH_ROOT = Path("/tmp/hostpath_pv")
LOCK_WAIT_SECONDS = 600
KWOKCTL_TIMEOUT_SECONDS = 90


@dataclass
class ClusterStatus(Readable):
    """What `jhtutorial cluster status` reports."""

    state: str  # "running", "stopped" (processes gone, state kept) or "absent"
    kubeconfig: Path
    server: str | None = None
    kubernetes_version: str | None = None
    nodes_ready: int = 0
    nodes_total: int = 0
    default_storage_class: str | None = None
    components: dict[str, bool] = field(default_factory=dict)
    supervisor: list[str] = field(default_factory=list)  # what the supervisor of backed pods reports

    def lines(self) -> list[str]:
        out = [f"local cluster '{CLUSTER_NAME}': {self.state}"]
        if self.state == "absent":
            out.append("  start it with: jhtutorial cluster up")
            return out
        if self.server:
            out.append(f"  server:        {self.server}")
        if self.kubernetes_version:
            out.append(f"  kubernetes:    {self.kubernetes_version} (nodes and pods simulated by kwok {versions.KWOK})")
        if self.state == "running":
            out.append(f"  nodes ready:   {self.nodes_ready}/{self.nodes_total}")
            out.append(f"  storage class: {self.default_storage_class or '(no default)'}")
        down = [name for name, alive in self.components.items() if not alive]
        if down:
            out.append(f"  not running:   {', '.join(down)}")
        out += self.supervisor
        out.append(f"  kubeconfig:    {self.kubeconfig}")
        out.append(f"  use it with:   export KUBECONFIG={self.kubeconfig}")
        return out


class LocalCluster:
    """Create, reuse, repair and remove the local simulated cluster."""

    def __init__(self, kubeconfig: Path | str | None = None, *, progress: Progress = say) -> None:
        self.state_dir = paths.state_dir()
        self.kwok_workdir = self.state_dir / "kwok"
        self.cluster_dir = self.kwok_workdir / "clusters" / CLUSTER_NAME
        explicit = kubeconfig or os.environ.get("JHTUTORIAL_LOCAL_KUBECONFIG")
        self.kubeconfig = Path(explicit).expanduser().absolute() if explicit else self.state_dir / "kubeconfig"
        self.progress = progress
        self.supervisor = SupervisorControl(self.state_dir, self.cluster_dir / "kubeconfig.yaml")

    # --- public ---------------------------------------------------------------

    def up(self, *, port: int | None = None, nodes: int = NODE_COUNT) -> ClusterStatus:
        """Make sure the cluster runs: reuse it, restart it, or create it."""
        self._check_kubeconfig_target()
        with self._lock():
            binaries = ensure_binaries(self.progress)
            if self.cluster_dir.exists():
                if self._served(binaries):
                    self.progress("local cluster is already running; reusing it")
                elif not self._restart_stale(binaries):
                    self.progress("the stale cluster could not be restarted; recreating it from scratch")
                    self._delete(binaries)
            if not self.cluster_dir.exists():
                self._create(binaries, port)
            # nodes first: kwok readies them while the apiserver finishes its
            # post-start hooks, so the two waits overlap
            self._configure(binaries, nodes)
            self._wait_ready(binaries)
            self._export_kubeconfig()
            self._check_kwok_resources(binaries)
            pid, started = self.supervisor.ensure_running()
            self.progress(f"supervisor of backed pods {'started' if started else 'already running'} (pid {pid})")
            status = self._status(binaries, known_ready=True)
        for line in status.lines():
            self.progress(line)
        return status

    def down(self) -> bool:
        """Remove the cluster and everything it stored. Returns False if there was none."""
        with self._lock():
            if not self.cluster_dir.exists():
                self._remove_exported_kubeconfig()
                return False
            binaries = ensure_binaries(self.progress)
            self._delete(binaries)
            return True

    def status(self) -> ClusterStatus:
        if not self.cluster_dir.exists():
            return ClusterStatus("absent", self.kubeconfig)
        return self._status(ensure_binaries(self.progress))

    def component_pids(self) -> dict[str, int | None]:
        """The process id of each control-plane component (None when it is not running)."""
        pids: dict[str, int | None] = {}
        for pid_file in sorted((self.cluster_dir / "pids").glob("*.pid")):
            try:
                pid: int | None = int(pid_file.read_text().strip())
            except (ValueError, OSError):
                pid = None
            pids[pid_file.stem] = pid if pid is not None and _runs(pid, pid_file.stem) else None
        return pids

    def _forget_dead_pids(self) -> None:
        # kwokctl trusts a pid file as long as some process has that pid; after a
        # crash the pid may be a zombie or a different program, and then kwokctl
        # would skip starting the component. Remove such pid files first.
        for name, pid in self.component_pids().items():
            if pid is None:
                (self.cluster_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)

    def stop_component(self, name: str) -> None:
        """Stop one component (for example kube-apiserver) to rehearse an outage."""
        pid = self.component_pids().get(name)
        if pid is None:
            raise LocalClusterError(f"component {name!r} is not running", fix="see `jhtutorial cluster status`")
        os.kill(pid, signal.SIGTERM)
        _wait_until_gone([pid], timeout=30)

    def start_components(self) -> None:
        """Start whatever component is not running (kwokctl skips the live ones)."""
        binaries = ensure_binaries(self.progress)
        self._forget_dead_pids()
        self._kwokctl(binaries, "start", "cluster", "--timeout", "120s")

    # --- steps of `up` ------------------------------------------------------------

    def _create(self, binaries: Binaries, port: int | None) -> None:
        port = port or free_port()
        _ensure_port_free(port)
        self.progress(f"creating local cluster '{CLUSTER_NAME}' (kube-apiserver on 127.0.0.1:{port})")
        self.kwok_workdir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "kwokctl.yaml"
        config.write_text(yaml.safe_dump_all([self._kwokctl_config(binaries, port), _kwok_config()], sort_keys=False))
        try:
            self._kwokctl(binaries, "create", "cluster", "--config", str(config), "--timeout", "120s")
        except LocalClusterError:
            # leave nothing half-made behind: the next `up` starts clean
            self._delete(binaries, quiet=True)
            raise

    def _kwokctl_config(self, binaries: Binaries, port: int) -> dict:
        return {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "kubeVersion": versions.KUBERNETES,
                "etcdVersion": versions.ETCD,
                "bindAddress": "127.0.0.1",
                "kubeApiserverPort": port,
                "kubeAuthorization": True,
                "kubeAdmission": True,
                "kubeApiserverBinary": str(binaries.kube_apiserver),
                "kubeControllerManagerBinary": str(binaries.kube_controller_manager),
                "kubeSchedulerBinary": str(binaries.kube_scheduler),
                "kubectlBinary": str(binaries.kubectl),
                "etcdBinary": str(binaries.etcd),
                "kwokControllerBinary": str(binaries.kwok),
                "enableCRDs": KWOK_CRDS,
            },
            "componentsPatches": [
                {"name": "kube-apiserver", "extraArgs": [{"key": "service-cluster-ip-range", "value": SERVICE_CIDR}]},
                {
                    "name": "kube-controller-manager",
                    "extraArgs": [
                        # the real PV controller provisions hostPath volumes for our StorageClass
                        {"key": "enable-hostpath-provisioner", "value": "true"},
                        {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
                    ],
                },
            ],
        }

    def _restart_stale(self, binaries: Binaries) -> bool:
        """Bring back a cluster whose processes died (crash, killed run, reboot)."""
        missing = [part for part in ("pki", "etcd", "kubeconfig.yaml", "kwok.yaml")
                   if not (self.cluster_dir / part).exists()]
        if missing:
            self.progress(f"the cluster folder is incomplete (no {', '.join(missing)}): a creation was interrupted")
            return False
        port = self._apiserver_port()
        if port is not None and not port_free(port):
            self.progress(f"the stopped cluster's port {port} is now used by another process")
            return False
        self.progress("found a stopped local cluster (left by a crash or a reboot); restarting it")
        self._forget_dead_pids()
        try:
            self._kwokctl(binaries, "start", "cluster", "--timeout", "120s")
            self._wait_ready(binaries)
        except LocalClusterError as err:
            self.progress(f"restart failed: {err.problem.splitlines()[0]}")
            return False
        return True

    def _configure(self, binaries: Binaries, nodes: int) -> None:
        """Fake nodes, a default StorageClass and the policy that hands backed pods to the supervisor;
        server-side apply, so re-runs converge."""
        manifest = json.dumps({"apiVersion": "v1", "kind": "List",
                               "items": [*self._node_objects(nodes), _storage_class(), *policy_objects()]})
        deadline = time.monotonic() + 30
        while True:
            try:
                self._kubectl(binaries, "apply", "--server-side", "--field-manager=jhtutorial-local", "-f", "-",
                              stdin=manifest)
                break
            except LocalClusterError:
                # a just-started apiserver may refuse writes for a moment
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._kubectl(binaries, "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")

    def _node_objects(self, count: int) -> list[dict]:
        return [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{i}",
                    # kwok's controller manages exactly the nodes that carry this annotation
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/hostname": f"kwok-node-{i}",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                    },
                },
                "spec": {"podCIDR": f"{POD_CIDR_PREFIX}.{i}.0/24", "podCIDRs": [f"{POD_CIDR_PREFIX}.{i}.0/24"]},
                "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY},
            }
            for i in range(count)
        ]

    def _export_kubeconfig(self) -> None:
        """Copy kwokctl's kubeconfig to our path (never into ~/.kube/config)."""
        source = self.cluster_dir / "kubeconfig.yaml"
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.kubeconfig.parent, delete=False, prefix=".kubeconfig-") as tmp:
            tmp.write(source.read_text())
        os.chmod(tmp.name, 0o600)
        os.replace(tmp.name, self.kubeconfig)

    # --- checks -------------------------------------------------------------------

    def _check_kwok_resources(self, binaries: Binaries) -> None:
        """Say so when the cluster predates kwok's PortForward/Logs resources (then backed pods cannot be
        reached with kubectl port-forward); only a new cluster gets them."""
        try:
            self._kubectl(binaries, "get", "crd", "portforwards.kwok.x-k8s.io", "logs.kwok.x-k8s.io")
        except LocalClusterError:
            self.progress("this cluster was made without kwok's PortForward and Logs resources: backed pods "
                          "cannot be reached with kubectl port-forward or kubectl logs; "
                          "`jhtutorial cluster down` then `jhtutorial cluster up` recreates it with them")

    def _check_kubeconfig_target(self) -> None:
        target = self.kubeconfig
        if target.exists() and not _is_our_kubeconfig(target):
            raise LocalClusterError(
                f"{target} already exists and is not the local cluster's kubeconfig; it will not be overwritten",
                fix="choose another path with --kubeconfig (or JHTUTORIAL_LOCAL_KUBECONFIG); to use both, "
                f"export KUBECONFIG={self.state_dir / 'kubeconfig'}:{target}",
            )
        # try for real: as root os.access() says yes to everything
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".write-test-"):
                pass
            if target.exists():
                with open(target, "a"):
                    pass
        except OSError as err:
            raise LocalClusterError(
                f"cannot write the local cluster's kubeconfig to {target}: {err.strerror or err}",
                fix="choose a writable path with --kubeconfig (or JHTUTORIAL_LOCAL_KUBECONFIG)",
            ) from None

    def _served(self, binaries: Binaries) -> bool:
        if not (self.cluster_dir / "kubeconfig.yaml").exists():
            return False
        result = subprocess.run(
            [str(binaries.kubectl), "--kubeconfig", str(self.cluster_dir / "kubeconfig.yaml"),
             "--request-timeout=3s", "get", "--raw", "/readyz"],
            capture_output=True, text=True, check=False,
        )
        return result.returncode == 0 and result.stdout.strip() == "ok"

    def _wait_ready(self, binaries: Binaries, timeout: float = 60) -> None:
        # /readyz has no watch to wait on; right after a start its post-start
        # hooks need a moment, so ask again briefly until it says ok
        deadline = time.monotonic() + timeout
        while not self._served(binaries):
            if time.monotonic() > deadline:
                raise LocalClusterError(
                    f"kube-apiserver did not become ready within {timeout:.0f} s",
                    fix=f"read {self.cluster_dir / 'logs' / 'kube-apiserver.log'}; "
                    "`jhtutorial cluster down` then `jhtutorial cluster up` starts over",
                )
            time.sleep(0.2)

    def _apiserver_port(self) -> int | None:
        try:
            config = next(yaml.safe_load_all((self.state_dir / "kwokctl.yaml").read_text()))
            return int(config["options"]["kubeApiserverPort"])
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
            return None

    def _status(self, binaries: Binaries, known_ready: bool = False) -> ClusterStatus:
        components = {name: pid is not None for name, pid in self.component_pids().items()}
        status = ClusterStatus("stopped", self.kubeconfig, components=components, supervisor=self.supervisor.lines())
        port = self._apiserver_port()
        status.server = f"https://127.0.0.1:{port}" if port else None
        if not (known_ready or self._served(binaries)):
            return status
        status.state = "running"
        status.kubernetes_version = json.loads(self._kubectl(binaries, "get", "--raw", "/version"))["gitVersion"]
        items = json.loads(self._kubectl(binaries, "get", "nodes,storageclasses", "-o", "json"))["items"]
        nodes = [item for item in items if item["kind"] == "Node"]
        status.nodes_total = len(nodes)
        status.nodes_ready = sum(1 for node in nodes if node_is_ready(node))
        chosen = default_storage_class(item for item in items if item["kind"] == "StorageClass")
        status.default_storage_class = chosen["metadata"]["name"] if chosen else None
        return status

    # --- removal ------------------------------------------------------------------

    def _delete(self, binaries: Binaries, quiet: bool = False) -> None:
        if not quiet:
            self.progress(f"deleting local cluster '{CLUSTER_NAME}'")
        # first the processes that back pods: nothing may outlive the cluster
        self.supervisor.stop()
        shutil.rmtree(self.supervisor.folder / "pods", ignore_errors=True)
        volumes = self._hostpath_volumes(binaries) if self._served(binaries) else []
        # Everything the processes hold is deleted next, so there is nothing to
        # shut down gracefully for (kube-apiserver alone takes seconds to drain).
        pids = [pid for pid in self.component_pids().values() if pid is not None]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        _wait_until_gone(pids, timeout=15)
        try:
            self._kwokctl(binaries, "delete", "cluster")
        except LocalClusterError:
            pass  # a half-made folder kwokctl does not recognise: removed below
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        remove_volume_folders(volumes, HOSTPATH_ROOT)
        (self.state_dir / "kwokctl.yaml").unlink(missing_ok=True)
        self._remove_exported_kubeconfig()

    def _hostpath_volumes(self, binaries: Binaries) -> list[str]:
        """The hostPath of every PersistentVolume, as the API server has it (unchecked text)."""
        try:
            pvs = json.loads(self._kubectl(binaries, "get", "pv", "-o", "json"))["items"]
        except LocalClusterError:
            return []
        return [str((pv.get("spec") or {}).get("hostPath", {}).get("path", "")) for pv in pvs]

    def _remove_exported_kubeconfig(self) -> None:
        if self.kubeconfig.exists() and _is_our_kubeconfig(self.kubeconfig):
            self.kubeconfig.unlink()

    # --- processes ----------------------------------------------------------------

    def _kwokctl(self, binaries: Binaries, *args: str) -> str:
        env = {
            **os.environ,
            "KWOK_WORKDIR": str(self.kwok_workdir),
            # kubectl is looked up on PATH by kwokctl: ours comes first
            "PATH": f"{binaries.kubectl.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        # --kubeconfig "" keeps kwokctl from writing into the user's ~/.kube/config
        command = [str(binaries.kwokctl), *args, "--name", CLUSTER_NAME]
        if args[:2] in (("create", "cluster"), ("delete", "cluster")):
            command += ["--kubeconfig", ""]
        try:
            # kwokctl waits up to 2 minutes for a component that will never come up;
            # on this machine a healthy start takes seconds, so give up sooner
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                                    stdin=subprocess.DEVNULL, timeout=KWOKCTL_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise LocalClusterError(
                f"`kwokctl {' '.join(args)}` did not finish within {KWOKCTL_TIMEOUT_SECONDS} s",
                fix=f"look at the component logs in {self.cluster_dir / 'logs'}; "
                "`jhtutorial cluster down` then `jhtutorial cluster up` starts over",
            ) from None
        if result.returncode != 0:
            raise LocalClusterError(
                f"`kwokctl {' '.join(args)}` failed:\n{_tail(result.stderr or result.stdout)}",
                fix=f"look at the component logs in {self.cluster_dir / 'logs'}; "
                "`jhtutorial cluster down` then `jhtutorial cluster up` starts over",
            )
        return result.stdout

    def _kubectl(self, binaries: Binaries, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(binaries.kubectl), "--kubeconfig", str(self.cluster_dir / "kubeconfig.yaml"), *args],
            input=stdin, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise LocalClusterError(f"`kubectl {' '.join(args[:3])}` failed: {_tail(result.stderr)}")
        return result.stdout

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.state_dir / "cluster.lock"
        with open(lock_path, "a+") as lock:
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            announced = False
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced:
                        lock.seek(0)
                        holder = lock.read().strip() or "another process"
                        self.progress(f"waiting: {holder} is changing the local cluster right now")
                        announced = True
                    if time.monotonic() > deadline:
                        raise ClusterBusy(
                            f"the local cluster stayed locked for {LOCK_WAIT_SECONDS} s ({lock_path})",
                            fix="wait for the other `jhtutorial cluster` command to finish, or stop it",
                        ) from None
                    time.sleep(0.2)  # flock has no notification to wait on
            lock.seek(0)
            lock.truncate()
            lock.write(f"`jhtutorial cluster` (pid {os.getpid()})\n")
            lock.flush()
            try:
                yield
            finally:
                lock.seek(0)
                lock.truncate()


def _wait_until_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive:
        alive = [pid for pid in alive if _alive(pid)]
        if alive and time.monotonic() > deadline:
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        if alive:
            time.sleep(0.05)  # process exit has no event we could wait on


def _alive(pid: int) -> bool:
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


def _runs(pid: int, component: str) -> bool:
    """True if `pid` is alive and still the component (pids get reused)."""
    if not _alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return True
    return Path(command).name == component


def _kwok_config() -> dict:
    """kwok leaves the status of a pod annotated ``kwok.x-k8s.io/status=custom`` alone: the supervisor
    marks the pods it backs so, and writes their status from the programs (Ready once a probe answers)."""
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "disregardStatusWithAnnotationSelector": f"{KWOK_STATUS_ANNOTATION}=custom",
            # a configuration given to kwokctl replaces kwok's defaults: these are kwok v0.8.0's own
            "enableDebuggingHandlers": True, "enableProfilingHandler": True, "enableContentionProfiling": False,
            "podPlayStageParallelism": 4, "nodePlayStageParallelism": 4, "nodeLeaseParallelism": 4,
            "podsOnNodeSyncParallelism": 1, "enablePodsOnNodeSyncListPager": True,
            "enablePodsOnNodeSyncStreamWatch": False,
        },
    }


def _storage_class() -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        # in-tree provisioner run by the real kube-controller-manager
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def remove_volume_folders(paths: list[str], root: Path) -> list[Path]:
    """Delete the folders among ``paths`` that really lie inside ``root`` (not ``root`` itself); return them.

    A PV's hostPath is text that whoever may create PVs chooses: ``root/../home`` or a symlink under the root
    reads as inside it. So each path is resolved (``..`` and symlinks followed, as the kernel would) before
    the check, and the resolved folder is the one deleted.
    """
    real_root = root.resolve()
    removed: list[Path] = []
    for text in paths:
        if not text or not Path(text).is_absolute():
            continue
        folder = Path(text).resolve()
        if folder != real_root and folder.is_relative_to(real_root) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _is_our_kubeconfig(path: Path) -> bool:
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    contexts = [c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict)]
    return contexts == [f"kwok-{CLUSTER_NAME}"]


def _ensure_port_free(port: int) -> None:
    if not port_free(port):
        raise PortInUse(
            f"port {port} on 127.0.0.1 is already in use, so kube-apiserver cannot listen there",
            fix=f"pick another port (`jhtutorial cluster up --port N`), leave it out to get a free one, "
            f"or stop the process using it (`ss -ltnp 'sport = :{port}'` shows which)",
        )


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
