"""An exercise's folded answer with a learner at the keyboard: it waits until they tried, and then changes nothing;
headless it does the exercise. Against a real API server, with the changes a learner's kubectl makes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import jhtutorial
from jhtutorial import notebook as nb
from jhtutorial.kubeapi import CONFIGMAPS, PVCS
from jhtutorial.notebook.exercises import NOT_TRIED


@pytest.fixture
def conn(kubeconfig: Path, namespace: str) -> Iterator[jhtutorial.Connection]:
    connection = jhtutorial.connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
    yield connection
    connection.close()


def test_an_untried_exercise_waits_and_says_so_and_a_tried_one_is_shown_not_redone(
    conn: jhtutorial.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    kube = nb.kube(conn)
    kube.call("POST", CONFIGMAPS.path(conn.namespace), body={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hub-config"}, "data": {"mem_limit": "1G"}})
    started = nb.exercise(conn, "configmap/hub-config", interactive=True)
    headless = nb.exercise(conn, "configmap/hub-config", interactive=False)

    untried = started.answer()
    assert (untried.do, untried.show) == (False, False)
    assert f"{NOT_TRIED} (configmap/hub-config has not changed since the exercise began)" in capsys.readouterr().out
    assert (headless.answer().do, headless.answer().show) == (True, True)  # headless: it does the exercise

    nb.change(conn, "configmap/hub-config", {"data": {"mem_limit": "2G"}}, manager="kubectl-edit")  # the learner
    capsys.readouterr()
    tried = started.answer()
    assert (tried.do, tried.show) == (False, True)
    assert NOT_TRIED not in capsys.readouterr().out
    # the same value put back (an edit undone) is still a try: the object was written since
    nb.change(conn, "configmap/hub-config", {"data": {"mem_limit": "1G"}}, manager="kubectl-edit")
    assert started.answer().show


def test_a_claim_made_and_deleted_again_counts_as_tried_by_its_events(
    conn: jhtutorial.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    scratch = nb.exercise(conn, "pvc/scratch", interactive=True)
    assert scratch.version is None and not scratch.tried()
    nb.create_scratch_claim(conn, storage_class="does-not-exist")
    assert scratch.tried()  # it exists now
    nb.events(conn, "PersistentVolumeClaim", "scratch", wait=60)  # the controller said why it does not bind
    nb.delete_scratch_claim(conn, timeout=60)
    assert nb.kube(conn).get_or_none(PVCS.path(conn.namespace, "scratch")) is None
    assert scratch.tried()  # gone again, but its ProvisioningFailed events stay behind
    capsys.readouterr()
    assert scratch.answer().show and NOT_TRIED not in capsys.readouterr().out
