"""Notebook 07's way in outlives the process that opened it and is closed by another one; the hub's side of a
spawn (its log, a stopped server) and what the cluster enforces of a pod's security settings. Against the real
API server, with the pods' programs running (the local cluster's backing)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import jhtutorial
from jhtutorial import notebook as nb
from jhtutorial.enforcement import SETTINGS, enforcement
from jhtutorial.kubeapi import NAMESPACES, PODS, PVCS, SERVICES
from jhtutorial.localcluster.backing import BACKED_BY_ANNOTATION, BACKED_LABEL, POD_SECURITY_LABELS, SANDBOXED_BY
from jhtutorial.wayin import close_way_in, open_way_in, recorded, record_path
from jhtutorial.wayrecord import end_recorded, running
from tests.conftest import scratch_cluster
from tests.kubehelpers import deploy_workbook, free_port

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def conn(kubeconfig: Path, namespace: str, backing: Any) -> Iterator[jhtutorial.Connection]:
    connection = jhtutorial.connect(namespace=namespace, kubeconfig=kubeconfig)
    # marked as notebook 00 marks the namespaces it makes, so the local cluster runs the pods' programs
    nb.kube(connection).call("PATCH", NAMESPACES.path(name=namespace), content_type="application/merge-patch+json",
                             body={"metadata": {"labels": {BACKED_LABEL: "true", **POD_SECURITY_LABELS}}})
    for step in jhtutorial.STEPS:
        if step.files:
            jhtutorial.apply(step, conn=connection)
            step.wait(connection)
    yield connection
    close_way_in(connection)
    connection.close()


def cli(kubeconfig: Path, conn: jhtutorial.Connection, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([sys.executable, "-m", "jhtutorial.cli", *args, "-n", conn.namespace], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def health(url: str) -> int:
    return requests.get(f"{url}/hub/health", timeout=10).status_code


def test_the_way_in_outlives_the_process_that_opened_it_until_another_one_closes_it(
    kubeconfig: Path, conn: jhtutorial.Connection
) -> None:
    port = free_port()
    opened = cli(kubeconfig, conn, "access", "open", "--port", str(port))  # a process that ends, as a kernel does
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == f"http://127.0.0.1:{port}"
    assert f"jhtutorial access close -n {conn.namespace}" in opened.stderr

    way = recorded(conn)  # found again by another process, from the file alone
    assert way is not None and way.port == port and way.url == f"http://127.0.0.1:{port}"
    assert health(way.url) == 200
    again = open_way_in(conn, local_port=free_port())  # still open: reused, not a second forward
    assert again.url == way.url and f"pid {way.pid}" in " ".join(again.notes)
    assert cli(kubeconfig, conn, "access", "status").stdout.startswith(way.url)

    closed = cli(kubeconfig, conn, "access", "close")
    assert closed.returncode == 0 and f"pid {way.pid}" in closed.stdout, closed
    assert not record_path(conn).exists() and recorded(conn) is None
    with pytest.raises(requests.ConnectionError):
        health(way.url)
    assert not Path(f"/proc/{way.pid}").exists() or "Z" in Path(f"/proc/{way.pid}/stat").read_text().split(")")[1]
    assert "no way in is open" in cli(kubeconfig, conn, "access", "close").stdout  # twice: nothing to do


def test_a_way_in_that_died_opens_again_on_its_port_and_a_cli_login_leaves_one_open(
    kubeconfig: Path, conn: jhtutorial.Connection
) -> None:
    port = free_port()
    assert cli(kubeconfig, conn, "access", "open", "--port", str(port)).returncode == 0
    way = recorded(conn)
    assert way is not None
    os.killpg(way.pid, signal.SIGKILL)  # a reboot, a kill: the keeper and its kubectl are gone, the record stays
    deadline = time.monotonic() + 10
    while recorded(conn) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    reopened = cli(kubeconfig, conn, "access", "open")  # no --port: a browser tab left on the old port works again
    assert reopened.returncode == 0, reopened.stderr
    assert reopened.stdout.strip() == f"http://127.0.0.1:{port}"
    close_way_in(conn)

    logged_in = cli(kubeconfig, conn, "login", "--user", "bob")
    assert logged_in.returncode == 0, logged_in.stdout + logged_in.stderr
    lasting = recorded(conn)  # the address it printed outlives the command
    assert lasting is not None and health(lasting.url) == 200
    assert f"{lasting.url}/user/bob/lab" in logged_in.stdout
    assert cli(kubeconfig, conn, "stop", "--user", "bob").returncode == 0


def _forward_children(keeper: int) -> list[int]:
    """The kubectl port-forward processes the way in's keeper runs."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if parent == keeper and b"port-forward" in argv:
                found.append(int(entry.name))
    return found


