"""A classroom on a local cluster whose backed pods run in sandboxes: learners' hubs really run, each their own.

Real: a room made by `classroom up` on a cluster of this module's own (conftest's
``sandboxed_cluster``); two learners deploy the tutorial and log in at once, each with nothing but their kubeconfig
(`jhtutorial up`, `jhtutorial login` through their own `kubectl port-forward`); what one learner's token may do in
the other's namespace, and what a learner's `kubectl exec` into their hub sees of the machine, are asked of the
API server and the sandbox themselves.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jhtutorial.classroom import classroom_down, classroom_status, classroom_up
from jhtutorial.classroom.sizing import BACKED_LEARNER_MEMORY, MiB
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import Forbidden
from jhtutorial.kubeapi import NAMESPACES, PODS, KubeApi
from jhtutorial.localcluster import LocalCluster
from jhtutorial.localcluster.backing import BACKED_BY_ANNOTATION, BACKED_LABEL, CLASSROOM_LABEL
from jhtutorial.localcluster.backing.admission import policy_objects
from jhtutorial.localcluster.backing.policy import backed_labels, namespace_backed, selector_matches
from jhtutorial.localcluster.paths import HOSTPATH_ROOT
from tests.test_classroom import jhtutorial

# --- the rule, without a cluster ------------------------------------------------------------------------


def _namespace(labels: dict[str, str]) -> dict:
    return {"metadata": {"name": "x", "labels": labels}}


def test_a_classroom_is_backed_only_when_marked() -> None:
    learner = _namespace({CLASSROOM_LABEL: "room", **backed_labels()})
    kept_simulated = _namespace({CLASSROOM_LABEL: "room", **backed_labels(False)})
    tutorial = _namespace(backed_labels())
    assert namespace_backed(learner) and namespace_backed(tutorial)
    assert not namespace_backed(kept_simulated) and not namespace_backed(_namespace({}))
    # the API server's admission binding selects by the very same rule
    selector = policy_objects()[1]["spec"]["matchResources"]["namespaceSelector"]
    for namespace in (learner, kept_simulated, tutorial, _namespace({})):
        assert selector_matches(selector, namespace["metadata"]["labels"]) == namespace_backed(namespace)


# --- a backed room -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instructor(sandboxed_cluster: LocalCluster) -> Iterator[Connection]:
    conn = connect(kubeconfig=sandboxed_cluster.kubeconfig, create_namespace=False)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def handout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("handout") / "room"


@pytest.fixture(scope="module")
def room(instructor: Connection, handout: Path) -> Iterator[list[str]]:
    prefix = f"jhtcs-{secrets.token_hex(3)}"
    made = classroom_up(instructor, learners=2, prefix=prefix, output=handout, expires=3600)
    assert any("run in sandboxes of their own" in note for note in made.notes), made.notes
    assert any(re.search(r"backed learners: \d+ more fit this machine", note) for note in made.notes), made.notes
    yield [learner.namespace for learner in made.learners]
    classroom_down(instructor, prefix=prefix, timeout=180)


@pytest.fixture(scope="module")
def logged_in(room: list[str], handout: Path) -> Iterator[dict[str, str]]:
    """Both learners deploy the tutorial, then log in to their own hubs at once; their login's output."""
    def deploy(namespace: str) -> subprocess.CompletedProcess[str]:
        return jhtutorial("up", kubeconfig=handout / f"{namespace}.kubeconfig")

    def log_in(namespace: str) -> subprocess.CompletedProcess[str]:
        return jhtutorial("login", "--timeout", "120", kubeconfig=handout / f"{namespace}.kubeconfig")

    with ThreadPoolExecutor(2) as pool:
        for namespace, done in zip(room, pool.map(deploy, room)):
            assert done.returncode == 0, f"{namespace}: {done.stdout}{done.stderr}"
        logins = dict(zip(room, pool.map(log_in, room)))
    try:
        for namespace, done in logins.items():
            assert done.returncode == 0, f"{namespace}: {done.stdout}{done.stderr}"
        yield {namespace: done.stdout + done.stderr for namespace, done in logins.items()}
    finally:
        for namespace in room:  # each login left its way in open, as `jhtutorial login` does for a learner
            jhtutorial("access", "close", kubeconfig=handout / f"{namespace}.kubeconfig")


def _as_learner(kubectl: Path, handout: Path, learner: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kubectl), "--kubeconfig", str(handout / f"{learner}.kubeconfig"), *args],
                          capture_output=True, text=True, timeout=60)


