"""`kubectl exec` into a pod's sandbox through kwok's Exec, patched with a command prefix (patches/README.md).

The pod is simulated by kwok; its "container" is a sandbox made on this machine.
Every spelling of a command must run inside it, as the pod's user, and a pod
without an Exec object must run nothing at all.
"""

from __future__ import annotations

import os
import pty
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from jhtutorial.localcluster import build, versions
from jhtutorial.localcluster.backing.sandbox import RunAs, Sandbox, SandboxSpec, create
from tests.kubehelpers import namespace_admin_kubeconfig, read_terminal_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes as the machine's root")

USER = RunAs(uid=1000, gid=1000)
SECRET_FILE = "/tmp/only-the-sandbox-sees-this"


@pytest.fixture(scope="module")
def exec_crd(kubectl: Path, kubeconfig: Path) -> None:
    found = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "get", "crd", "execs.kwok.x-k8s.io"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip("the local cluster predates kwok's Exec resource: `jhtutorial cluster down` then "
                    "`jhtutorial cluster up` recreates it with it")


def _running_pod(api_client: client.ApiClient, namespace: str, name: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    })
    deadline = time.monotonic() + 60
    while core.read_namespaced_pod(name, namespace).status.phase != "Running":
        assert time.monotonic() < deadline, f"pod {name} did not start"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def sandboxed_pod(api_client: client.ApiClient, namespace: str, exec_crd: None) -> Iterator[tuple[str, Sandbox]]:
    name = "sandboxed-0"
    _running_pod(api_client, namespace, name)
    box = create(SandboxSpec(key=f"{namespace}.{name}", hostname=name))
    try:
        made = box.run(["sh", "-c", f"echo 'inside {name}' > {SECRET_FILE}"], USER)
        assert made.returncode == 0, made.stderr
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "kwok.x-k8s.io", "v1alpha1", namespace, "execs", {
                "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"execs": [{"local": {"envs": box.kwok_exec_envs(USER)}}]},
            })
        yield name, box
    finally:
        box.teardown()


def _exec(kubectl: Path, kubeconfig: Path, namespace: str, pod: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, "exec", pod, "--", *argv],
                          capture_output=True, text=True, timeout=60)


@needs_root
def test_every_spelling_of_a_command_runs_inside_the_sandbox(
    sandboxed_pod: tuple[str, Sandbox], kubectl: Path, kubeconfig: Path, namespace: str
) -> None:
    pod, _ = sandboxed_pod
    first = _exec_until_ready(kubectl, kubeconfig, namespace, pod)
    assert first.stdout == f"inside {pod}\n"
    assert not Path(SECRET_FILE).exists()  # the file is on the sandbox's own /tmp
    for argv, expected in ((["/bin/cat", SECRET_FILE], f"inside {pod}"), (["/bin/hostname"], pod),
                           (["uname", "-n"], pod), (["id", "-u"], "1000"),
                           (["sh", "-c", "grep ^CapEff /proc/self/status"], "CapEff:\t0000000000000000"),
                           # the pod's RuntimeDefault seccomp filter: a user namespace, the usual way into the
                           # kernel's less trodden paths, is refused
                           (["sh", "-c", "grep ^Seccomp: /proc/self/status; unshare -Ur true 2>&1; echo $?"],
                            "Seccomp:\t2\nunshare: unshare failed: Operation not permitted\n1")):
        result = _exec(kubectl, kubeconfig, namespace, pod, *argv)
        assert (result.returncode, result.stdout.strip()) == (0, expected), (argv, result.stderr)
    # its own PID namespace: the shell's PID is small, not the machine's
    assert int(_exec(kubectl, kubeconfig, namespace, pod, "sh", "-c", "echo $$").stdout) < 100
    # the exit status passes through as from a kubelet, without the prefix in the message
    failed = _exec(kubectl, kubeconfig, namespace, pod, "sh", "-c", "exit 3")
    assert failed.returncode == 3 and "command terminated with exit code 3" in failed.stderr
    assert "nsenter" not in failed.stderr