def test_the_way_in_comes_back_on_its_port_when_kubectl_loses_the_pod(conn: jhtutorial.Connection) -> None:
    """kubectl ends a port-forward for good on one broken connection ("lost connection to pod"); the learner's
    tab must keep its address: the keeper starts kubectl again on the same port."""
    close_way_in(conn)
    access = open_way_in(conn, local_port=free_port())
    way = recorded(conn)
    assert way is not None and health(access.url) == 200
    first = _forward_children(way.pid)
    assert len(first) == 1, first
    os.kill(first[0], signal.SIGKILL)  # what "error: lost connection to pod" amounts to: kubectl is gone
    deadline = time.monotonic() + 30
    while True:
        try:
            if health(access.url) == 200 and _forward_children(way.pid):
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the way in did not come back on its port within 30 s"
        time.sleep(0.5)
    again = _forward_children(way.pid)
    assert again and again != first and recorded(conn) == way  # same keeper, same port, a new kubectl
    assert "starting it again on port" in _log_text(conn)
    close_way_in(conn)
    time.sleep(0.5)
    assert not [pid for pid in again if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]


def test_the_way_in_ends_and_frees_its_port_when_the_service_is_gone(conn: jhtutorial.Connection) -> None:
    """A namespace deleted by hand (not through 08 or `jhtutorial down`, which close the way in) or its Service
    gone: nothing is left to forward to, so the keeper ends instead of holding the port for ever."""
    close_way_in(conn)
    access = open_way_in(conn, local_port=free_port())
    way = recorded(conn)
    assert way is not None and health(access.url) == 200
    service = nb.kube(conn).get(SERVICES.path(conn.namespace, "proxy-public"))
    nb.kube(conn).call("DELETE", SERVICES.path(conn.namespace, "proxy-public"))
    try:
        for child in _forward_children(way.pid):
            os.kill(child, signal.SIGKILL)  # the running kubectl ends (a broken connection); its restart finds no Service
        deadline = time.monotonic() + 30
        while Path(f"/proc/{way.pid}").exists() and "Z" not in Path(f"/proc/{way.pid}/stat").read_text().rsplit(
                ")", 1)[1].split()[0]:
            assert time.monotonic() < deadline, f"the keeper still runs: {_log_text(conn)[-600:]}"
            time.sleep(0.2)
        assert recorded(conn) is None and "nothing to forward to" in _log_text(conn)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", way.port))  # free again
    finally:
        close_way_in(conn)
        kept = {key: service["metadata"][key] for key in ("name", "labels", "annotations") if key in service["metadata"]}
        spec = {key: value for key, value in service["spec"].items() if key not in ("clusterIP", "clusterIPs")}
        nb.kube(conn).call("POST", SERVICES.path(conn.namespace),
                           body={"apiVersion": "v1", "kind": "Service", "metadata": kept, "spec": spec})


def _log_text(conn: jhtutorial.Connection) -> str:
    log = record_path(conn).with_suffix(".log")
    return log.read_text(errors="replace") if log.exists() else ""