def test_two_learners_log_in_to_their_own_hubs_at_once(logged_in: dict[str, str], instructor: Connection) -> None:
    kube = KubeApi(instructor.api)
    for namespace, said in logged_in.items():
        assert f"login as admin in namespace {namespace}: the server is up" in said, said
        assert "runs in a sandbox of its own" in said, said
        pods = kube.get(PODS.path(namespace))["items"]
        backed = {p["metadata"]["name"].split("-")[0] for p in pods
                  if BACKED_BY_ANNOTATION in (p["metadata"].get("annotations") or {})}
        assert backed == {"hub", "proxy", "jupyter"}, backed
    status = str(classroom_status(instructor, prefix=next(iter(logged_in)).rsplit("-", 1)[0]))
    assert "learners' pods are simulated" not in status, status


def test_a_learner_may_not_port_forward_or_exec_into_anothers_namespace(logged_in: dict[str, str], kubectl: Path,
                                                                        handout: Path) -> None:
    a, b = logged_in
    # their own: allowed (so the refusals below are about whose namespace it is)
    assert _as_learner(kubectl, handout, a, "-n", a, "exec", "deploy/hub", "--", "true").returncode == 0
    for verb in ("pods/portforward", "pods/exec"):
        assert _as_learner(kubectl, handout, a, "auth", "can-i", "create", verb, "-n", a).stdout.strip() == "yes"
        assert _as_learner(kubectl, handout, b, "auth", "can-i", "create", verb, "-n", a).stdout.strip() == "no"
    hub = _as_learner(kubectl, handout, a, "-n", a, "get", "pods", "-l", "app.kubernetes.io/component=hub",
                      "-o", "name").stdout.split()[0]
    for attempt in (["port-forward", hub, "0:8081"], ["port-forward", "svc/proxy-public", "0:80"],
                    ["exec", hub, "--", "id"], ["exec", "deploy/hub", "--", "id"]):
        refused = _as_learner(kubectl, handout, b, "-n", a, *attempt)
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), (attempt, refused.stderr)
        assert f'system:serviceaccount:{b}:learner' in refused.stderr, refused.stderr


def test_a_learners_exec_into_their_hub_is_confined_to_their_pod(logged_in: dict[str, str], kubectl: Path,
                                                                 handout: Path, sandboxed_cluster: LocalCluster,
                                                                 instructor: Connection) -> None:
    a, b = logged_in
    kube = KubeApi(instructor.api)
    # where learner B's volumes live on the machine: their PersistentVolumes' folders
    b_claims = {pvc["spec"]["volumeName"]
                for pvc in kube.get(f"/api/v1/namespaces/{b}/persistentvolumeclaims")["items"]}
    b_folders = [kube.get(f"/api/v1/persistentvolumes/{name}")["spec"]["hostPath"]["path"] for name in b_claims]
    assert b_folders and all(Path(folder).is_dir() for folder in b_folders)  # they exist, on the machine
    state = sandboxed_cluster.state_dir
    probes = {
        "uid": "id -u",
        "write-usr": "touch /usr/jhtcs-escaped",
        "write-etc": "touch /etc/jhtcs-escaped",
        "write-root": "touch /jhtcs-escaped",
        "write-db": "touch /srv/jupyterhub/jhtcs-own-volume && echo written",
        "write-tmp": "touch /tmp/jhtcs-private && echo written",  # the sandbox's own /tmp, as a container's
        "processes": "cat /proc/[0-9]*/comm",
        **{f"b-volume-{n}": f"ls {folder}" for n, folder in enumerate(b_folders)},
        "hostpath-root": f"ls {HOSTPATH_ROOT}",
        "state": f"ls {state}",
        "kubeconfig": f"cat {sandboxed_cluster.kubeconfig}",
        "cluster-kubeconfig": f"cat {sandboxed_cluster.cluster_dir / 'kubeconfig.yaml'}",
        "b-handout": f"cat {handout / f'{b}.kubeconfig'}",
    }
    seen = {}
    for name, command in probes.items():
        done = _as_learner(kubectl, handout, a, "-n", a, "exec", "deploy/hub", "--", "sh", "-c", command)
        seen[name] = (done.returncode, done.stdout.strip(), done.stderr.strip())
    assert seen["uid"][:2] == (0, "1000"), seen["uid"]  # not root
    for name in ("write-usr", "write-etc", "write-root"):
        assert seen[name][0] != 0 and "Read-only file system" in seen[name][2], (name, seen[name])
    assert seen["write-db"][:2] == (0, "written"), seen["write-db"]  # its own volume is writable
    assert seen["write-tmp"][:2] == (0, "written") and not Path("/tmp/jhtcs-private").exists()
    # its own processes only: neither learner B's hub, proxy (nginx, node) or server, nor the machine's
    assert "jupyterhub" in seen["processes"][1].split() and not {"nginx", "node", "jupyterhub-sing", "kube-apiserver",
                                                                    "etcd"} & set(seen["processes"][1].split())
    for name in [n for n in probes if n.startswith("b-volume")] + ["hostpath-root", "state", "kubeconfig",
                                                                    "cluster-kubeconfig", "b-handout"]:
        assert seen[name][0] != 0 and not seen[name][1], (name, seen[name])
        assert re.search(r"No such file|Permission denied", seen[name][2]), (name, seen[name])
    for name in [n for n in probes if n.startswith("b-volume")] + ["hostpath-root", "state", "kubeconfig"]:
        assert "No such file" in seen[name][2], (name, seen[name])  # hidden, not merely unreadable
    assert not any(Path(p).exists() for p in ("/usr/jhtcs-escaped", "/etc/jhtcs-escaped", "/jhtcs-escaped"))


