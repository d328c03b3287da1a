"""`jhtutorial cluster up|down|status`: lifecycle, repair and bad input.

These tests run a second, throw-away local cluster in a temporary state folder
(its own kwok work dir, ports and kubeconfig), so they can kill and delete it
without disturbing the session's cluster. Binaries come from the shared cache.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from jhtutorial import LocalCluster, LocalClusterError, PortInUse, ToolMissing
from jhtutorial.localcluster import ensure_binaries, versions
from jhtutorial.localcluster.build import kubernetes_wrapper_gomod
from jhtutorial.localcluster.components import alive as process_alive
from jhtutorial.localcluster.components import wait_until_gone
from tests.kubehelpers import until

JHTUTORIAL = str(Path(sys.executable).parent / "jhtutorial")


@pytest.fixture
def scratch_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_cluster) -> Iterator[Path]:
    """A state folder of its own; whatever cluster a test leaves there is removed."""
    if local_cluster is None:
        pytest.skip("exercises the local cluster")
    ensure_binaries()  # built (or found) before the state folder moves
    state = tmp_path / "state"
    monkeypatch.setenv("JHTUTORIAL_STATE", str(state))
    yield state
    LocalCluster(progress=lambda _: None).down()


def _quiet() -> LocalCluster:
    return LocalCluster(progress=lambda _: None)


def _user_kubeconfig_snapshot() -> bytes | None:
    path = Path.home() / ".kube" / "config"
    return path.read_bytes() if path.exists() else None


@pytest.mark.cluster
def test_up_creates_then_reuses_then_down_removes(scratch_state: Path) -> None:
    before = _user_kubeconfig_snapshot()
    messages: list[str] = []
    cluster = LocalCluster(progress=messages.append)

    status = cluster.up()
    assert status.state == "running"
    assert status.kubernetes_version == versions.KUBERNETES
    assert (status.nodes_ready, status.nodes_total) == (3, 3)
    assert status.default_storage_class == "standard"
    assert status.kubeconfig == scratch_state / "kubeconfig" and status.kubeconfig.exists()
    server = yaml.safe_load(status.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://127.0.0.1:")  # loopback only
    # pods in sandboxes reach it at the kubernetes Service's ClusterIP, which its certificate must name
    serving = subprocess.run(["openssl", "s_client", "-connect", server.removeprefix("https://"), "-showcerts"],
                             input="", capture_output=True, text=True, timeout=30).stdout
    names = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=serving,
                           capture_output=True, text=True, check=True).stdout
    assert "IP Address:10.96.0.1" in names and "DNS:kubernetes.default.svc" in names, names

    messages.clear()
    again = cluster.up()
    assert any("already running; reusing it" in m for m in messages)
    assert again.server == status.server

    pids = [p for p in cluster.component_pids().values() if p]
    assert len(pids) == 5  # etcd, apiserver, controller-manager, scheduler, kwok
    assert cluster.down() is True
    assert cluster.status().state == "absent"
    assert not status.kubeconfig.exists()
    assert not any(process_alive(pid) for pid in pids)  # zombies awaiting their reaper count as gone
    assert cluster.down() is False  # idempotent
    assert _user_kubeconfig_snapshot() == before  # ~/.kube/config never touched


@pytest.mark.cluster
def test_up_restarts_a_cluster_whose_processes_were_killed(scratch_state: Path) -> None:
    cluster = _quiet()
    cluster.up()
    subprocess.run([str(ensure_binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig),
                    "create", "namespace", "survives-a-crash"], check=True, capture_output=True)
    for pid in cluster.component_pids().values():
        if pid:
            os.kill(pid, signal.SIGKILL)  # what a crash or a reboot leaves behind
    assert cluster.status().state == "stopped"

    messages: list[str] = []
    status = LocalCluster(progress=messages.append).up()
    assert status.state == "running"
    assert any("repairing the local cluster" in m for m in messages)
    assert not any("deleting" in m or "creating local cluster" in m for m in messages)
    out = subprocess.run([str(ensure_binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig),
                          "get", "namespace", "survives-a-crash", "-o", "name"],
                         check=True, capture_output=True, text=True).stdout
    assert out.strip() == "namespace/survives-a-crash"  # etcd's data was kept
    # kwok started after the API server answered, its dead predecessor's node leases released: it looks after
    # the nodes at once, rather than 200 s later when they expire (meanwhile the nodes would turn NotReady)
    kubectl = [str(ensure_binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig)]
    assert cluster.component_pids()["kwok-controller"]
    until("kwok holds the node leases", lambda: len(_lease_holders(kubectl)) == 1, timeout=30)
    log = (cluster.cluster_dir / "logs" / "kwok-controller.log").read_text()
    assert "lease already exists" not in log.split("started again by")[-1]


def _lease_holders(kubectl: list[str]) -> set[str]:
    out = subprocess.run([*kubectl, "get", "leases", "-n", "kube-node-lease", "-o",
                          "jsonpath={.items[*].spec.holderIdentity}"], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def _node_addresses(kubectl: list[str]) -> list[list[dict]]:
    nodes = json.loads(subprocess.run([*kubectl, "get", "nodes", "-o", "json"], check=True, capture_output=True,
                                      text=True).stdout)["items"]
    return [node["status"].get("addresses") or [] for node in nodes]


@pytest.mark.cluster
def test_up_runs_the_kwok_built_here_and_gives_the_nodes_an_address_in_a_cluster_made_before(
        scratch_state: Path, tmp_path: Path) -> None:
    """A changed kwok patch builds kwok anew (in a folder named after the patches), and a cluster made by an older
    version has no node address in its record (kwok's node-initialize stage then empties the nodes' addresses
    whenever they were NotReady, and exec, logs and port-forward fail). `up` restarts kwok with the new build and
    the address, keeping the cluster's data, and the new kwok takes the nodes' leases at once instead of waiting
    200 s for the old one's to expire."""
    cluster = _quiet()
    cluster.up()
    kubectl = [str(ensure_binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig)]
    assert all({"type": "InternalIP", "address": "127.0.0.1"} in found for found in _node_addresses(kubectl))
    subprocess.run([*kubectl, "create", "namespace", "outlives-kwok"], check=True, capture_output=True)
    # the cluster as an older version left it: its kwok started from another build's binary, with no node address
    older = tmp_path / "kwok-v0-older" / "kwok"
    older.parent.mkdir()
    shutil.copy2(ensure_binaries().kwok, older)
    component = cluster.plane.component("kwok-controller")
    old_pid = cluster.component_pids()["kwok-controller"]
    os.kill(old_pid, signal.SIGTERM)
    wait_until_gone([old_pid], 10)
    cluster.plane.set_argument(component, "node-ip", "")
    component.binary.unlink()
    component.binary.symlink_to(older)
    older_pid = cluster.plane.start(cluster.plane.component("kwok-controller"))
    assert Path(f"/proc/{older_pid}/exe").resolve() == older
    until("the older kwok holds the node leases", lambda: len(_lease_holders(kubectl)) == 1, timeout=30)
    held_before = _lease_holders(kubectl)

    messages: list[str] = []
    status = LocalCluster(progress=messages.append).up()
    assert any("kwok, the simulated nodes' agent, was built anew" in m for m in messages), messages
    assert any("kwok now gives the nodes the address 127.0.0.1" in m for m in messages), messages
    assert not any("a crash, a kill or a reboot" in m for m in messages), messages
    assert not process_alive(older_pid)
    new_pid = cluster.component_pids()["kwok-controller"]
    assert Path(f"/proc/{new_pid}/exe").resolve() == ensure_binaries().kwok.resolve()
    assert "--node-ip=127.0.0.1" in Path(f"/proc/{new_pid}/cmdline").read_bytes().decode().split("\0")
    # the old leases were released: the new kwok holds them now, not 200 s from now
    until("the new kwok holds the node leases", lambda: (held := _lease_holders(kubectl)) and not held & held_before,
          timeout=30)
    assert (status.nodes_ready, status.nodes_total) == (3, 3)
    out = subprocess.run([*kubectl, "get", "namespace", "outlives-kwok", "-o", "name"],
                         check=True, capture_output=True, text=True).stdout
    assert out.strip() == "namespace/outlives-kwok"