def test_cluster_down_closes_the_ways_in_to_that_cluster_and_no_other(
    conn: jhtutorial.Connection, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`jhtutorial cluster down` ends the ways in to the hubs of the cluster it deletes (their keepers would start
    kubectl again and again against a server that is gone, holding their ports); a way in to another cluster,
    recorded in the same state folder, stays open."""
    if os.geteuid() != 0:
        pytest.skip("pod sandboxes exist on the local simulated cluster, made by root")
    state = tmp_path_factory.mktemp("down-closes") / "state"
    with scratch_cluster(state) as cluster:  # JHTUTORIAL_STATE names it meanwhile
        other = open_way_in(conn, local_port=free_port())  # to the module's cluster, recorded in the scratch's state
        try:
            doomed = jhtutorial.connect(namespace="wayin-doomed", kubeconfig=cluster.kubeconfig)
            nb.kube(doomed).call("PATCH", NAMESPACES.path(name=doomed.namespace),
                                 content_type="application/merge-patch+json",
                                 body={"metadata": {"labels": {BACKED_LABEL: "true", **POD_SECURITY_LABELS}}})
            deploy_workbook(doomed)
            access = open_way_in(doomed, local_port=free_port())
            way = recorded(doomed)
            assert way is not None and health(access.url) == 200 and record_path(doomed).parent == state / "ways-in"
            kubectls = _forward_children(way.pid)
            assert len(kubectls) == 1, kubectls
            doomed.close()

            down = subprocess.run([sys.executable, "-m", "jhtutorial.cli", "cluster", "down"], capture_output=True,
                                  text=True, timeout=300, stdin=subprocess.DEVNULL)
            said = down.stdout + down.stderr
            assert down.returncode == 0, said
            assert f"closed 1 way in to this cluster's hubs (kubectl port-forward: {doomed.namespace} on port " \
                   f"{way.port})" in said, said
            assert not [pid for pid in (way.pid, *kubectls) if running(pid)], "the keeper or its kubectl still runs"
            assert not record_path(doomed).exists()
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", way.port))  # free again

            assert recorded(conn) is not None and health(other.url) == 200  # the other cluster's way in: still open
        finally:  # both recorded in the scratch state folder (closed here whatever failed above)
            for record in (state / "ways-in").glob("*.json"):
                end_recorded(record)


def test_a_stale_record_is_never_signalled(conn: jhtutorial.Connection) -> None:
    # a record whose process is another program (a reused pid): neither reported nor killed
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        record_path(conn).parent.mkdir(parents=True, exist_ok=True)
        record_path(conn).write_text(f'{{"pid": {sleeper.pid}, "port": 9, "namespace": "{conn.namespace}", '
                                     f'"context": "{conn.context or ""}"}}')
        assert recorded(conn) is None  # not reported as open (its port is kept for the next open)
        assert close_way_in(conn) is None and not record_path(conn).exists()
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_hub_log_shows_the_spawn_and_a_stopped_server_keeps_its_home_volume(
    kubeconfig: Path, conn: jhtutorial.Connection
) -> None:
    access = open_way_in(conn, local_port=free_port())
    result = nb.log_in(conn, access, "carol", "admin", interactive=False, wait=0, timeout=120)
    assert result is not None and result.server_answered
    log = nb.hub_log(conn, "Attempting to create pod", "took")
    assert "Attempting to create pod jupyter-carol" in log and "User carol took" in log, log

    stopped = cli(kubeconfig, conn, "stop", "--user", "carol", "--url", access.url)  # 07's command, as typed
    assert stopped.returncode == 0 and "pod jupyter-carol is gone" in stopped.stdout, stopped
    kube = nb.kube(conn)
    assert kube.get_or_none(PODS.path(conn.namespace, "jupyter-carol")) is None
    assert kube.get(PVCS.path(conn.namespace, "claim-carol"))["status"]["phase"] == "Bound"
    assert "server took" in nb.hub_log(conn, "carol server took", last=1)


def test_an_interactive_login_waits_with_a_countdown_and_never_logs_in_itself(
    conn: jhtutorial.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    access = open_way_in(conn, local_port=free_port())
    assert nb.log_in(conn, access, "dave", "admin", interactive=True, wait=2, timeout=60) is None
    printed = capsys.readouterr().out
    assert f"open {access.url}/hub/login in a second browser tab" in printed
    assert "nobody logged in as dave within 2 s" in printed and f"jhtutorial login --user dave -n {conn.namespace}" in printed
    assert nb.kube(conn).get_or_none(PODS.path(conn.namespace, "jupyter-dave")) is None


def test_what_the_cluster_enforces_is_read_from_where_the_pod_runs(conn: jhtutorial.Connection) -> None:
    hub = nb.kube(conn).get(PODS.path(conn.namespace), labelSelector="app.kubernetes.io/component=hub")["items"][0]
    assert hub["metadata"]["annotations"][BACKED_BY_ANNOTATION].startswith(SANDBOXED_BY)  # its programs run here
    here = enforcement(conn.cluster_kind, hub)
    assert here.enforced == frozenset({"USER", "NON-ROOT", "PRIV-ESCALATION", "CAPS DROPPED", "READ-ONLY ROOT", "SECCOMP"})
    table = nb.pod_security(conn)
    assert "(enforced here)" in table and "USER, NON-ROOT, PRIV-ESCALATION, CAPS DROPPED, READ-ONLY ROOT, SECCOMP true" in table
    # elsewhere a container runtime enforces every setting; the backing's sandboxes some of them
    assert enforcement("kind", hub).enforced == frozenset(SETTINGS)
    annotations = {BACKED_BY_ANNOTATION: f"{SANDBOXED_BY} (pod IP 10.244.1.5; hub as uid 1000)"}
    sandboxed = {**hub, "metadata": {"annotations": annotations}}
    assert enforcement("local", sandboxed).says("USER") == "yes" and enforcement("local", sandboxed).says("LIMITS") == "no"
    assert enforcement("local", {"metadata": {}}).enforced == frozenset()  # nothing runs for a purely simulated pod
