"""The folded answer of a "Your turn" step: it does what the learner was asked to type, once, and leaves
alone what the learner's own kubectl did."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import jhtutorial
from jhtutorial import notebook as nb
from jhtutorial.kubeapi import SERVICES, KubeApi

ROOT = Path(__file__).resolve().parent.parent


def test_apply_step_does_the_step_once_and_leaves_a_learners_own_apply_alone(
    kubeconfig: Path, kubectl: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = jhtutorial.connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        for step in ("rbac", "configmaps", "secret", "pvc"):
            jhtutorial.apply(step, conn=conn)
        capsys.readouterr()

        # the learner typed step 05's command in a terminal
        typed = jhtutorial.get_step("services").kubectl(namespace).split()
        done = subprocess.run([str(kubectl), *typed[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "KUBECONFIG": str(kubeconfig)})
        assert done.returncode == 0, done.stderr
        nb.apply_step(conn, "services")
        said = capsys.readouterr().out
        assert said == (f"step 05-services: its objects are already in namespace {namespace} (you applied them, "
                        "or an earlier run did): nothing to do\n")
        hub = KubeApi(conn.api).get(SERVICES.path(namespace, "hub"))
        assert {entry["manager"] for entry in hub["metadata"]["managedFields"]} == {"kubectl"}  # nothing sent

        # nobody typed step 06's: the folded cell applies it, without printing the command a second time
        nb.apply_step(conn, "deployments")
        said = capsys.readouterr().out.splitlines()
        assert said[0] == f"step 06 (deployments) applied to namespace {namespace}"
        assert [line.split() for line in said[1:]] == [["Deployment/hub", "created"], ["Deployment/proxy", "created"]]
        assert not any("kubectl" in line for line in said)
        nb.wait_step(conn, "deployments", timeout=120)
        assert capsys.readouterr().out.splitlines() == ["Deployment hub available: 1/1 replicas available",
                                                        "Deployment proxy available: 1/1 replicas available"]
        nb.apply_step(conn, "deployments")
        assert "nothing to do" in capsys.readouterr().out
    finally:
        conn.close()


def test_the_command_line_still_prints_the_command_once(kubeconfig: Path, namespace: str) -> None:
    """`jhtutorial up` prints ApplyResult.lines(): what changed, then the command once."""
    conn = jhtutorial.connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        result = jhtutorial.apply("rbac", conn=conn)
        assert result.lines()[:-1] == result.changes()
        assert [line for line in result.lines() if "kubectl" in line] == [
            f"  the same by hand (in the folder holding manifests/): kubectl apply --server-side -n {namespace} "
            "-f manifests/rbac.yaml"]
    finally:
        conn.close()