def test_a_learners_own_pod_asking_for_the_machine_is_refused(logged_in: dict[str, str], handout: Path) -> None:
    """A backed learner namespace enforces Pod Security `restricted`: what would reach past the sandbox is refused
    by the API server, with its reason."""
    a = next(iter(logged_in))
    kube = KubeApi(connect(kubeconfig=handout / f"{a}.kubeconfig", namespace=a, create_namespace=False).api)
    image = "quay.io/jupyterhub/k8s-hub:4.4.0"  # an image the backing runs: the pod would be backed
    for name, spec in (("root", {"securityContext": {"runAsUser": 0}}),
                       ("host", {"hostNetwork": True, "hostPID": True}),
                       ("disk", {"volumes": [{"name": "machine", "hostPath": {"path": "/"}}]})):
        with pytest.raises(Forbidden, match=r'violates PodSecurity "restricted:latest"'):
            kube.call("POST", PODS.path(a), body={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                                  "spec": {**spec, "containers": [{"name": "c", "image": image}]}})


# --- how many fit, and rooms kept simulated -------------------------------------------------------------------


def test_up_refuses_more_backed_learners_than_fit_naming_the_figure(sandboxed_cluster: LocalCluster, instructor: Connection,
                                                                   tmp_path: Path) -> None:
    prefix = f"jhtcs-{secrets.token_hex(3)}"
    asked = 1000  # about 310 GiB: no machine this runs on holds that
    refused = jhtutorial("classroom", "up", "--learners", str(asked), "--prefix", prefix, "--output",
                         str(tmp_path / "handout"), kubeconfig=sandboxed_cluster.kubeconfig)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stderr
    assert f"{asked} more backed learner(s) do not fit this machine" in said, said
    assert f"about {BACKED_LEARNER_MEMORY // MiB} MiB" in said and "MemAvailable" in said, said
    fit = int(re.search(r": (\d+) fit", said).group(1))
    assert 0 <= fit < asked and f"ask for at most {fit} more" in said and "--simulated" in said, said
    assert "Traceback" not in said
    kube = KubeApi(instructor.api)
    assert kube.get(NAMESPACES.path(), labelSelector=f"{CLASSROOM_LABEL}={prefix}")["items"] == []  # nothing made
    assert not (tmp_path / "handout").exists()


def test_simulated_learners_stay_unbacked(sandboxed_cluster: LocalCluster, instructor: Connection, tmp_path: Path) -> None:
    prefix = f"jhtcs-{secrets.token_hex(3)}"
    handout = tmp_path / "handout"
    made = jhtutorial("classroom", "up", "--learners", "1", "--simulated", "--prefix", prefix, "--output",
                      str(handout), kubeconfig=sandboxed_cluster.kubeconfig)
    try:
        assert made.returncode == 0, made.stdout + made.stderr
        assert "kept purely simulated (--simulated)" in made.stdout and "more fit this machine" not in made.stdout
        namespace = f"{prefix}-1"
        kube = KubeApi(instructor.api)
        assert kube.get(NAMESPACES.path(name=namespace))["metadata"]["labels"][BACKED_LABEL] == "false"
        up = jhtutorial("up", kubeconfig=handout / f"{namespace}.kubeconfig")
        assert up.returncode == 0, up.stdout + up.stderr
        pods = kube.get(PODS.path(namespace))["items"]
        assert {p["metadata"]["name"].split("-")[0] for p in pods} == {"hub", "proxy"}
        assert not any(BACKED_BY_ANNOTATION in (p["metadata"].get("annotations") or {}) for p in pods)
        assert not any(key.startswith(f"{namespace}/") for key in sandboxed_cluster.supervisor.status().get("pods", {}))
        assert "learners' pods are simulated" in str(classroom_status(instructor, prefix=prefix))
    finally:
        classroom_down(instructor, prefix=prefix, wait=False)
