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

import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
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
from ..wayrecord import close_ways_in_to
from . import paths, versions
from .backing import KWOK_STATUS_ANNOTATION
from .backing.admission import policy_objects
from .backing.apiserver_relay import KUBERNETES_CLUSTER_IP
from .backing.control import SupervisorControl
from .backing.user_namespace import remove_tree
from .backups import backups_dir, keep_copy, restore
from .build import Binaries, Progress, ensure_binaries, say
from .components import CRASHED, Component, ControlPlane, wait_until_gone
from .ports import free_ports, port_free

CLUSTER_NAME = "jhtutorial"
NODE_COUNT = 3
# Each fake node offers far more than a workshop needs, so a classroom of
# learners, each with a hub, a proxy and a user pod, fits with room to spare.
# the simulated nodes' address: where kwok, their kubelet, listens (and where the API server reaches it)
NODE_IP = "127.0.0.1"
NODE_CAPACITY = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"}
# kwok's resources that send `kubectl port-forward`, `kubectl logs` and `kubectl exec` of a pod to a
# process or file on this machine; the supervisor makes them for each backed pod.
KWOK_CRDS = ["PortForward", "ClusterPortForward", "Logs", "ClusterLogs", "Exec", "ClusterExec"]
# Pod and Service ranges that do not overlap (kwok's default pod range,
# 10.0.0.0/24, collides with the apiserver's default Service range).
POD_CIDR_PREFIX = "10.244"
SERVICE_CIDR = "10.96.0.0/16"
STORAGE_CLASS = "standard"
# kube-controller-manager's in-tree hostPath provisioner creates each volume
# as a folder here; `down` removes the ones this cluster made.
HOSTPATH_ROOT = paths.HOSTPATH_ROOT
LOCK_WAIT_SECONDS = 600
KWOKCTL_TIMEOUT_SECONDS = 90
# How long a repaired control plane may take to answer again; a warm start takes seconds.
REPAIR_SECONDS = 90
# A component that exits right after a repair (kube-controller-manager and kube-scheduler of a cluster made
# with leader election give up when the API server stayed away too long) is started again, this many times.
REPAIR_ROUNDS = 3
PORT_GRACE_SECONDS = 5.0  # how long a repair waits for a dead component's port to be free again
# kwokctl's options for the ports of the components other than kube-apiserver
COMPONENT_PORTS = ("etcdPort", "etcdPeerPort", "kubeControllerManagerPort", "kubeSchedulerPort", "kwokControllerPort")