@needs_root
def test_an_interactive_shell_runs_inside_the_sandbox(
    sandboxed_pod: tuple[str, Sandbox], kubectl: Path, kubeconfig: Path, namespace: str
) -> None:
    pod, _ = sandboxed_pod
    _exec_until_ready(kubectl, kubeconfig, namespace, pod)
    controller, terminal = pty.openpty()
    shell = subprocess.Popen([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, "exec", "-it", pod,
                              "--", "sh"], stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    seen = bytearray()

    def read_until(wanted: bytes) -> None:
        read_terminal_until(controller, seen, wanted, shell)

    try:
        read_until(b"$ ")  # the shell's prompt: it reads from the terminal now
        os.write(controller, b'echo "$(hostname) $(id -u) $([ -t 0 ] && echo on-a-terminal)"\n')
        read_until(f"{pod} 1000 on-a-terminal".encode())
        os.write(controller, b"echo filter-$(awk '/^Seccomp:/ {print $2}' /proc/self/status)\n")
        read_until(b"filter-2")  # the shell on the terminal runs under the pod's seccomp filter too
        # job control: the shell's terminal is its own, so Ctrl-C stops the foreground job and not the shell
        os.write(controller, b"sleep 300\n")
        time.sleep(1)
        os.write(controller, b"\x03")
        os.write(controller, b"echo after-ctrl-c-$?\n")
        read_until(b"after-ctrl-c-130")
        os.write(controller, b"exit 0\n")
        assert shell.wait(timeout=30) == 0, bytes(seen)
        assert b"job control turned off" not in seen and b"tty process group" not in seen, bytes(seen)
    finally:
        shell.kill()
        shell.wait()
        os.close(controller)


def _exec_until_ready(kubectl: Path, kubeconfig: Path, namespace: str, pod: str) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 30
    while (first := _exec(kubectl, kubeconfig, namespace, pod, "cat", SECRET_FILE)).returncode != 0:
        # kwok learns of the new Exec object from its watch a moment later
        assert "no exec found" in first.stderr and time.monotonic() < deadline, first.stderr
        time.sleep(0.5)
    return first


def test_a_pod_without_an_exec_object_runs_nothing(
    api_client: client.ApiClient, kubectl: Path, kubeconfig: Path, namespace: str, exec_crd: None, tmp_path: Path
) -> None:
    _running_pod(api_client, namespace, "plain-0")
    marker = tmp_path / "ran"
    result = _exec(kubectl, kubeconfig, namespace, "plain-0", "touch", str(marker))
    assert result.returncode != 0
    assert 'no exec found for container "main"' in result.stderr
    assert not marker.exists()


def test_kwok_is_cached_by_version_and_patch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed patch builds kwok again (a new cache folder); Kubernetes and etcd keep theirs."""
    before = build._cache_folders()
    assert before["kwok"].name == f"kwok-{versions.KWOK}-{build.kwok_patch_digest()}"
    assert all(patch.read_text().count("+++ b/") >= 1 for patch in build.KWOK_PATCHES)
    changed = tmp_path / "changed.diff"
    changed.write_text(build.KWOK_PATCHES[0].read_text() + "\n")
    monkeypatch.setattr(build, "KWOK_PATCHES", (changed,))
    after = build._cache_folders()
    assert after["kwok"] != before["kwok"]
    assert (after["kubernetes"], after["etcd"]) == (before["kubernetes"], before["etcd"])


@needs_root
def test_port_forward_reaches_a_server_that_listens_only_inside(
    sandboxed_pod: tuple[str, Sandbox], api_client: client.ApiClient, kubectl: Path, kubeconfig: Path, namespace: str
) -> None:
    pod, box = sandboxed_pod
    made = box.run(["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/name"], USER)
    assert made.returncode == 0, made.stderr
    server = subprocess.Popen([*box.enter_command(USER), "python3", "-m", "http.server", "--bind", "127.0.0.1",
                               "--directory", "/tmp/www", "8080"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    forward = None
    try:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "kwok.x-k8s.io", "v1alpha1", namespace, "portforwards", {
                "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
                "metadata": {"name": pod, "namespace": namespace},
                "spec": {"forwards": [{"ports": [80], "command": box.port_forward_command(8080, USER)}]},
            })
        deadline = time.monotonic() + 30
        while True:
            if forward is None or forward.poll() is not None:
                # kubectl ends a port-forward for good on its first failed connection (kwok learns of the
                # PortForward a moment after it is made; the server may still be starting): start it again
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    local_port = probe.getsockname()[1]
                forward = subprocess.Popen([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace,
                                            "port-forward", f"pod/{pod}", f"{local_port}:80"],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                assert forward.stdout is not None and "Forwarding from 127.0.0.1" in forward.stdout.readline()
            try:
                # a file of the sandbox's own /tmp, served from inside
                page = urllib.request.urlopen(f"http://127.0.0.1:{local_port}/name", timeout=5).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, forward.stderr.read() if forward.poll() is not None else ""
                time.sleep(0.5)
        assert page.strip() == pod  # a file that exists only in the sandbox's /tmp
        # the server listens on the pod's own loopback
        assert "127.0.0.1:8080 " in box.run(["ss", "-Hltn"], USER).stdout
    finally:
        if forward is not None:
            forward.kill()
            forward.wait()
        server.kill()
        server.wait()


@needs_root
def test_a_learner_execs_into_their_own_pod_as_its_user_and_is_forbidden_elsewhere(
    sandboxed_pod: tuple[str, Sandbox], api_client: client.ApiClient, kubectl: Path, namespace: str,
    other_namespace: str, tmp_path: Path
) -> None:
    pod, _ = sandboxed_pod
    mine = namespace_admin_kubeconfig(api_client, namespace, tmp_path / "mine.yaml", name="learner-a")
    stranger = namespace_admin_kubeconfig(api_client, other_namespace, tmp_path / "stranger.yaml", name="learner-b")
    deadline = time.monotonic() + 30
    while (own := _exec(kubectl, mine, namespace, pod, "sh", "-c", "id -u; hostname")).returncode != 0:
        assert time.monotonic() < deadline, own.stderr  # RBAC and kwok's watch follow a moment later
        time.sleep(0.5)
    assert own.stdout.split() == ["1000", pod]
    refused = _exec(kubectl, stranger, namespace, pod, "id", "-u")
    # kubectl reads the pod first: refused there, before any exec is asked for
    assert refused.returncode != 0 and "(Forbidden)" in refused.stderr and "learner-b" in refused.stderr