@pytest.mark.cluster
def test_up_recreates_a_cluster_folder_it_cannot_restart(scratch_state: Path) -> None:
    cluster = _quiet()
    cluster.up()
    for pid in cluster.component_pids().values():
        if pid:
            os.kill(pid, signal.SIGKILL)
    # a run killed half-way through creation: no pki, no etcd data
    shutil.rmtree(cluster.cluster_dir / "pki")
    shutil.rmtree(cluster.cluster_dir / "etcd", ignore_errors=True)
    status = cluster.up()
    assert status.state == "running" and status.nodes_ready == 3


@pytest.mark.cluster
def test_two_clusters_made_at_once_share_no_port(scratch_state: Path, tmp_path: Path) -> None:
    """Two `cluster up` in two state folders at the same moment (two users, or two test runs, on one machine):
    each component of each gets a port of its own, so no API server can end up on the other's etcd."""
    other_state = tmp_path / "other-state"
    other_env = {**os.environ, "JHTUTORIAL_STATE": str(other_state)}
    other = subprocess.Popen([JHTUTORIAL, "cluster", "up"], env=other_env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        mine = _quiet()
        mine.up()
        assert other.wait(timeout=300) == 0, other.stderr.read()
        theirs = subprocess.run([JHTUTORIAL, "cluster", "status"], env=other_env, capture_output=True, text=True)
        assert theirs.returncode == 0, theirs.stdout + theirs.stderr

        def ports(state: Path) -> list[int]:
            from jhtutorial.localcluster.components import ControlPlane

            return [port for component in ControlPlane(state / "kwok" / "clusters" / "jhtutorial").components()
                    for port in component.ports]

        assert len(ports(scratch_state)) >= 6 and len(ports(other_state)) >= 6
        assert not set(ports(scratch_state)) & set(ports(other_state))
        assert mine.status().state == "running"
    finally:
        other.kill()
        subprocess.run([JHTUTORIAL, "cluster", "down"], env=other_env, capture_output=True)


@pytest.mark.cluster
def test_a_port_in_use_is_reported_and_nothing_is_created(scratch_state: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse) as err:
            _quiet().up(port=port)
    assert f"port {port}" in str(err.value) and "--port" in str(err.value)
    assert not (scratch_state / "kwok" / "clusters").exists()


def test_a_foreign_kubeconfig_is_never_overwritten(scratch_state: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "config"
    original = "apiVersion: v1\nkind: Config\ncontexts:\n- name: my-real-cluster\n"
    theirs.write_text(original)
    with pytest.raises(LocalClusterError) as err:
        LocalCluster(theirs, progress=lambda _: None).up()
    assert "will not be overwritten" in str(err.value)
    assert theirs.read_text() == original
    assert not (scratch_state / "kwok" / "clusters").exists()


def test_an_unwritable_kubeconfig_path_is_reported_before_anything_starts(scratch_state: Path,
                                                                          tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    with pytest.raises(LocalClusterError) as err:
        LocalCluster(a_file / "kubeconfig", progress=lambda _: None).up()
    assert "cannot write the local cluster's kubeconfig" in str(err.value)
    assert "--kubeconfig" in str(err.value)
    assert not (scratch_state / "kwok" / "clusters").exists()


@pytest.mark.cluster
def test_a_second_up_waits_for_the_first(local_cluster) -> None:
    if local_cluster is None:
        pytest.skip("exercises the local cluster")
    with local_cluster._lock():
        second = subprocess.Popen([JHTUTORIAL, "cluster", "up"], stderr=subprocess.PIPE, text=True)
        assert second.stderr is not None
        first_line = second.stderr.readline()
        assert "is changing the local cluster right now" in first_line
        assert second.poll() is None  # still waiting while we hold the lock
    rest = second.stderr.read()
    assert second.wait(timeout=60) == 0, rest
    assert "reusing it" in rest


def test_missing_go_gets_one_clear_message(tmp_path: Path) -> None:
    env = {
        "PATH": str(Path(sys.executable).parent),  # no go here
        "HOME": str(tmp_path),
        "JHTUTORIAL_CACHE": str(tmp_path / "empty-cache"),
        "JHTUTORIAL_STATE": str(tmp_path / "state"),
    }
    result = subprocess.run([JHTUTORIAL, "cluster", "up"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "needs Go" in result.stderr and "JHTUTORIAL_BIN_DIR" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_incomplete_bin_dir_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kubectl").write_text("#!/bin/sh\n")
    (tmp_path / "kubectl").chmod(0o755)
    monkeypatch.setenv("JHTUTORIAL_BIN_DIR", str(tmp_path))
    with pytest.raises(ToolMissing) as err:
        ensure_binaries()
    assert "kube-apiserver" in str(err.value) and "kubectl," not in str(err.value)


def test_the_kubernetes_wrapper_module_replaces_every_staging_module(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs go")
    gomod = kubernetes_wrapper_gomod(go, versions.KUBERNETES, tmp_path)
    replaces = [line for line in gomod.splitlines() if line.startswith("replace ")]
    assert len(replaces) >= 25
    assert f"replace k8s.io/client-go => k8s.io/client-go {versions.staging_version()}" in replaces
    assert f"require k8s.io/kubernetes {versions.KUBERNETES}" in gomod


def test_staging_version_follows_the_release() -> None:
    assert versions.staging_version("v1.36.3") == "v0.36.3"
    with pytest.raises(ValueError):
        versions.staging_version("v2.0.0")


@pytest.mark.cluster
def test_lock_holder_thread_does_not_block_status(local_cluster) -> None:
    # status only reads: it must answer even while an `up` holds the lock
    if local_cluster is None:
        pytest.skip("exercises the local cluster")
    result: list[str] = []
    with local_cluster._lock():
        reader = threading.Thread(target=lambda: result.append(local_cluster.status().state))
        reader.start()
        reader.join(timeout=30)
    assert result == ["running"]


@pytest.mark.cluster
def test_a_cluster_without_a_default_storage_class_is_reported_by_connect(scratch_state: Path) -> None:
    # on a throw-away cluster, so the shared one keeps its default class
    from jhtutorial import NoDefaultStorageClass, apply, connect

    cluster = _quiet()
    cluster.up()
    subprocess.run([str(ensure_binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig), "annotate",
                    "storageclass", "standard", "storageclass.kubernetes.io/is-default-class-"],
                   check=True, capture_output=True)
    conn = connect(kubeconfig=cluster.kubeconfig, namespace="no-default-class")
    try:
        assert conn.storage_checked and conn.default_storage_class is None
        with pytest.raises(NoDefaultStorageClass) as err:
            conn.require_default_storage_class()
        assert "kubectl patch storageclass" in str(err.value)
        for step in ("rbac", "configmaps", "secret"):
            apply(step, conn=conn)
        with pytest.raises(NoDefaultStorageClass):
            apply("pvc", conn=conn)  # refused before a claim is made that could never bind
        claims = subprocess.run([str(ensure_binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig), "get",
                                 "pvc", "-n", "no-default-class", "-o", "name"],
                                check=True, capture_output=True, text=True).stdout
        assert claims.strip() == ""
    finally:
        conn.close()


@pytest.mark.cluster
def test_a_default_storage_class_marked_the_beta_way_is_the_default_everywhere(scratch_state: Path) -> None:
    # on a throw-away cluster: a second way of marking the default must not reach the shared one
    from jhtutorial import connect
    from jhtutorial import notebook as nb

    cluster = _quiet()
    cluster.up()
    kubectl = [str(ensure_binaries().kubectl), "--kubeconfig", str(cluster.kubeconfig)]
    subprocess.run([*kubectl, "annotate", "storageclass", "standard", "storageclass.kubernetes.io/is-default-class-",
                    "storageclass.beta.kubernetes.io/is-default-class=true"], check=True, capture_output=True)
    # the API server itself still takes it as the default: a claim that names no class gets it
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "no-class"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}}
    subprocess.run([*kubectl, "create", "namespace", "beta-default"], check=True, capture_output=True)
    subprocess.run([*kubectl, "create", "-n", "beta-default", "-f", "-"], input=yaml.safe_dump(claim),
                   text=True, check=True, capture_output=True)
    given = subprocess.run([*kubectl, "get", "pvc", "no-class", "-n", "beta-default",
                            "-o", "jsonpath={.spec.storageClassName}"], check=True, capture_output=True, text=True)
    assert given.stdout == "standard"
    conn = connect(kubeconfig=cluster.kubeconfig, namespace="beta-default", create_namespace=False)
    try:
        assert conn.default_storage_class == "standard"
        assert "standard (default)" in nb.get(conn, "storageclasses", selector=None)
    finally:
        conn.close()
    assert cluster.status().default_storage_class == "standard"


@pytest.mark.cluster
@pytest.mark.skipif(os.geteuid() != 0, reason="pod sandboxes made by root (tests/test_rootless.py: by another owner)")
def test_the_supervisor_lives_and_dies_with_the_cluster(scratch_state: Path) -> None:
    """cluster up starts it (and a new one in place of a dead one), status reports it, and cluster down
    leaves no process it started: the process table before and after is compared."""
    from jhtutorial import connect
    from jhtutorial.localcluster.backing.keeper import descendants
    from jhtutorial.steps import STEPS
    from jhtutorial.waits import wait_pods_ready

    def ours() -> set[int]:
        return {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                and str(scratch_state).encode() in _cmdline(int(p.name))}

    before = ours()
    cluster = _quiet()
    status = cluster.up()
    pid = cluster.supervisor.pid()
    assert pid is not None and any(f"supervisor:    running (pid {pid})" in line for line in status.lines())
    conn = connect(namespace="backed", kubeconfig=status.kubeconfig)  # made here, so marked for backing
    try:
        for step in STEPS:
            if step.files:
                from jhtutorial import apply

                apply(step, conn=conn)
        wait_pods_ready("app.kubernetes.io/component=proxy", conn=conn, timeout=90)
    finally:
        conn.close()
    keepers = [c["pid"] for report in cluster.supervisor.status()["pods"].values()
               for c in report["containers"].values() if c.get("pid")]
    assert len(keepers) >= 3  # hub, nginx, chp
    started = descendants(pid)  # the sandboxes' processes too: their programs' environment names no state folder
    assert set(keepers) <= set(started)
    os.kill(pid, signal.SIGKILL)  # a crash: its programs end with it (they are told to, by the kernel)
    again = cluster.up()
    assert cluster.supervisor.pid() not in (None, pid)
    assert "supervisor:    running" in "\n".join(again.lines())
    wait_pods_ready("app.kubernetes.io/component=proxy", conn=connect(namespace="backed", kubeconfig=again.kubeconfig),
                    timeout=90)
    assert cluster.down() is True
    assert cluster.supervisor.pid() is None
    assert not [p for p in started if process_alive(p)]
    assert ours() - before == set()  # nothing started for this cluster is left running


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


@pytest.mark.cluster
@pytest.mark.skipif(os.geteuid() != 0, reason="pod sandboxes made by root (tests/test_rootless.py: by another owner)")
def test_without_node_the_proxy_pod_stays_simulated_and_says_what_to_install(
        scratch_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without Node.js: configurable-http-proxy cannot run, so the proxy pod is left to kwok (Running,
    simulated) with the reason on it. The hub pod, which needs only Python, still runs in its sandbox (and finds no
    proxy to talk to, as a hub would in a cluster whose proxy pod never started: it is not Ready)."""
    from jhtutorial import apply, connect
    from jhtutorial.access import hub_access, not_backed
    from jhtutorial.kubeapi import PODS, KubeApi
    from jhtutorial.localcluster.backing import BACKED_BY_ANNOTATION, NOT_BACKED_ANNOTATION
    from jhtutorial.steps import STEPS
    from jhtutorial.waits import wait_pods_ready

    cluster = _quiet()
    status = cluster.up()
    cluster.supervisor.stop()
    # node's folder (/usr/bin) holds the programs that make sandboxes too: those stay, through links
    without = tmp_path / "bin-without-node"
    without.mkdir()
    folders = []
    for folder in os.environ["PATH"].split(os.pathsep):
        if (Path(folder) / "node").exists():
            for program in Path(folder).iterdir():
                if program.name != "node" and not (without / program.name).exists():
                    (without / program.name).symlink_to(program)
        else:
            folders.append(folder)
    monkeypatch.setenv("PATH", os.pathsep.join([*folders, str(without)]))
    assert shutil.which("node") is None and shutil.which("unshare") is not None
    cluster.supervisor.ensure_running()  # as `cluster up` would start it on such a machine
    conn = connect(namespace="no-node", kubeconfig=status.kubeconfig)
    try:
        for step in STEPS:
            if step.files:
                apply(step, conn=conn)
        wait_pods_ready("app.kubernetes.io/component=proxy", conn=conn, timeout=60)  # kwok's simulated Ready
        deadline = time.monotonic() + 60
        while True:  # the supervisor's annotations arrive a moment after the pods
            pods = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p["metadata"].get("annotations") or {}
                    for p in KubeApi(conn.api).get(PODS.path("no-node"))["items"]}
            if (NOT_BACKED_ANNOTATION in pods.get("proxy", {}) and BACKED_BY_ANNOTATION in pods.get("hub", {})) or (
                    time.monotonic() > deadline):
                break
            time.sleep(0.5)
        assert "node is not installed" in pods["proxy"][NOT_BACKED_ANNOTATION]
        assert "apt-get install nodejs npm" in pods["proxy"][NOT_BACKED_ANNOTATION]
        assert BACKED_BY_ANNOTATION not in pods["proxy"] and BACKED_BY_ANNOTATION in pods["hub"]
        assert "its programs cannot run here: node is not installed" in (not_backed(conn) or "")
        assert hub_access(conn).url is None
        assert "node is not installed" in cluster.supervisor.log_file.read_text()
    finally:
        conn.close()
