"""`jhtutorial lab`: a working copy of the notebooks (outputs cleared) with manifests/ beside them, and a real
JupyterLab server on it, here on a free loopback port with a token.

The server is asked over its REST and websocket APIs, as the browser asks it; a lab terminal runs the
notebooks' kubectl commands against the local cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import requests
import websocket

from jhtutorial.manifests import MANIFEST_FILES
from jhtutorial.shipped import shipped_folder
from jhtutorial.workbook import NOTEBOOK_DIR, notebooks
from jhtutorial.workingcopy import DEFAULT_WORKDIR, make_working_copy
from tests.kubehelpers import free_port

TOKEN = "lab-test-token"


@dataclass
class LabServer:
    url: str
    process: subprocess.Popen[str]
    log: Path
    folder: Path

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers={"Authorization": f"token {TOKEN}"}, timeout=10)

    def terminal(self, command: str, until: str, timeout: float = 30) -> str:
        """Open a lab terminal (as the browser does: REST, then its websocket), type ``command`` and
        return what the terminal shows up to the line holding ``until``."""
        headers = {"Authorization": f"token {TOKEN}"}
        name = requests.post(f"{self.url}/api/terminals", headers=headers, timeout=10).json()["name"]
        socket = websocket.create_connection(f"{self.url.replace('http', 'ws', 1)}/terminals/websocket/{name}",
                                             header=[f"Authorization: token {TOKEN}"], timeout=timeout)
        shown = ""
        try:
            socket.send(json.dumps(["stdin", f"{command}; echo {until}-$((40+2))\r"]))
            deadline = time.monotonic() + timeout
            while f"{until}-42" not in shown and time.monotonic() < deadline:
                kind, *data = json.loads(socket.recv())
                if kind == "stdout":
                    shown += data[0]
        finally:
            socket.close()
            requests.delete(f"{self.url}/api/terminals/{name}", headers=headers, timeout=10)
        assert f"{until}-42" in shown, shown
        return shown

    def stderr(self) -> str:
        return self.log.read_text()


def start_lab(kubeconfig: Path, folder: Path, *args: str, timeout: float = 90) -> LabServer:
    """`jhtutorial lab` run from ``folder`` as a learner would, answering on 127.0.0.1 only."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JHTUTORIAL_", "JUPYTER"))}
    env.update(KUBECONFIG=str(kubeconfig), JUPYTER_RUNTIME_DIR=str(folder.parent / "runtime"))
    log = folder.parent / f"lab-{port}.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "jhtutorial.cli", "lab", *args, "--no-browser", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}"],
            cwd=folder, env=env, stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    server = LabServer(f"http://127.0.0.1:{port}", process, log, folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"jhtutorial lab exited with {process.returncode}:\n{server.stderr()}")
        try:
            if server.get("/api/status").status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    stop_lab(server)
    raise AssertionError(f"JupyterLab did not answer within {timeout} s:\n{server.stderr()}")


