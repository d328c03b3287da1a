"""`jhtutorial lab`: a working copy laid out as the checkout is (notebooks/ with outputs cleared, manifests/, docs/),
and a real
JupyterLab server on it, here on a free loopback port with a token.

The server is asked over its REST and websocket APIs, as the browser asks it; a lab terminal runs the
notebooks' kubectl commands against the local cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
import websocket

from jhtutorial.manifests import MANIFEST_FILES
from jhtutorial.shipped import shipped_folder
from jhtutorial.workbook import NOTEBOOK_DIR, notebooks
from jhtutorial.workingcopy import DEFAULT_WORKDIR, WorkingCopy, make_working_copy
from tests.test_docs import relative_links

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


def start_lab(kubeconfig: Path, folder: Path, *args: str, timeout: float = 90,
              env: dict[str, str] | None = None) -> LabServer:
    """`jhtutorial lab` run from ``folder`` as a learner would, answering on 127.0.0.1 only; ``env`` adds to
    the environment (the learner's own JUPYTER* variables). JupyterLab binds a port the system picks
    (``--port=0``) and prints it: a port chosen here and handed over could be taken in between."""
    learner_env = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JHTUTORIAL_", "JUPYTER"))}
    env.update(KUBECONFIG=str(kubeconfig), JUPYTER_RUNTIME_DIR=str(folder.parent / "runtime"), **learner_env)
    log = folder.parent / f"lab-{folder.name}.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "jhtutorial.cli", "lab", *args, "--no-browser", "--port=0",
             "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}"],
            cwd=folder, env=env, stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    server = LabServer("", process, log, folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"jhtutorial lab exited with {process.returncode}:\n{server.stderr()}")
        printed = re.search(r"(http://127\.0\.0\.1:\d+)/lab", server.stderr())
        if printed:
            server.url = printed.group(1)
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


def fresh_copy(folder: Path, docs: Path | None = None) -> WorkingCopy:
    return make_working_copy(folder, notebooks(NOTEBOOK_DIR), shipped_folder("manifests"),
                             docs or shipped_folder("docs"))


def shipped_file_count() -> int:
    docs = [p for p in shipped_folder("docs").rglob("*") if p.is_file()]
    return len(notebooks(NOTEBOOK_DIR)) + len(list(shipped_folder("manifests").iterdir())) + len(docs)


# --- the working copy, without a server -------------------------------------------------------------


def test_the_working_copy_has_every_notebook_without_outputs_and_the_manifests_beside_them(tmp_path: Path) -> None:
    reference = digest(NOTEBOOK_DIR)
    copy = fresh_copy(tmp_path / "wb")
    series = [nb.name for nb in notebooks(NOTEBOOK_DIR)]
    assert sorted(p.name for p in copy.folder.iterdir() if not p.name.startswith(".")) == [
        "docs", "manifests", "notebooks"]
    assert sorted(p.name for p in copy.notebooks.glob("*.ipynb")) == series and len(series) == 9
    assert set(MANIFEST_FILES) <= {p.name for p in copy.manifests.iterdir()}
    for name in series:
        document = nbformat.read(copy.notebooks / name, as_version=4)
        nbformat.validate(document)
        original = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        assert [c.source for c in document.cells] == [c.source for c in original.cells]
        assert [c.get("id") for c in document.cells] == [c.get("id") for c in original.cells]
        code = [c for c in document.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), name
        assert "widgets" not in document.metadata
    assert any(c.get("outputs") for c in nbformat.read(NOTEBOOK_DIR / series[1], as_version=4).cells)
    assert digest(NOTEBOOK_DIR) == reference  # the reference copies keep their outputs
    assert len(copy.copied) == shipped_file_count()


def test_every_relative_link_of_the_notebooks_and_the_docs_resolves_inside_a_fresh_working_copy(
    tmp_path: Path
) -> None:
    copy = fresh_copy(tmp_path / "wb")
    pages = {nb: "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "markdown")
             for nb in sorted(copy.notebooks.glob("*.ipynb"))}
    pages |= {page: page.read_text() for page in sorted(copy.docs.rglob("*.md"))}
    followed = set()
    for page, text in pages.items():
        for target in relative_links(text):
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(copy.folder), f"{page.name} links {target}, outside the working copy"
            assert resolved.exists(), f"{page.relative_to(copy.folder)} links {target}, missing in the working copy"
            followed.add(resolved.relative_to(copy.folder).as_posix())
    # the links the notebooks and docs are known to have are among those followed, so the check is not vacuous
    assert {"docs/glossary.md", "docs/troubleshooting.md", "docs/login.md", "docs/helm-zero-to-jupyterhub.md",
            "notebooks/01-rbac.ipynb"} <= followed, followed
    shipped_pictures = {p.name for p in (shipped_folder("docs") / "img").glob("*.png")}
    assert shipped_pictures and shipped_pictures == {p.name for p in (copy.docs / "img").glob("*.png")}


def test_a_second_start_keeps_what_the_learner_changed_and_copies_only_what_is_missing(tmp_path: Path) -> None:
    first = fresh_copy(tmp_path / "wb")
    edited_notebook = first.notebooks / "01-rbac.ipynb"
    edited_notebook.write_text(edited_notebook.read_text().replace('"cells": [', '"cells": [', 1) + " ")
    edited_manifest = first.manifests / "svc-hub.yaml"
    edited_manifest.write_text(edited_manifest.read_text().replace("port: 8081", "port: 8082"))
    mine = edited_notebook.read_text(), edited_manifest.read_text()
    (first.notebooks / "02-configmaps.ipynb").unlink()
    (first.manifests / "rbac.yaml").unlink()

    second = fresh_copy(first.folder)
    assert second.copied == ["notebooks/02-configmaps.ipynb", "manifests/rbac.yaml"]
    assert second.kept_changed == ["notebooks/01-rbac.ipynb", "manifests/svc-hub.yaml"]
    assert (edited_notebook.read_text(), edited_manifest.read_text()) == mine
    assert len(second.kept_as_copied) == len(first.copied) - 4
    text = str(second)
    assert "kept 2 files you changed, untouched: notebooks/01-rbac.ipynb, manifests/svc-hub.yaml" in text
    assert "copied 2 files" in text


def test_a_start_brings_the_docs_the_learner_left_alone_up_to_date_and_keeps_the_edited_ones(tmp_path: Path) -> None:
    first = fresh_copy(tmp_path / "wb")
    mine = "# my notes on the glossary\n"
    (first.docs / "glossary.md").write_text(mine)
    newer = tmp_path / "newer-docs"  # the docs of a later release of the package
    shutil.copytree(shipped_folder("docs"), newer)
    for page in ("glossary.md", "login.md"):
        (newer / page).write_text((newer / page).read_text() + "\nA paragraph added in a later release.\n")
    (newer / "img" / "08-new-picture.png").write_bytes((newer / "img" / "06-live-view.png").read_bytes())

    second = fresh_copy(first.folder, docs=newer)
    assert second.refreshed == ["docs/login.md"]
    assert (first.docs / "login.md").read_bytes() == (newer / "login.md").read_bytes()
    assert second.kept_changed == ["docs/glossary.md"]
    assert (first.docs / "glossary.md").read_text() == mine
    assert second.copied == ["docs/img/08-new-picture.png"]
    text = str(second)
    assert "updated 1 file you had not changed to this version: docs/login.md" in text
    assert "kept 1 file you changed, untouched: docs/glossary.md" in text

    # the learner undoes the edit (back to what the first start wrote): from then on the doc is refreshed again
    (first.docs / "glossary.md").write_bytes((shipped_folder("docs") / "glossary.md").read_bytes())
    third = fresh_copy(first.folder, docs=newer)
    assert third.refreshed == ["docs/glossary.md"] and third.kept_changed == []
    assert (first.docs / "glossary.md").read_bytes() == (newer / "glossary.md").read_bytes()


_START_AT_ONCE = """
import json, sys, time
from pathlib import Path
from jhtutorial.shipped import shipped_folder
from jhtutorial.workbook import NOTEBOOK_DIR, notebooks
from jhtutorial.workingcopy import make_working_copy
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
copy = make_working_copy(Path(sys.argv[1]), notebooks(NOTEBOOK_DIR), shipped_folder("manifests"),
                         shipped_folder("docs"))
print(json.dumps({"copied": copy.copied, "kept_as_copied": copy.kept_as_copied,
                  "kept_changed": copy.kept_changed, "refreshed": copy.refreshed}))
"""


def test_starts_at_the_same_moment_on_one_working_copy_each_see_whole_files(tmp_path: Path) -> None:
    """Two labs (or a lab and a second start) on one working copy at once: each file is copied by exactly one of
    them and the others see it whole, the same as a fresh copy, never half-written and taken for an edit."""
    folder, go = tmp_path / "wb", tmp_path / "go"
    starts = [subprocess.Popen([sys.executable, "-c", _START_AT_ONCE, str(folder), str(go)], stdout=subprocess.PIPE,
                               text=True) for _ in range(4)]
    time.sleep(1.0)  # every interpreter has imported the package and waits for the signal
    go.touch()
    reports = [json.loads(start.communicate(timeout=120)[0]) for start in starts]
    assert all(start.returncode == 0 for start in starts)
    copied = [name for report in reports for name in report["copied"]]
    assert sorted(copied) == sorted(set(copied)) and len(copied) == shipped_file_count()
    assert [report["kept_changed"] for report in reports] == [[]] * 4
    for report in reports:
        assert sorted(report["copied"] + report["kept_as_copied"]) == sorted(copied)
    reference = fresh_copy(tmp_path / "reference")
    for name in copied:
        assert (folder / name).read_bytes() == (reference.folder / name).read_bytes(), name
    assert not [p for p in folder.rglob("*.part")]


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
    top = {item["name"]: item["type"] for item in lab.get("/api/contents/").json()["content"]}
    assert top == {"notebooks": "directory", "manifests": "directory", "docs": "directory"}
    listing = {item["name"]: item["type"] for item in lab.get("/api/contents/notebooks").json()["content"]}
    assert sorted(listing) == [nb.name for nb in notebooks(NOTEBOOK_DIR)]
    assert set(listing.values()) == {"notebook"}
    files = {item["name"] for item in lab.get("/api/contents/manifests").json()["content"]}
    assert set(MANIFEST_FILES) <= files
    # the page notebook 00 links as ../docs/glossary.md, served as the browser follows the link
    glossary = lab.get("/api/contents/docs/glossary.md").json()
    assert glossary["content"] == (shipped_folder("docs") / "glossary.md").read_text()
    for name in listing:
        cells = lab.get(f"/api/contents/notebooks/{name}").json()["content"]["cells"]
        assert [c for c in cells if c["cell_type"] == "code" and c["outputs"]] == [], name

    from jhtutorial.localcluster import built_binaries

    shown = lab.terminal("echo kubectl=$(command -v kubectl) pwd=$(pwd) ns=$JHTUTORIAL_NAMESPACE"
                         " manifests=$JHTUTORIAL_MANIFEST_DIR kubeconfig=$KUBECONFIG", until="listed")
    expected = (f"kubectl={built_binaries().kubectl} pwd={workdir} ns=lab-learner manifests={workdir / 'manifests'}"
                f" kubeconfig={kubeconfig}\r\n")
    assert expected in shown, shown
    # the notebooks' `jhtutorial login --user bob` and `jhtutorial up --through 3`, typed here, run the kernel's package
    helped = lab.terminal("jhtutorial --help | head -n 1", until="helped")
    assert "usage: jhtutorial " in helped and "command not found" not in helped, helped
    # the line notebook 01 shows, typed as it is in a fresh terminal: no `cd ..`
    applied = lab.terminal("kubectl apply --dry-run=client -n lab-terminal -f manifests/rbac.yaml", until="applied")
    assert "serviceaccount/hub created (dry run)" in applied and "rolebinding" in applied


def folder_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path: sha256), empty when there is no such folder."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def composite(plugin: dict[str, Any], key: str) -> Any:
    """A setting as JupyterLab uses it: the user's value, else the schema's default (where overrides go)."""
    return plugin["settings"].get(key, plugin["schema"]["properties"][key].get("default"))


def test_lab_answers_the_news_question_no_without_touching_the_learners_or_the_environments_settings(
    kubeconfig: Path, tmp_path: Path
) -> None:
    learner = tmp_path / "learner"
    learner.mkdir()
    user_settings = tmp_path / "user-settings"  # the learner's ~/.jupyter/lab/user-settings, with a choice of theirs
    theme = user_settings / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    theme.parent.mkdir(parents=True)
    theme.write_text('{"theme": "JupyterLab Dark"}')
    learners_before = folder_digest(user_settings)
    shared = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"  # the environment's, every user's
    shared_before = folder_digest(shared)
    server = start_lab(kubeconfig, learner, "--namespace", "lab-news",
                       env={"JUPYTERLAB_SETTINGS_DIR": str(user_settings)})
    try:
        notification = server.get("/lab/api/settings/@jupyterlab/apputils-extension:notification").json()
        themes = server.get("/lab/api/settings/@jupyterlab/apputils-extension:themes").json()
    finally:
        stop_lab(server)
    assert composite(notification, "fetchNews") == "false"  # the pop-up asks only while this is "none"
    assert composite(notification, "checkForUpdates") is False
    assert notification["raw"].strip() in ("", "{}")  # a default of this lab, not a choice written for the learner
    assert composite(themes, "theme") == "JupyterLab Dark"  # the learner's own settings still apply
    assert folder_digest(user_settings) == learners_before
    assert folder_digest(shared) == shared_before


def test_notebook_00s_terminal_commands_reach_the_namespace_and_change_no_kubeconfig(
    lab: LabServer, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    import jhtutorial
    from jhtutorial import notebook as nb

    shared = tmp_path / "shared-kubeconfig"  # a classroom's kubeconfig, which other learners read too
    shutil.copyfile(kubeconfig, shared)
    before = shared.read_bytes()
    commands = nb.terminal_commands(jhtutorial.connect(namespace=namespace, kubeconfig=shared))
    assert all(f"-n {namespace}" in command for command in commands if command.startswith("kubectl"))
    shown = lab.terminal(" && ".join(commands), until="typed")
    assert f"No resources found in {namespace} namespace." in shown, shown  # the fresh namespace, not lab-learner
    assert shared.read_bytes() == before


def test_a_second_start_says_what_it_kept(kubeconfig: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "course"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JHTUTORIAL_")}
    env["KUBECONFIG"] = str(kubeconfig)

    def start() -> str:  # --version: JupyterLab prints its version and exits after the copy is made
        done = subprocess.run([sys.executable, "-m", "jhtutorial.cli", "lab", "--workdir", str(workdir), "--version"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr

    every = shipped_file_count()
    assert f"  copied {every} files (notebooks/ without outputs, manifests/, docs/)" in start()
    (workdir / "manifests" / "pvc-hub.yaml").write_text("# my version\n")
    again = start()
    assert "  kept 1 file you changed, untouched: manifests/pvc-hub.yaml" in again
    assert f"  kept {every - 1} files already there, unchanged since the first start" in again
    assert "  copied" not in again
    assert (workdir / "manifests" / "pvc-hub.yaml").read_text() == "# my version\n"
