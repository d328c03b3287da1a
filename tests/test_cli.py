"""The `jhtutorial` command, run as a learner or a script runs it: a separate process, its exit code, its output.

Exit codes are the contract (0 ok, 1 not done, 2 usage, 4 connection, 5 step,
9 hub unreachable); each is produced by the real situation, against the real
API server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from jhtutorial.cli import _still_waiting
from jhtutorial.connect import context_namespace, resolve_namespace
from tests.kubehelpers import foreign_user_server, free_port, kubeconfig_file



def jhtutorial(*args: str, kubeconfig: Path, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("JHTUTORIAL_NAMESPACE", "JHTUTORIAL_CONTEXT")}
    environment.update({"KUBECONFIG": str(kubeconfig), **(env or {})})
    return subprocess.run([sys.executable, "-m", "jhtutorial.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout)


def test_the_tutorial_from_the_command_line(kubeconfig: Path, namespace: str, api_client: client.ApiClient,
                                            kubectl: Path, backing) -> None:
    ns = ["--namespace", namespace]
    status = jhtutorial("status", *ns, kubeconfig=kubeconfig)
    assert status.returncode == 1, status.stderr
    assert "step 01 (rbac) is NOT done" in status.stdout

    partial = jhtutorial("up", "--through", "pvc", *ns, kubeconfig=kubeconfig)
    assert partial.returncode == 0, partial.stderr
    assert "steps up to 04-pvc applied" in partial.stdout and "PVC hub-db-dir bound" in partial.stdout

    early = jhtutorial("url", *ns, kubeconfig=kubeconfig)
    assert early.returncode == 5
    assert "steps 05-services (" in early.stderr and "and 06-deployments (" in early.stderr
    assert f"jhtutorial up --through 6 -n {namespace}" in early.stderr

    full = jhtutorial(*ns, "up", kubeconfig=kubeconfig)  # the option before the command works too
    assert full.returncode == 0, full.stderr
    assert "Deployment hub available" in full.stdout and "applied in namespace" in full.stdout
    assert jhtutorial("status", *ns, kubeconfig=kubeconfig).returncode == 0

    url = jhtutorial("url", *ns, kubeconfig=kubeconfig)
    assert url.returncode == 9 and url.stdout == ""  # scripts reading $(jhtutorial url) get nothing
    # the test's namespace was not made by `jhtutorial up`: its pods stay purely simulated, and it says why
    assert "purely simulated" in url.stderr and f"kubectl label namespace {namespace} jhtutorial/backed=true" in (
        url.stderr)
    assert jhtutorial("login", *ns, kubeconfig=kubeconfig).returncode == 1

    # marked as `jhtutorial up` marks the namespaces it makes: the pods now run as local processes
    subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "label", "namespace", namespace,
                    "jhtutorial/backed=true"], check=True, capture_output=True)
    wrong = jhtutorial("login", "--password", "nope", *ns, kubeconfig=kubeconfig)
    assert wrong.returncode == 9 and "Invalid username or password" in wrong.stderr

    logged_in = jhtutorial("login", *ns, kubeconfig=kubeconfig)
    assert logged_in.returncode == 0, logged_in.stderr
    assert "pod jupyter-admin created by KubeSpawner" in logged_in.stdout
    assert "a Jupyter server answered" in logged_in.stdout

    status = jhtutorial("status", *ns, kubeconfig=kubeconfig)
    if backing is not None:  # the local cluster
        assert "jupyter-admin: a sandbox on this machine" in status.stdout

    foreign_user_server(api_client, namespace, "bob")  # another hub's user: down must leave it alone
    down = jhtutorial("down", *ns, kubeconfig=kubeconfig)
    assert down.returncode == 0, down.stderr
    assert "removed 17 objects" in down.stdout
    assert "Pod/jupyter-admin (created by the hub for user admin)" in down.stdout
    # said before it happens, which home volume goes and whose
    assert down.stdout.index("deleting the home volume of user admin: PersistentVolumeClaim/claim-admin") < (
        down.stdout.index("removed 17 objects"))
    assert (f"the same by hand: kubectl delete -n {namespace} deployments -l app.kubernetes.io/part-of=jhtutorial "
            in down.stdout)  # the Deployments first, as clean_up() and notebook 08 do
    core = client.CoreV1Api(api_client)
    assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["jupyter-bob"]
    assert [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items] == ["claim-bob"]
    again = jhtutorial("down", *ns, kubeconfig=kubeconfig)
    assert again.returncode == 0 and again.stdout.startswith(f"nothing to remove in namespace {namespace}")
    assert jhtutorial("status", *ns, kubeconfig=kubeconfig).returncode == 1


def test_the_namespace_comes_from_the_option_the_variable_or_the_context(kubeconfig: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = "from-the-context"
    with_namespace = tmp_path / "kubeconfig"
    with_namespace.write_text(yaml.safe_dump(config))

    def shown(*args: str, env: dict[str, str] | None = None) -> str:
        result = jhtutorial("status", *args, kubeconfig=with_namespace, env=env)
        assert result.returncode == 1, result.stderr  # nothing deployed in any of them
        return result.stdout.splitlines()[0].split()[1]

    assert shown() == "from-the-context"
    assert shown(env={"JHTUTORIAL_NAMESPACE": "from-the-variable"}) == "from-the-variable"
    assert shown("-n", "from-the-option", env={"JHTUTORIAL_NAMESPACE": "from-the-variable"}) == "from-the-option"
    assert jhtutorial("status", kubeconfig=kubeconfig).stdout.split()[1] == "jhtutorial"  # no namespace anywhere


def test_wrong_usage_exits_2(kubeconfig: Path) -> None:
    for args in (["--namespace", "Not_Valid", "status"], ["status", "-n", "x" * 64], ["frobnicate"],
                 ["status", "--bogus"], ["url", "--method", "ftp"]):
        result = jhtutorial(*args, kubeconfig=kubeconfig)
        assert result.returncode == 2, (args, result.stderr)
        assert "usage: jhtutorial" in result.stderr
    invalid = jhtutorial("status", "-n", "Not_Valid", kubeconfig=kubeconfig)
    assert "'Not_Valid' is not a valid namespace name" in invalid.stderr and "'not-valid'" in invalid.stderr


def test_connection_problems_exit_4(kubeconfig: Path, tmp_path: Path) -> None:
    wrong_context = jhtutorial("--context", "no-such-context", "status", kubeconfig=kubeconfig)
    assert wrong_context.returncode == 4
    assert "has no context 'no-such-context'" in wrong_context.stderr
    nobody = kubeconfig_file(tmp_path / "nobody", f"https://127.0.0.1:{free_port()}", {"token": "x"}, ca=None)
    unreachable = jhtutorial("status", kubeconfig=nobody)
    assert unreachable.returncode == 4 and "no answer from the Kubernetes API server" in unreachable.stderr
    missing = jhtutorial("status", kubeconfig=tmp_path / "does-not-exist")
    assert missing.returncode == 4 and "KUBECONFIG is set to" in missing.stderr


def test_an_unknown_step_exits_5(kubeconfig: Path, namespace: str) -> None:
    result = jhtutorial("up", "--through", "99", "-n", namespace, kubeconfig=kubeconfig)
    assert result.returncode == 5 and "there is no step '99'" in result.stderr


def test_the_context_comes_from_the_option_or_the_variable(kubeconfig: Path, namespace: str,
                                                           tmp_path: Path) -> None:
    """The current context points nowhere; JHTUTORIAL_CONTEXT (what `jhtutorial lab --context` sets for the
    notebooks) picks the working one, and the namespace comes from that context."""
    config = yaml.safe_load(kubeconfig.read_text())
    real = config["contexts"][0]
    config["clusters"].append({"name": "nowhere", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}})
    config["contexts"] = [{"name": "nowhere", "context": {**real["context"], "cluster": "nowhere"}},
                          {"name": "chosen", "context": {**real["context"], "namespace": namespace}}]
    config["current-context"] = "nowhere"
    two = tmp_path / "kubeconfig"
    two.write_text(yaml.safe_dump(config))

    assert jhtutorial("status", kubeconfig=two).returncode == 4  # the current context: no answer
    chosen = jhtutorial("status", kubeconfig=two, env={"JHTUTORIAL_CONTEXT": "chosen"})
    assert chosen.returncode == 1 and chosen.stdout.split()[1] == namespace, chosen.stderr
    option = jhtutorial("status", "--context", "chosen", kubeconfig=two, env={"JHTUTORIAL_CONTEXT": "nowhere"})
    assert option.returncode == 1 and option.stdout.split()[1] == namespace, option.stderr


def test_lab_hands_its_namespace_and_context_to_the_notebooks(kubeconfig: Path, tmp_path: Path) -> None:
    """JupyterLab (and so every kernel it starts) receives JHTUTORIAL_NAMESPACE and JHTUTORIAL_CONTEXT.
    A sitecustomize on PYTHONPATH records what each Python process of the command sees: first the
    `jhtutorial` command itself, then, in the same process after exec, JupyterLab."""
    spy = tmp_path / "spy"
    spy.mkdir()
    record = tmp_path / "seen"
    (spy / "sitecustomize.py").write_text(
        "import os\n"
        f"with open({str(record)!r}, 'a') as out:\n"
        "    out.write(repr((os.environ.get('JHTUTORIAL_NAMESPACE'), os.environ.get('JHTUTORIAL_CONTEXT'))) + '\\n')\n"
    )
    context = yaml.safe_load(kubeconfig.read_text())["current-context"]
    lab = jhtutorial("lab", "-n", "alice", "--context", context, "--workdir", str(tmp_path / "wb"), "--version",
                     kubeconfig=kubeconfig, env={"PYTHONPATH": str(spy)})
    assert lab.returncode == 0 and lab.stdout.strip()[0].isdigit(), lab.stderr
    seen = record.read_text().splitlines()
    assert seen[0] == "(None, None)" and seen[-1] == repr(("alice", context)), seen
    assert f"notebooks will use namespace alice, context {context}" in lab.stderr


def test_run_and_lab_hand_over_to_the_workbook(kubeconfig: Path, tmp_path: Path) -> None:
    nothing = jhtutorial("run", "--only", "99", kubeconfig=kubeconfig)
    assert nothing.returncode == 1 and "no notebooks to run" in nothing.stderr
    # unknown options go to JupyterLab
    lab = jhtutorial("lab", "--workdir", str(tmp_path), "--version", kubeconfig=kubeconfig)
    assert lab.returncode == 0 and lab.stdout.strip()[0].isdigit(), lab.stderr


def test_long_waits_print_progress_lines_and_stop_printing(capsys: pytest.CaptureFixture[str]) -> None:
    err = ""
    with _still_waiting("the hub Deployment", every=0.05):
        deadline = time.monotonic() + 10  # a loaded machine may run the printing thread late, never not at all
        while err.count("... still waiting") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            err += capsys.readouterr().err
    err += capsys.readouterr().err
    assert err.count("... still waiting") >= 3 and "the hub Deployment" in err
    assert not [t for t in threading.enumerate() if t.name == "jhtutorial-cli-progress"]
    time.sleep(0.15)
    assert capsys.readouterr().err == ""


def test_context_namespace_reads_merged_kubeconfigs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "a"
    first.write_text(yaml.safe_dump({"current-context": "two", "contexts": [
        {"name": "one", "context": {"namespace": "ns-one"}}]}))
    second = tmp_path / "b"
    second.write_text(yaml.safe_dump({"contexts": [{"name": "two", "context": {"namespace": "ns-two"}},
                                                   {"name": "bare", "context": {}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    monkeypatch.delenv("JHTUTORIAL_NAMESPACE", raising=False)
    assert context_namespace(None) == "ns-two"  # the current context is set in the first file
    assert context_namespace("one") == "ns-one"
    assert context_namespace("bare") is None
    assert resolve_namespace("bare", None) == "jhtutorial"