@dataclass
class ClusterStatus(Readable):
    """What `jhtutorial cluster status` reports."""

    # "running"; "degraded" (some components down, or the API server not answering); "stopped" (every
    # control-plane process gone, data kept: a crash or a reboot); "absent" (no cluster)
    state: str
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
        if self.state in ("degraded", "stopped"):
            out.append("  repair it with: jhtutorial cluster up   (restarts what is down; keeps every object, the "
                       "port and the certificates)")
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
        self.plane = ControlPlane(self.cluster_dir)
        self.supervisor = SupervisorControl(self.state_dir, self.cluster_dir / "kubeconfig.yaml")

    # --- public ---------------------------------------------------------------

    def up(self, *, port: int | None = None, nodes: int = NODE_COUNT, recreate: bool = False) -> ClusterStatus:
        """Make sure the cluster runs: reuse it, repair it, or create it.

        A cluster that exists is never deleted here: what died is started again with the same data, port
        and certificates, and a repair that fails stops with the reason. Only ``recreate=True`` starts over,
        after keeping a copy of the data.
        """
        self._check_kubeconfig_target()
        with self._lock():
            binaries = ensure_binaries(self.progress)
            share_volume_root(HOSTPATH_ROOT)
            if self.cluster_dir.exists():
                if recreate:
                    self._start_over(binaries)
                else:
                    self._reuse_or_repair(binaries)
            if not self.cluster_dir.exists():
                self._create(binaries, port)
            former = self.supervisor.forget_former_mode()
            if former:
                self.progress(former)
            # nodes first: kwok readies them while the apiserver finishes its
            # post-start hooks, so the two waits overlap
            self._configure(binaries, nodes)
            self._wait_ready(binaries)
            self._export_kubeconfig()
            self._check_kwok_resources(binaries)
            self._check_certificate_names()
            self._check_client_certificates()
            pid, started = self.supervisor.ensure_running()
            self.progress(f"supervisor of backed pods {'started' if started else 'already running'} (pid {pid})")
            status = self._status(binaries, known_ready=True)
        for line in status.lines():
            self.progress(line)
        return status

    def down(self) -> bool:
        """Remove the cluster, after keeping a copy of its data. Returns False if there was none."""
        with self._lock():
            if not self.cluster_dir.exists():
                self._remove_exported_kubeconfig()
                return False
            binaries = ensure_binaries(self.progress)
            self._start_over(binaries, announce="deleting")
            return True

    def restore(self, archive: Path) -> ClusterStatus:
        """Bring back a cluster from a copy that `down` or `up --recreate` kept, then start it."""
        archive = Path(archive).expanduser().absolute()
        with self._lock():
            if self.cluster_dir.exists():
                raise LocalClusterError(
                    f"a local cluster already exists in {self.cluster_dir}; restoring over it would mix two clusters",
                    fix="`jhtutorial cluster down` first (it keeps a copy of this one too), then restore")
            self.progress(f"restoring the local cluster from {archive}")
            restore(archive, self.state_dir, HOSTPATH_ROOT)
            self._link_programs(ensure_binaries(self.progress))
        return self.up()

    def status(self) -> ClusterStatus:
        if not self.cluster_dir.exists():
            return ClusterStatus("absent", self.kubeconfig)
        return self._status(ensure_binaries(self.progress))

    def component_pids(self) -> dict[str, int | None]:
        """The process id of each control-plane component, by name (None when it is not running)."""
        return self.plane.pids()

    def stop_component(self, name: str) -> None:
        """Stop one component (for example kube-apiserver) to rehearse an outage."""
        component = self.plane.component(name)
        pid = self.plane.pid(component)
        if pid is None:
            raise LocalClusterError(f"component {name!r} is not running", fix="see `jhtutorial cluster status`")
        os.kill(pid, signal.SIGTERM)
        wait_until_gone([pid], timeout=30)

    def start_components(self) -> None:
        """Start whatever component is not running and wait until the API server answers."""
        with self._lock():
            self._reuse_or_repair(ensure_binaries(self.progress))

    # --- steps of `up` ------------------------------------------------------------

    def _create(self, binaries: Binaries, port: int | None) -> None:
        # A new cluster holds nothing yet, so a creation that fails half-way is removed and tried once more:
        # kwokctl's own set-up sometimes loses a race with the API server it just started (it once answered
        # "metadata.resourceVersion: must be specified" while installing kwok's resources).
        for attempt in (1, 2):
            try:
                self._create_once(binaries, port)
                return
            except PortInUse:
                raise
            except LocalClusterError as err:
                # leave nothing half-made behind: the next `up` starts clean
                self._delete(binaries, quiet=True)
                if attempt == 2:
                    raise
                self.progress(f"creating the cluster failed ({err.problem.splitlines()[0]}); trying once more")

    def _create_once(self, binaries: Binaries, port: int | None) -> None:
        # Every port is chosen here, by the kernel. Left to itself, each kwokctl counts down from 32767 and
        # takes the first free port: two clusters made at once, or one made while another's etcd is down,
        # get the same ports, and one cluster's API server ends up talking to the other's etcd.
        picked = [free for free in free_ports(len(COMPONENT_PORTS) + 1) if free != port]
        port = port or picked.pop()
        _ensure_port_free(port)
        ports = {"kubeApiserverPort": port, **dict(zip(COMPONENT_PORTS, picked))}
        self.progress(f"creating local cluster '{CLUSTER_NAME}' (kube-apiserver on 127.0.0.1:{port})")
        self.kwok_workdir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "kwokctl.yaml"
        config.write_text(yaml.safe_dump_all([self._kwokctl_config(binaries, ports), _kwok_config()], sort_keys=False))
        self._kwokctl(binaries, "create", "cluster", "--config", str(config), "--timeout", "120s")

    def _kwokctl_config(self, binaries: Binaries, ports: dict[str, int]) -> dict:
        return {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "kubeVersion": versions.KUBERNETES,
                "etcdVersion": versions.ETCD,
                "bindAddress": "127.0.0.1",
                **ports,
                "kubeAuthorization": True,
                "kubeAdmission": True,
                "kubeApiserverBinary": str(binaries.kube_apiserver),
                "kubeControllerManagerBinary": str(binaries.kube_controller_manager),
                "kubeSchedulerBinary": str(binaries.kube_scheduler),
                "kubectlBinary": str(binaries.kubectl),
                "etcdBinary": str(binaries.etcd),
                "kwokControllerBinary": str(binaries.kwok),
                "enableCRDs": KWOK_CRDS,
                # the `kubernetes` Service's ClusterIP, which pods inside sandboxes reach the API server by,
                # as KUBERNETES_SERVICE_HOST says on any cluster
                "kubeApiserverCertSANs": [KUBERNETES_CLUSTER_IP],
            },
            "componentsPatches": [
                *self._client_certificates_only(ports),
                {"name": "kube-apiserver", "extraArgs": [{"key": "service-cluster-ip-range", "value": SERVICE_CIDR}]},
                # the nodes' InternalIP (kwok's own default is none: see _renew_kwok)
                {"name": "kwok-controller", "extraArgs": [{"key": "node-ip", "value": NODE_IP, "override": True}]},
                {
                    "name": "kube-controller-manager",
                    "extraArgs": [
                        # the real PV controller provisions hostPath volumes for our StorageClass
                        {"key": "enable-hostpath-provisioner", "value": "true"},
                        {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
                        # one replica needs no election; with one it quits after ten seconds without the API
                        # server, turning a short API server outage into two more dead components
                        {"key": "leader-elect", "value": "false"},
                    ],
                },
                {"name": "kube-scheduler", "extraArgs": [{"key": "leader-elect", "value": "false"}]},
            ],
        }

    def _client_certificates_only(self, ports: dict[str, int]) -> list[dict]:
        """Patches that make etcd and kwok serve only holders of a certificate of the cluster's CA.

        Both listen on 127.0.0.1, which every account of the machine shares. As kwokctl starts them,
        etcd answers plain HTTP to anyone (every object, Secrets included, to read and to write) and kwok's
        kubelet port runs exec and port-forward for anyone, with no API server and no RBAC in between.
        So etcd speaks TLS with client certificates, and kwok (patched: patches/README.md) takes only TLS
        clients with one: the API server, which presents the cluster's admin certificate to both, as
        kube-apiserver presents its client certificate to etcd and to kubelets on a real cluster.
        """
        pki = self.cluster_dir / "pki"
        ca, cert, key = str(pki / "ca.crt"), str(pki / "admin.crt"), str(pki / "admin.key")
        client, peer = f"https://127.0.0.1:{ports['etcdPort']}", f"https://127.0.0.1:{ports['etcdPeerPort']}"

        def override(key_: str, value: str) -> dict:
            return {"key": key_, "value": value, "override": True}

        def arg(key_: str, value: str) -> dict:
            return {"key": key_, "value": value}

        return [
            {"name": "etcd", "extraArgs": [
                override("listen-client-urls", client), override("advertise-client-urls", client),
                override("listen-peer-urls", peer), override("initial-advertise-peer-urls", peer),
                override("initial-cluster", f"node0={peer}"),
                arg("cert-file", cert), arg("key-file", key), arg("client-cert-auth", "true"),
                arg("trusted-ca-file", ca),
                arg("peer-cert-file", cert), arg("peer-key-file", key), arg("peer-client-cert-auth", "true"),
                arg("peer-trusted-ca-file", ca),
            ]},
            {"name": "kube-apiserver", "extraArgs": [
                override("etcd-servers", client),
                arg("etcd-cafile", ca), arg("etcd-certfile", cert), arg("etcd-keyfile", key),
                arg("kubelet-client-certificate", cert), arg("kubelet-client-key", key),
            ]},
            {"name": "kwok-controller", "extraEnvs": [{"name": "KWOK_CLIENT_CA_FILE", "value": ca}]},
        ]

    def _reuse_or_repair(self, binaries: Binaries) -> None:
        """Keep a healthy cluster; start again whatever of it died. Never deletes data."""
        missing = [part for part in ("pki", "kubeconfig.yaml", "kwok.yaml")
                   if not (self.cluster_dir / part).exists()]
        if missing:
            if self._holds_data():
                raise LocalClusterError(
                    f"the local cluster's folder {self.cluster_dir} lacks {', '.join(missing)} but holds etcd's "
                    "data, so it cannot be started; it was left as it is",
                    fix="`jhtutorial cluster up --recreate` starts over and keeps a copy of the data first")
            # a creation interrupted before etcd stored anything: there is nothing to keep
            self.progress(f"the cluster folder is incomplete (no {', '.join(missing)}) and holds no data: "
                          "a creation was interrupted; creating the cluster again")
            self._delete(binaries, quiet=True)
            return
        renewed = self._renew_kwok(binaries)
        stopped = self.plane.stopped()
        if not stopped and self._served(binaries):
            self.progress("local cluster is already running; reusing it")
            return
        self._repair(binaries, stopped, renewed=renewed)

    def _renew_kwok(self, binaries: Binaries) -> bool:
        """Bring the cluster's kwok up to what this version runs; True when that stopped it (the repair then
        starts it again). kwok, the agent of the simulated nodes, keeps nothing of its own: the pods, their
        programs and the cluster's data stay as they are, so neither change needs a `--recreate`.

        - the build: a changed kwok patch (a fix to exec or port-forward, a lockdown of its port) builds kwok
          into a new folder; the cluster's link is pointed there;
        - its node address: a cluster made without one gives its nodes only a hostname, and kwok's own
          node-initialize stage, which runs when a node is not Ready (as after kwok was away for longer than
          the node-monitor grace period), then writes an empty address list: the API server can no longer
          reach the nodes' kubelet port, and every `kubectl exec`, `logs` and `port-forward` fails with "no
          preferred addresses found". The record gets 127.0.0.1, where kwok listens.
        """
        try:
            component = self.plane.component("kwok-controller")
        except LocalClusterError:
            return False
        rebuilt = component.binary.is_symlink() and component.binary.resolve() != binaries.kwok.resolve()
        addressless = f"--node-ip={NODE_IP}" not in component.args
        if not (rebuilt or addressless):
            return False
        pid = self.plane.pid(component)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_until_gone([pid], 10)
        if rebuilt:
            component.binary.unlink()
            component.binary.symlink_to(binaries.kwok)
            self.progress("kwok, the simulated nodes' agent, was built anew here since this cluster was made: "
                          f"the cluster runs the new build ({binaries.kwok.parent.name})")
        if addressless:
            self.plane.set_argument(component, "node-ip", NODE_IP)
            self.progress(f"kwok now gives the nodes the address {NODE_IP} (where it listens), which this cluster "
                          "was made without")
        return pid is not None

    def _repair(self, binaries: Binaries, stopped: list[Component], renewed: bool = False) -> None:
        """Start the stopped components again from kwokctl's record until the API server answers and every
        component runs (``renewed``: kwok was stopped on purpose, by :meth:`_renew_kwok`).

        kwok starts last, once the API server answers, after the leases of its nodes are released: a kwok that
        finds them held by the one before it waits until they expire (200 s), and meanwhile the nodes are
        not looked after; kube-controller-manager marks them NotReady.

        Looked at again on every round, not once: a SIGKILLed kube-apiserver takes a moment to release its
        memory, and until then it still counts as running (kwokctl then says "already started" and waits two
        minutes for nothing); a component can also exit right after its start.
        """
        crashed = [c.name for c in stopped if not (renewed and c.name == "kwok-controller")]
        if crashed:
            self.progress(f"repairing the local cluster: {', '.join(crashed)} not running (a crash, "
                          "a kill or a reboot); starting again with the same data, port and certificates")
        elif stopped:
            self.progress("starting kwok again")
        else:
            self.progress("every component runs but the API server does not answer; waiting for it")
        starts: dict[str, int] = {}
        deadline = time.monotonic() + REPAIR_SECONDS
        while True:
            for component in stopped:
                if starts.get(component.name, 0) >= REPAIR_ROUNDS:
                    raise LocalClusterError(
                        f"the repair failed: {component.name} stopped again after each of {REPAIR_ROUNDS} starts; "
                        f"its log ends with:\n{_tail(_read(component.log_file), 8)}\nnothing was deleted: the "
                        f"cluster's data, certificates and kubeconfigs are still in {self.cluster_dir}",
                        fix=self._after_failed_repair(component.log_file))
                if component.name == "kwok-controller":
                    if not self._served(binaries):
                        continue
                    self._release_node_leases(binaries)
                if component.name in starts:
                    self.progress(f"{component.name} stopped again; starting it once more")
                self._check_ports_free(component)
                renewing = renewed and component.name == "kwok-controller" and component.name not in starts
                self.plane.start(component, why="to run kwok as this version does" if renewing else CRASHED)
                starts[component.name] = starts.get(component.name, 0) + 1
            if not stopped and self._served(binaries):
                return
            if time.monotonic() > deadline:
                raise LocalClusterError(
                    f"the repair failed: kube-apiserver did not answer within {REPAIR_SECONDS} s\nnothing was "
                    f"deleted: the cluster's data, certificates and kubeconfigs are still in {self.cluster_dir}",
                    fix=self._after_failed_repair(self.cluster_dir / "logs" / "kube-apiserver.log"))
            time.sleep(0.2)  # /readyz and process exits have nothing to wait on
            stopped = self.plane.stopped()

    def _release_node_leases(self, binaries: Binaries) -> None:
        """Delete the node leases, before kwok starts: every node of this cluster is kwok's, and the kwok that
        held them is gone."""
        with contextlib.suppress(LocalClusterError):
            self._kubectl(binaries, "delete", "leases", "--all", "-n", "kube-node-lease", "--ignore-not-found",
                          "--wait=false")

    def _after_failed_repair(self, log: Path) -> str:
        return (f"read {log} (and the other logs beside it); once the cause is fixed, `jhtutorial cluster up` "
                f"tries the repair again. To start over instead: `jhtutorial cluster up --recreate` (it keeps a "
                f"copy of the data in {backups_dir(self.state_dir)} first)")

    def _link_programs(self, binaries: Binaries) -> None:
        """Point the cluster folder's bin/ at the programs built here, as kwokctl does when it creates one."""
        built = {"etcd": binaries.etcd, "kube-apiserver": binaries.kube_apiserver,
                 "kube-controller-manager": binaries.kube_controller_manager,
                 "kube-scheduler": binaries.kube_scheduler, "kwok-controller": binaries.kwok}
        for component in self.plane.components():
            if component.name in built and not component.binary.exists():
                component.binary.parent.mkdir(parents=True, exist_ok=True)
                component.binary.unlink(missing_ok=True)  # a dangling link
                component.binary.symlink_to(built[component.name])

    def _check_ports_free(self, component: Component) -> None:
        """A dead component's ports may have been taken meanwhile; say so rather than start it to fail
        (or, for etcd's, leave a live API server talking to whatever listens there now)."""
        for port in component.ports:
            # a moment's grace: the dead process's sockets, or a client's retry that happened to take the port
            # as its own local end, are usually gone within seconds
            deadline = time.monotonic() + PORT_GRACE_SECONDS
            while not port_free(port) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not port_free(port):
                what = ("every kubeconfig of this cluster names that port" if component.name == "kube-apiserver"
                        else "its other components are set to reach it there")
                raise PortInUse(
                    f"{component.name} cannot start again: its port {port} on 127.0.0.1 is now used by another "
                    f"process ({what})",
                    fix=f"stop that process (`ss -ltnp 'sport = :{port}'` shows which), then run `jhtutorial "
                    "cluster up` again; nothing was deleted")

    def _holds_data(self) -> bool:
        etcd = self.cluster_dir / "etcd"
        return etcd.is_dir() and any(path.is_file() for path in etcd.rglob("*"))

    def _start_over(self, binaries: Binaries, announce: str = "starting over: deleting") -> None:
        """Keep a copy of the cluster (data, certificates, volume folders), then delete it."""
        # stopped first, so that the copy is consistent: nothing writes while it is packed
        volumes = self._volume_folders(binaries)
        self._stop_processes()
        if self._holds_data():
            archive = keep_copy(self.state_dir, self.cluster_dir, volumes)
            self.progress(f"{announce} local cluster '{CLUSTER_NAME}'; a copy of its data is kept in {archive} "
                          f"(bring it back with `jhtutorial cluster restore {archive}`)")
        else:
            self.progress(f"{announce} local cluster '{CLUSTER_NAME}' (it held no data)")
        self._delete(binaries, quiet=True, volumes=volumes)

    def _configure(self, binaries: Binaries, nodes: int) -> None:
        """Fake nodes, a default StorageClass and the policy that hands backed pods to the supervisor;
        server-side apply, so re-runs converge."""
        manifest = json.dumps({"apiVersion": "v1", "kind": "List",
                               "items": [*self._node_objects(nodes), _storage_class(), *policy_objects()]})
        deadline = time.monotonic() + 30
        while True:
            try:
                # --force-conflicts: these objects are the cluster's own; a hand edit of them is undone here
                self._kubectl(binaries, "apply", "--server-side", "--force-conflicts", "--field-manager=jhtutorial-local",
                              "-f", "-", stdin=manifest)
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
                          "`jhtutorial cluster up --recreate` makes it anew with them (keeping a copy of this one)")

    def _check_certificate_names(self) -> None:
        """Say so when the API server's certificate predates the name pods reach it by (the `kubernetes`
        Service's ClusterIP): the hub in a sandbox would then fail every call with a certificate error."""
        names = certificate_ip_names(self.cluster_dir / "pki" / "admin.crt")
        if names is not None and KUBERNETES_CLUSTER_IP not in names:
            self.progress(f"this cluster's API server certificate was made without {KUBERNETES_CLUSTER_IP}, the "
                          "address pods in sandboxes reach it by: the hub cannot start user servers; "
                          "`jhtutorial cluster up --recreate` makes it anew (keeping a copy of this one)")

    def _check_client_certificates(self) -> None:
        """Say so when etcd and kwok of this cluster answer every account of the machine (a cluster made before
        they took only the API server's certificate): its Secrets can be read, and its pods entered, from
        127.0.0.1 without any check."""
        try:
            recorded = (self.cluster_dir / "kwok.yaml").read_text()
        except OSError:
            return
        if "KWOK_CLIENT_CA_FILE" not in recorded:
            self.progress("this cluster's etcd and kwok answer every account of this machine without a certificate "
                          "(it was made by an older version): `jhtutorial cluster up --recreate` makes it anew "
                          "with client certificates (keeping a copy of this one)")

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
                    fix=f"read {self.cluster_dir / 'logs' / 'kube-apiserver.log'}; `jhtutorial cluster up` "
                    "repairs what is down",
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
        plane_down = not any(components.values())
        components["supervisor"] = self.supervisor.pid() is not None
        status = ClusterStatus("stopped" if plane_down else "degraded", self.kubeconfig, components=components,
                               supervisor=self.supervisor.lines())
        port = self._apiserver_port()
        status.server = f"https://127.0.0.1:{port}" if port else None
        if plane_down or not (known_ready or self._served(binaries)):
            return status
        status.state = "running" if all(components.values()) else "degraded"
        status.kubernetes_version = json.loads(self._kubectl(binaries, "get", "--raw", "/version"))["gitVersion"]
        items = json.loads(self._kubectl(binaries, "get", "nodes,storageclasses", "-o", "json"))["items"]
        nodes = [item for item in items if item["kind"] == "Node"]
        status.nodes_total = len(nodes)
        status.nodes_ready = sum(1 for node in nodes if node_is_ready(node))
        chosen = default_storage_class(item for item in items if item["kind"] == "StorageClass")
        status.default_storage_class = chosen["metadata"]["name"] if chosen else None
        return status

    # --- removal ------------------------------------------------------------------

    def _delete(self, binaries: Binaries, quiet: bool = False, volumes: list[Path] | None = None) -> None:
        if not quiet:
            self.progress(f"deleting local cluster '{CLUSTER_NAME}'")
        if volumes is None:
            volumes = self._volume_folders(binaries)
        self._stop_processes()
        try:
            self._kwokctl(binaries, "delete", "cluster")
        except LocalClusterError:
            pass  # a half-made folder kwokctl does not recognise: removed below
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        # checked again right before deleting, by the function the tests hold to it: a folder vetted when the
        # API server listed it could have been swapped for a link since
        remove_volume_folders([str(folder) for folder in volumes], HOSTPATH_ROOT)
        (self.state_dir / "kwokctl.yaml").unlink(missing_ok=True)
        self._remove_exported_kubeconfig()

    def _stop_processes(self) -> None:
        # first the ways in to its hubs (`jhtutorial access open`, a learner's login), whose keepers would
        # otherwise start kubectl again and again against a server that is gone, holding their ports
        self._close_ways_in()
        # then the processes that back pods: nothing may outlive the cluster
        self.supervisor.stop()
        remove_tree(self.supervisor.folder / "pods")  # files of the pods' own users included
        # What follows is deleted or packed, so there is nothing to shut down
        # gracefully for (kube-apiserver alone takes seconds to drain).
        pids = [pid for pid in self.component_pids().values() if pid is not None]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_until_gone(pids, timeout=15)

    def _close_ways_in(self) -> None:
        """End the ways in recorded in this cluster's state folder that reach its API server (any namespace,
        any context: a classroom's learners have their own), and say how many."""
        port = self._apiserver_port()
        if port is None:
            return
        closed = close_ways_in_to(self.state_dir, f"https://127.0.0.1:{port}")
        if closed:
            listed = ", ".join(f"{way.namespace} on port {way.port}" for way in closed)
            self.progress(f"closed {len(closed)} way{'s' if len(closed) > 1 else ''} in to this cluster's hubs "
                          f"(kubectl port-forward: {listed}); their ports are free")

    def _volume_folders(self, binaries: Binaries) -> list[Path]:
        """The folders of this cluster's PersistentVolumes (asked of the API server, so only while it answers)."""
        if not self._served(binaries):
            return []
        try:
            pvs = json.loads(self._kubectl(binaries, "get", "pv", "-o", "json"))["items"]
        except LocalClusterError:
            return []
        return volume_folders_inside([str((pv.get("spec") or {}).get("hostPath", {}).get("path", "")) for pv in pvs],
                                     HOSTPATH_ROOT)

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
                "`jhtutorial cluster up --recreate` starts over (keeping a copy of the data first)",
            ) from None
        if result.returncode != 0:
            raise LocalClusterError(
                f"`kwokctl {' '.join(args)}` failed:\n{_tail(result.stderr or result.stdout)}",
                fix=f"look at the component logs in {self.cluster_dir / 'logs'}; "
                "`jhtutorial cluster up --recreate` starts over (keeping a copy of the data first)",
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
        paths.private_dir(self.state_dir)  # keys, kubeconfigs and Secret files below: the owner's only
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


def volume_folders_inside(paths: list[str], root: Path) -> list[Path]:
    """The folders among ``paths`` that really lie inside ``root`` (not ``root`` itself).

    A PV's hostPath is text that whoever may create PVs chooses: ``root/../home`` or a symlink under the root
    reads as inside it. So each path is resolved (``..`` and symlinks followed, as the kernel would) before
    the check, and the resolved folder is the one returned.
    """
    real_root = root.resolve()
    found: list[Path] = []
    for text in paths:
        if not text or not Path(text).is_absolute():
            continue
        folder = Path(text).resolve()
        if folder != real_root and folder.is_relative_to(real_root) and folder.is_dir():
            found.append(folder)
    return found


def share_volume_root(root: Path) -> None:
    """Make the hostPath provisioner's folder one that every account's local cluster can provision in.

    kube-controller-manager's provisioner makes each volume's folder under this one fixed path, so on a
    machine where several accounts run a local cluster the first would otherwise lock the others out.
    Shared as /tmp is (everyone may add, only the owner may remove); each volume's folder is its
    maker's (mode 0750). Its owner may rename or remove anything in it, though, so it must be root's or
    this account's: an account that made it first could otherwise swap a cluster's volume folder, once
    made, for a folder of its own (and read the hub's database and cookie secret there) or for a link.
    """
    shared = stat.S_ISVTX | 0o777
    if not root.exists():
        with contextlib.suppress(FileExistsError):  # made meanwhile by another account's cluster
            root.mkdir()
            root.chmod(shared)
    info = root.lstat()
    if info.st_uid not in (0, os.geteuid()) or (root.is_symlink() and info.st_uid != 0):
        raise LocalClusterError(
            f"{root} is {'a link' if root.is_symlink() else 'a folder'} of another account (uid {info.st_uid}), "
            "which could replace this cluster's volume folders in it by its own or by links",
            fix=f"as root, once you know what is in it: rm -r {root}; mkdir -m 1777 {root} (root's, shared like /tmp)")
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != shared and not root.is_symlink():
        root.chmod(shared)  # made by an earlier version, for its owner only
    elif not os.access(root, os.W_OK | os.X_OK):
        raise LocalClusterError(
            f"{root} belongs to root and this account may not add volumes to it: "
            "the cluster's PersistentVolumeClaims would never bind",
            fix=f"as root: chmod 1777 {root} (shared like /tmp; each volume's folder stays its maker's)")


def remove_volume_folders(paths: list[str], root: Path) -> list[Path]:
    """Delete the folders among ``paths`` that really lie inside ``root``; return them."""
    removed = volume_folders_inside(paths, root)
    for folder in removed:
        remove_tree(folder)  # a pod's user made files there
    return removed


def certificate_ip_names(path: Path) -> list[str] | None:
    """The IP addresses a certificate is valid for (None when it cannot be read)."""
    # JupyterHub, which the backing runs, brings the cryptography package; without it there is nothing to say
    try:
        from cryptography import x509
    except ImportError:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    return [str(address) for address in names.get_values_for_type(x509.IPAddress)]


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


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