def stop_lab(server: LabServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def lab(kubeconfig: Path, tmp_path: Path) -> Iterator[LabServer]:
    learner = tmp_path / "learner"
    learner.mkdir()
    server = start_lab(kubeconfig, learner, "--namespace", "lab-learner")
    yield server
    stop_lab(server)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


# --- the working copy, without a server -------------------------------------------------------------


def test_the_working_copy_has_every_notebook_without_outputs_and_the_manifests_beside_them(tmp_path: Path) -> None:
    reference = digest(NOTEBOOK_DIR)
    copy = make_working_copy(tmp_path / "wb", notebooks(NOTEBOOK_DIR), shipped_folder("manifests"))
    series = [nb.name for nb in notebooks(NOTEBOOK_DIR)]
    assert sorted(p.name for p in copy.folder.glob("*.ipynb")) == series and len(series) == 9
    assert set(MANIFEST_FILES) <= {p.name for p in copy.manifests.iterdir()}
    for name in series:
        document = nbformat.read(copy.folder / name, as_version=4)
        nbformat.validate(document)
        original = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        assert [c.source for c in document.cells] == [c.source for c in original.cells]
        assert [c.get("id") for c in document.cells] == [c.get("id") for c in original.cells]
        code = [c for c in document.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), name
        assert "widgets" not in document.metadata
    assert any(c.get("outputs") for c in nbformat.read(NOTEBOOK_DIR / series[1], as_version=4).cells)
    assert digest(NOTEBOOK_DIR) == reference  # the reference copies keep their outputs
    assert len(copy.copied) == len(series) + len(list(shipped_folder("manifests").iterdir()))


def test_a_second_start_keeps_what_the_learner_changed_and_copies_only_what_is_missing(tmp_path: Path) -> None:
    first = make_working_copy(tmp_path / "wb", notebooks(NOTEBOOK_DIR), shipped_folder("manifests"))
    edited_notebook = first.folder / "01-rbac.ipynb"
    edited_notebook.write_text(edited_notebook.read_text().replace('"cells": [', '"cells": [', 1) + " ")
    edited_manifest = first.manifests / "svc-hub.yaml"
    edited_manifest.write_text(edited_manifest.read_text().replace("port: 8081", "port: 8082"))
    mine = edited_notebook.read_text(), edited_manifest.read_text()
    (first.folder / "02-configmaps.ipynb").unlink()
    (first.manifests / "rbac.yaml").unlink()

    second = make_working_copy(first.folder, notebooks(NOTEBOOK_DIR), shipped_folder("manifests"))
    assert second.copied == ["02-configmaps.ipynb", "manifests/rbac.yaml"]
    assert second.kept_changed == ["01-rbac.ipynb", "manifests/svc-hub.yaml"]
    assert (edited_notebook.read_text(), edited_manifest.read_text()) == mine
    assert len(second.kept_as_copied) == len(first.copied) - 4
    text = str(second)
    assert "kept 2 files you changed, untouched: 01-rbac.ipynb, manifests/svc-hub.yaml" in text
    assert "copied 2 files" in text


# --- the command and the server -----------------------------------------------------------------------


def test_lab_starts_for_root_with_allow_root_and_says_so(lab: LabServer) -> None:
    said = "running as root: passing --allow-root to JupyterLab"
    if os.geteuid() == 0:
        assert said in lab.stderr()
    else:
        assert said not in lab.stderr()
    assert lab.get("/api/status").json()["started"]  # the server answers: it did start


def test_lab_serves_the_working_copy_and_its_terminals_run_the_notebooks_kubectl_commands(
    lab: LabServer, kubeconfig: Path
) -> None:
    workdir = lab.folder / DEFAULT_WORKDIR
    assert f"working copy: {workdir}" in lab.stderr()
    listing = {item["name"]: item["type"] for item in lab.get("/api/contents/").json()["content"]}
    assert listing.pop("manifests") == "directory"
    assert sorted(listing) == [nb.name for nb in notebooks(NOTEBOOK_DIR)]
    assert set(listing.values()) == {"notebook"}
    files = {item["name"] for item in lab.get("/api/contents/manifests").json()["content"]}
    assert set(MANIFEST_FILES) <= files
    for name in listing:
        cells = lab.get(f"/api/contents/{name}").json()["content"]["cells"]
        assert [c for c in cells if c["cell_type"] == "code" and c["outputs"]] == [], name

    from jhtutorial.localcluster import built_binaries

    shown = lab.terminal("echo kubectl=$(command -v kubectl) pwd=$(pwd) ns=$JHTUTORIAL_NAMESPACE"
                         " manifests=$JHTUTORIAL_MANIFEST_DIR kubeconfig=$KUBECONFIG", until="listed")
    expected = (f"kubectl={built_binaries().kubectl} pwd={workdir} ns=lab-learner manifests={workdir / 'manifests'}"
                f" kubeconfig={kubeconfig}\r\n")
    assert expected in shown, shown
    # the line notebook 01 shows, typed as it is in a fresh terminal: no `cd ..`
    applied = lab.terminal("kubectl apply --dry-run=client -n lab-terminal -f manifests/rbac.yaml", until="applied")
    assert "serviceaccount/hub created (dry run)" in applied and "rolebinding" in applied


def test_a_second_start_says_what_it_kept(kubeconfig: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "course"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JHTUTORIAL_")}
    env["KUBECONFIG"] = str(kubeconfig)

    def start() -> str:  # --version: JupyterLab prints its version and exits after the copy is made
        done = subprocess.run([sys.executable, "-m", "jhtutorial.cli", "lab", "--workdir", str(workdir), "--version"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr

    every = len(notebooks(NOTEBOOK_DIR)) + len(list(shipped_folder("manifests").iterdir()))
    assert f"  copied {every} files (notebooks without outputs, manifests/)" in start()
    (workdir / "manifests" / "pvc-hub.yaml").write_text("# my version\n")
    again = start()
    assert "  kept 1 file you changed, untouched: manifests/pvc-hub.yaml" in again
    assert f"  kept {every - 1} files already there, unchanged since the first start" in again
    assert "  copied" not in again
    assert (workdir / "manifests" / "pvc-hub.yaml").read_text() == "# my version\n"
