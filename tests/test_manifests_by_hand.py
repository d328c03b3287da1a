"""manifests/README.md followed literally: every command of its console blocks typed in order, as a reader does
with nothing but kubectl, in a namespace of the test's own (in place of the README's `jhub`).

What the reader is promised is checked through the API server: the install leaves the Secret with the label
the clean-up selects on, and the clean-up leaves the namespace as Kubernetes made it (its `default`
ServiceAccount and `kube-root-ca.crt` ConfigMap, nothing else). Notebook 03's "Your turn", typed as shown, leaves
the same labelled Secret.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from jhtutorial.kubeapi import (
    CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, PVCS, REPLICASETS, ROLE_BINDINGS, ROLES, SECRETS, SERVICE_ACCOUNTS,
    SERVICES, KubeApi,
)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "manifests" / "README.md"
README_NAMESPACE = "jhub"  # the namespace the README's commands name
PART_OF = "app.kubernetes.io/part-of"
WATCH_SECONDS = 5  # `kubectl get pods --watch` never ends by itself: the reader stops it after a look
# Kubernetes puts these into every namespace; anything else after the clean-up would be a leftover
NAMESPACE_DEFAULTS = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
KINDS = (PODS, SERVICES, CONFIGMAPS, SECRETS, SERVICE_ACCOUNTS, PVCS, DEPLOYMENTS, REPLICASETS, ROLES, ROLE_BINDINGS)


def console_blocks(markdown: str) -> list[list[str]]:
    """The commands of each ```console block: the lines after `$ `, with `\\`-continued lines joined."""
    blocks = []
    for block in re.findall(r"^```console\n(.*?)^```", markdown, re.M | re.S):
        commands: list[str] = []
        continued = False
        for line in block.splitlines():
            if continued:
                commands[-1] += "\n" + line
            elif line.startswith("$ "):
                commands.append(line[2:])
            continued = line.endswith("\\")
        blocks.append(commands)
    return blocks


def test_console_blocks_are_read_as_a_reader_types_them() -> None:
    text = "intro\n```console\n$ kubectl a \\\n    -f b\n$ kubectl c   # note\noutput line\n```\n```python\nx\n```\n"
    assert console_blocks(text) == [["kubectl a \\\n    -f b", "kubectl c   # note"]]


@pytest.fixture
def own_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A name no namespace has yet (the README's first command creates it); deleted afterwards."""
    name = f"jht-by-hand-{secrets.token_hex(3)}"
    yield name
    if KubeApi(api_client).get_or_none(NAMESPACES.path(name=name)) is not None:
        client.CoreV1Api(api_client).delete_namespace(name, propagation_policy="Background")


def leftovers(kube: KubeApi, namespace: str) -> list[str]:
    return [f"{resource.kind}/{item['metadata']['name']}"
            for resource in KINDS for item in kube.get(resource.path(namespace))["items"]
            if (resource.kind, item["metadata"]["name"]) not in NAMESPACE_DEFAULTS]


def type_command(command: str, env: dict[str, str]) -> str:
    """Run one README command in bash from the project folder (the one holding manifests/), as typed."""
    if "--watch" in command.split():
        process = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, text=True, start_new_session=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            shown, _ = process.communicate(timeout=WATCH_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
            shown, _ = process.communicate()
        assert "NAME" in shown, f"$ {command}\n{shown}"
        return shown
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"$ {command}\nexit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def test_the_readme_by_hand_installs_labels_the_secret_and_cleans_up_to_an_empty_namespace(
    api_client: client.ApiClient, kubeconfig: Path, kubectl: Path, own_namespace: str, tmp_path: Path
) -> None:
    blocks = console_blocks(README.read_text())
    commands = [re.sub(rf"\b{README_NAMESPACE}\b", own_namespace, command) for block in blocks for command in block]
    # the blocks the README is known to have, in order: the namespace, the install, the clean-up
    assert commands[0] == f"kubectl create namespace {own_namespace}"
    assert any(command.startswith("kubectl create secret generic hub-secret") for command in commands)
    assert commands[-1].startswith(f"kubectl delete -n {own_namespace} pods,")
    clean_up = next(i for i, command in enumerate(commands) if command.startswith("kubectl get pod,pvc"))

    own_kubeconfig = tmp_path / "kubeconfig"  # `kubectl config set-context --current` writes to it
    shutil.copyfile(kubeconfig, own_kubeconfig)
    env = {**os.environ, "KUBECONFIG": str(own_kubeconfig), "PATH": f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}"}
    kube = KubeApi(api_client)
    for command in commands[:clean_up]:
        type_command(command, env)
    secret = kube.get(SECRETS.path(own_namespace, "hub-secret"))
    assert secret["metadata"].get("labels", {}).get(PART_OF) == "jhtutorial", secret["metadata"]
    assert len(secret["data"]["proxy.token"]) > 0
    made = leftovers(kube, own_namespace)
    assert {"Secret/hub-secret", "Deployment/hub", "Deployment/proxy", "PersistentVolumeClaim/hub-db-dir",
            "Role/hub", "ServiceAccount/proxy"} <= set(made), made

    for command in commands[clean_up:]:
        type_command(command, env)
    assert leftovers(kube, own_namespace) == []


def your_turn_commands(notebook: str, namespace: str) -> list[str]:
    """The commands a notebook's "Your turn" cell shows, with the namespace filled in as the cell fills it."""
    import types

    import nbformat

    cells = nbformat.read(ROOT / "notebooks" / notebook, as_version=4).cells
    turn = next(i for i, cell in enumerate(cells) if cell.cell_type == "markdown" and "### Your turn: " in cell.source)
    shown: list[str] = []
    recorder = types.SimpleNamespace(show_kubectl=lambda *commands: shown.extend(commands))
    exec(cells[turn + 1].source, {"nb": recorder, "conn": types.SimpleNamespace(namespace=namespace)})
    return shown


def test_notebook_03s_your_turn_typed_as_shown_leaves_a_secret_the_clean_up_finds(
    api_client: client.ApiClient, kubeconfig: Path, kubectl: Path, namespace: str
) -> None:
    commands = your_turn_commands("03-secret.ipynb", namespace)
    assert commands[0].startswith("kubectl create secret generic hub-secret")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        type_command(command, env)
    selected = KubeApi(api_client).get(SECRETS.path(namespace), labelSelector=f"{PART_OF}=jhtutorial")["items"]
    assert [secret["metadata"]["name"] for secret in selected] == ["hub-secret"]
