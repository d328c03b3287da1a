"""`kubectl exec` streams into a backed pod as on a node: stdin's end reaches the command, and a command whose
kubectl is gone (killed, its terminal closed) does not stay behind in the pod's sandbox.

Real: a pod backed in a sandbox by the supervisor of a cluster of the module's own (conftest's
``sandboxed_cluster``, whose kwok is built with this branch's patches), reached through the API server; what
runs in the sandbox is read from the kernel's process table (``tests/kubehelpers.sandbox_processes``).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import secrets
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jhtutorial.connect import connect
from jhtutorial.localcluster import LocalCluster
from tests.kubehelpers import read_terminal_until, restricted, sandbox_processes, until

POD = "streams"
PROGRAM = f"{sys.executable} -c import time; time.sleep(36000)"
# what a kubelet's runtime reports for a command ended by SIGKILL
EXIT_CODE_OF_SIGKILL = 128 + signal.SIGKILL


@pytest.fixture(scope="module")
def backed_pod(sandboxed_cluster: LocalCluster, kubectl: Path) -> Iterator[tuple[LocalCluster, str]]:
    """A running pod of a backed namespace, its program in a sandbox, that `kubectl exec` reaches."""
    namespace = f"exec-streams-{secrets.token_hex(3)}"
    conn = connect(namespace=namespace, kubeconfig=sandboxed_cluster.kubeconfig)  # backed, Pod Security restricted
    conn.close()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, "namespace": namespace},
           "spec": restricted({"volumes": [{"name": "home", "emptyDir": {}}],
                               "containers": [{"name": "main", "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
                                               "command": PROGRAM.split(" ", 2),
                                               "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]}]})}
    _kubectl(sandboxed_cluster, kubectl, "apply", "-f", "-", stdin=json.dumps(pod))
    # kwok learns of the pod's Exec object from its watch a moment after the supervisor writes it
    until("an exec into the backed pod", lambda: _kubectl(sandboxed_cluster, kubectl, "-n", namespace, "exec", POD,
                                                          "--", "true", check=False).returncode == 0)
    yield sandboxed_cluster, namespace


def _kubectl(cluster: LocalCluster, kubectl: Path, *args: str, stdin: str | None = None, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(kubectl), "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                            capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def _exec_argv(cluster: LocalCluster, kubectl: Path, namespace: str, *argv: str, flags: tuple[str, ...] = ()) -> list[str]:
    return [str(kubectl), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "exec", *flags, POD, "--", *argv]


def _running(cluster: LocalCluster, namespace: str, command_line: str) -> list[int]:
    """The machine's PIDs of the processes in the pod's sandbox whose command line (its words joined by spaces)
    is ``command_line``."""
    found = []
    for pid in sandbox_processes(cluster, namespace, POD)[f"{namespace}/{POD}"]:
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if b" ".join(words).decode(errors="replace") == command_line:
            found.append(pid)
    return found


def _sleeps(cluster: LocalCluster, namespace: str, *seconds: int) -> list[int]:
    """The PIDs of ``sleep SECONDS`` for each of ``seconds`` when all of them run, else none."""
    found = [_running(cluster, namespace, f"sleep {n}") for n in seconds]
    return [pid for pids in found for pid in pids] if all(found) else []


def test_the_end_of_stdin_reaches_the_command(backed_pod: tuple[LocalCluster, str], kubectl: Path) -> None:
    cluster, namespace = backed_pod
    counted = _kubectl(cluster, kubectl, "-n", namespace, "exec", "-i", POD, "--", "wc", "-l", stdin="a\nb\n",
                       timeout=30)
    assert counted.stdout.strip() == "2"
    # a larger input, all of it, through a shell that goes on once its input has ended
    data = secrets.token_hex(300_000)
    echoed = _kubectl(cluster, kubectl, "-n", namespace, "exec", "-i", POD, "--", "sh", "-c", "cat; echo; echo done",
                      stdin=data, timeout=30)
    assert echoed.stdout == f"{data}\ndone\n"


def test_a_command_ended_by_a_signal_reports_it_as_a_node_does(backed_pod: tuple[LocalCluster, str],
                                                               kubectl: Path) -> None:
    cluster, namespace = backed_pod
    killed = _kubectl(cluster, kubectl, "-n", namespace, "exec", POD, "--", "sh", "-c", "kill -KILL $$", check=False)
    assert killed.returncode == EXIT_CODE_OF_SIGKILL, killed.stderr
    assert f"command terminated with exit code {EXIT_CODE_OF_SIGKILL}" in killed.stderr
    # the command starts with no signal ignored: the writer of a closed pipe ends quietly, by SIGPIPE
    piped = _kubectl(cluster, kubectl, "-n", namespace, "exec", POD, "--", "sh", "-c",
                     "yes | head -n 1; grep ^SigIgn /proc/self/status")
    assert piped.stdout.split() == ["y", "SigIgn:", "0000000000000000"], piped.stdout
    assert "Broken pipe" not in piped.stderr


@pytest.mark.parametrize(("signal_to_kubectl", "script"), [
    (signal.SIGINT, "sleep 1001 & sleep 1002"),
    # even processes that ignore the hang-up end, a moment later
    (signal.SIGKILL, "trap '' HUP; sleep 1001 & sleep 1002"),
])
def test_an_execs_processes_end_when_its_kubectl_is_killed(backed_pod: tuple[LocalCluster, str], kubectl: Path,
                                                           signal_to_kubectl: signal.Signals, script: str) -> None:
    cluster, namespace = backed_pod
    program = _running(cluster, namespace, PROGRAM)
    client = subprocess.Popen(_exec_argv(cluster, kubectl, namespace, "sh", "-c", script),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = until("the exec's two sleeps in the sandbox", lambda: _sleeps(cluster, namespace, 1001, 1002))
        client.send_signal(signal_to_kubectl)
        client.wait(timeout=30)
        until(f"the exec's processes {started} gone", lambda: not _sleeps(cluster, namespace, 1001, 1002),
              timeout=10)
        assert _running(cluster, namespace, PROGRAM) == program  # the pod's own program goes on
    finally:
        client.kill()
        client.wait()


def test_a_background_job_holding_the_output_ends_with_its_client(backed_pod: tuple[LocalCluster, str],
                                                                   kubectl: Path) -> None:
    """The command has ended, but a job it left holds its output, so the exec goes on (as on a node); when its
    kubectl goes, the job goes too. A job that let go of the output is the pod's, as on a node: it stays."""
    cluster, namespace = backed_pod
    _kubectl(cluster, kubectl, "-n", namespace, "exec", POD, "--", "sh", "-c", "sleep 1004 >/dev/null 2>&1 &")
    daemon = _running(cluster, namespace, "sleep 1004")
    assert len(daemon) == 1
    client = subprocess.Popen(_exec_argv(cluster, kubectl, namespace, "sh", "-c", "sleep 1003 &"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until("the job in the sandbox", lambda: _sleeps(cluster, namespace, 1003))
        time.sleep(1)
        assert client.poll() is None, "the exec waits for the output the job holds"
        client.kill()
        client.wait()
        until("the job gone", lambda: not _sleeps(cluster, namespace, 1003), timeout=10)
        assert _running(cluster, namespace, "sleep 1004") == daemon
    finally:
        client.kill()
        client.wait()
        _kubectl(cluster, kubectl, "-n", namespace, "exec", POD, "--", "pkill", "-f", "sleep 1004", check=False)


def test_closing_the_terminal_hangs_up_the_shell_and_its_jobs(backed_pod: tuple[LocalCluster, str],
                                                              kubectl: Path) -> None:
    cluster, namespace = backed_pod
    witness = f"/tmp/hung-up-{secrets.token_hex(3)}"
    controller, terminal = pty.openpty()

    def on_its_own_terminal() -> None:  # kubectl in a session whose controlling terminal is the pty, as in a window
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    client = subprocess.Popen(_exec_argv(cluster, kubectl, namespace, "sh", flags=("-it",)), stdin=terminal,
                              stdout=terminal, stderr=terminal, close_fds=True, preexec_fn=on_its_own_terminal)
    os.close(terminal)
    seen = bytearray()

    def read_until(wanted: bytes) -> None:
        read_terminal_until(controller, seen, wanted, client)

    try:
        read_until(b"$ ")
        # a job in the background, and one in the foreground that notes the hang-up when it comes
        os.write(controller, b"sleep 1005 & python3 -c \"import signal, sys, time; signal.signal(signal.SIGHUP, "
                             b"lambda *_: sys.exit(open('" + witness.encode() + b"', 'w').write('hung up')));"
                             b" print('wait' + 'ing', flush=True); time.sleep(1006)\"\n")
        read_until(b"\nwaiting")
        shell = [*_running(cluster, namespace, "sh"), *_sleeps(cluster, namespace, 1005)]
        assert len(shell) == 2, shell
        os.close(controller)  # the window is closed
        controller = -1
        client.wait(timeout=30)
        until(f"the shell and its jobs {shell} gone", lambda: not set(shell) & set(
            _running(cluster, namespace, "sh") + _sleeps(cluster, namespace, 1005)), timeout=10)
        noted = _kubectl(cluster, kubectl, "-n", namespace, "exec", POD, "--", "cat", witness)
        assert noted.stdout == "hung up"
    finally:
        if controller >= 0:
            os.close(controller)
        client.kill()
        client.wait()
