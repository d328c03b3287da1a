"""Several `jhtutorial run` at once on one machine, as three learners sharing it (or three CI jobs) start them:
from one folder, each in a namespace of its own, against the same local cluster. Every run passes, and each keeps
its executed copies in a folder of its own that it names.

The namespaces are called ``rao-N-XXXX`` (runs at once); notebook 00 makes each, as for a learner, and the test
deletes them at the end.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import requests
from kubernetes import client

from jhtutorial import clean_up
from jhtutorial.access import hub_access
from jhtutorial.connect import Connection, connect
from jhtutorial.localcluster.backing import BACKED_LABEL
from jhtutorial.waits import wait_pods_ready
from jhtutorial.workbook import OUTPUT_LOCK, claimed, notebooks, run_notebook, run_notebooks
from tests.conftest import TEST_LABEL
from tests.kubehelpers import deploy_workbook, free_port, port_held

JHTUTORIAL = str(Path(sys.executable).parent / "jhtutorial")
RUNS = 3
SERIES = [nb.name for nb in notebooks()]


def _environment(kubeconfig: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JHTUTORIAL_")}
    env["KUBECONFIG"] = str(kubeconfig)
    return env


def _injected_namespace(executed: Path) -> str | None:
    """The namespace papermill handed this executed copy (its injected-parameters cell)."""
    document = nbformat.read(executed, as_version=4)
    for cell in document.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            found = re.search(r'^namespace = "([^"]+)"', cell.source, re.MULTILINE)
            return found.group(1) if found else None
    return None


@pytest.fixture
def namespaces(api_client: client.ApiClient) -> Iterator[list[str]]:
    tag = secrets.token_hex(2)
    names = [f"rao-{number}-{tag}" for number in range(1, RUNS + 1)]
    yield names
    core = client.CoreV1Api(api_client)
    for name in names:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except client.ApiException as err:
            if err.status != 404:
                raise


def test_three_runs_at_once_from_one_folder_all_pass_each_with_its_own_copies(
        kubeconfig: Path, backing: object, namespaces: list[str], tmp_path: Path) -> None:
    env = _environment(kubeconfig)
    began = time.monotonic()
    runs = {name: subprocess.Popen([JHTUTORIAL, "run", "--namespace", name, "--timeout", "180"], cwd=tmp_path,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   stdin=subprocess.DEVNULL)
            for name in namespaces}
    said = {name: process.communicate(timeout=900)[0] for name, process in runs.items()}
    seconds = time.monotonic() - began
    failed = {name: text for name, text in said.items() if runs[name].returncode != 0}
    assert not failed, f"{len(failed)} of {RUNS} runs failed:\n" + "\n".join(
        f"--- {name} ---\n{text}" for name, text in failed.items())

    output = tmp_path / "output"
    assert sorted(p.name for p in output.iterdir()) == sorted(namespaces)
    copies: dict[str, str] = {}
    for name in namespaces:
        folder = output / name
        # each run says where its copies are, before the first notebook and at the end
        assert f"namespace {name}: executed copies go to output/{name}/" in said[name]
        assert f"all {len(SERIES)} notebooks passed" in said[name] and f"executed copies in output/{name}/" in said[name]
        assert sorted(p.name for p in folder.glob("*.ipynb")) == SERIES
        for notebook in SERIES:
            assert _injected_namespace(folder / notebook) == name, f"{folder / notebook} was written by another run"
        login = json.dumps([cell.get("outputs", []) for cell in
                            nbformat.read(folder / "07-login-and-spawn.ipynb", as_version=4).cells])
        assert "admin's Jupyter server answered" in login
        copies[name] = login
    assert len(set(copies.values())) == RUNS  # three different logins (ports, pods, times), not one copy thrice
    print(f"{RUNS} runs at once: {seconds:.1f} s")


def test_a_failing_run_points_at_its_own_executed_copy(kubeconfig: Path, tmp_path: Path) -> None:
    name = f"rao-missing-{secrets.token_hex(2)}"  # never made: notebook 05 stops in its first cell
    failed = subprocess.run([JHTUTORIAL, "run", "--namespace", name, "--only", "05"], cwd=tmp_path,
                            env=_environment(kubeconfig), capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert failed.returncode == 1, failed
    assert f"stopped at 05-services.ipynb; the executed copy is output/{name}/05-services.ipynb" in failed.stdout
    assert _injected_namespace(tmp_path / "output" / name / "05-services.ipynb") == name


def test_a_second_run_into_a_folder_in_use_stops_at_once_and_says_whose_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "output" / "shared"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JHTUTORIAL_")}
    env["KUBECONFIG"] = str(tmp_path / "no-cluster-is-asked")  # the folder is claimed before any cluster is
    with claimed(folder):
        (folder / "00-introduction.ipynb").write_text("this run's copy")
        second = subprocess.run([JHTUTORIAL, "run", "--namespace", "shared", "--output", str(folder)], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert second.returncode == 1, second
        assert f"error: `jhtutorial run` (pid {os.getpid()}) is writing its executed copies to {folder}/" in (
            second.stderr)
        assert "--output FOLDER" in second.stderr
        assert (folder / "00-introduction.ipynb").read_text() == "this run's copy"
    assert (folder / OUTPUT_LOCK).exists()
    # once the first run is over, the folder is free again
    with claimed(folder):
        pass


# --- notebook 07's way in while another program holds port 8080 ------------------------------------------------


@pytest.fixture(scope="module")
def hub(backing: object, api_client: client.ApiClient, kubeconfig: Path) -> Iterator[Connection]:
    """A namespace marked for backing with steps 01-06 applied: a hub that answers through its proxy pod."""
    name = f"rao-way-in-{secrets.token_hex(2)}"
    client.CoreV1Api(api_client).create_namespace(client.V1Namespace(
        metadata=client.V1ObjectMeta(name=name, labels={TEST_LABEL: "true", BACKED_LABEL: "true"})))
    conn = connect(namespace=name, kubeconfig=kubeconfig)
    try:
        deploy_workbook(conn)
        wait_pods_ready("app.kubernetes.io/component=proxy", conn=conn, timeout=90)
        wait_pods_ready("app.kubernetes.io/component=hub", conn=conn, timeout=90)
        yield conn
    finally:
        clean_up(conn, delete_namespace=True, timeout=120)
        conn.close()


def test_the_way_in_opens_on_another_port_when_8080_is_held_and_says_which(hub: Connection) -> None:
    with port_held(8080) as holder:
        # what notebook 07 does
        access = hub_access(hub, local_port=8080)
        try:
            used = int(access.url.rsplit(":", 1)[1])
            assert used != 8080 and access.how == "kubectl"  # the local cluster's way in: kubectl port-forward
            # verified: the hub answered /hub/health through the forward, on the port it says
            assert f"note: port 8080 is taken by another program: forwarding from port {used} instead" in str(access)
            assert requests.get(f"{access.url}/hub/health", timeout=10).status_code == 200
        finally:
            access.close()
        assert holder.poll() is None  # the other program kept 8080 all along


def test_the_way_in_takes_the_port_asked_for_when_it_is_free(hub: Connection) -> None:
    """The preferred port is bound, not merely asked about: when nobody holds it, it is the one used. (A port the
    system just called free, not 8080, which another run on this machine may hold at any moment.)"""
    port = free_port()
    access = hub_access(hub, local_port=port)
    try:
        assert access.url == f"http://127.0.0.1:{port}" and "taken" not in str(access)
    finally:
        access.close()


# --- the kernels of a headless run ------------------------------------------------------------------------------


def test_a_headless_kernel_talks_over_unix_sockets_of_its_own_not_tcp_ports(tmp_path: Path) -> None:
    """jupyter_client picks a kernel's TCP ports by binding and releasing them; another run's kernel started in
    between can take one. A run's kernels use Unix sockets in a folder of their own instead."""
    notebook = tmp_path / "show.ipynb"
    document = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"}})
    document.cells = [nbformat.v4.new_code_cell("from ipykernel import get_connection_info\n"
                                                "print(get_connection_info())")]
    nbformat.write(document, notebook)
    (tmp_path / "out").mkdir()
    first, second = (run_notebook(notebook, tmp_path / "out", {}) for _ in range(2))
    assert first.ok and second.ok, (first.failure, second.failure)
    shown = json.loads(nbformat.read(tmp_path / "out" / "show.ipynb", as_version=4).cells[0].outputs[0].text)
    assert shown["transport"] == "ipc"
    folder = Path(shown["ip"]).parent
    assert folder.is_absolute() and folder.name.startswith("jhtutorial-kernel-")
    assert not folder.exists()  # removed with the kernel


def _series_of(folder: Path, cells: list[str]) -> list[Path]:
    """A notebook per cell source, named 0N-step.ipynb in ``folder``."""
    paths = []
    for number, source in enumerate(cells):
        document = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                     "language": "python"}})
        document.cells = [nbformat.v4.new_code_cell(source)]
        paths.append(folder / f"0{number}-step.ipynb")
        nbformat.write(document, paths[-1])
    return paths


def _kernels_of_this_process() -> set[int]:
    """Pids of the kernels this test process has started and that still run."""
    kernels = set()
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and b"ipykernel" in command:
            kernels.add(int(entry.name))
    return kernels


REPORT = """import json, os, time
from ipykernel import get_connection_info
ticks = os.sysconf("SC_CLK_TCK")
started = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / ticks  # since boot
uptime = float(open("/proc/uptime").read().split()[0])
ipython_own = {"In", "Out", "exit", "quit", "get_ipython", "open"}
print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(),
                  "names": sorted(n for n in dir() if not n.startswith("_") and n not in ipython_own),
                  "transport": json.loads(get_connection_info())["transport"],
                  "kernel_started": started, "finished": uptime}))
"""


def test_each_notebook_gets_a_fresh_kernel_of_its_own_started_while_the_one_before_runs(tmp_path: Path) -> None:
    """A kernel started ahead is what papermill would start: one per notebook, in the notebook's folder, over
    Unix sockets, with no name defined; it boots while the notebook before it runs, and ends with its notebook."""
    series = _series_of(tmp_path, [REPORT + "time.sleep(3)", REPORT, REPORT])
    (tmp_path / "out").mkdir()
    runs = list(run_notebooks(series, tmp_path / "out", {}))
    assert [run.ok for run in runs] == [True, True, True], [run.failure for run in runs]
    reports = [json.loads(nbformat.read(tmp_path / "out" / path.name, as_version=4).cells[0].outputs[0].text)
               for path in series]
    assert len({report["pid"] for report in reports}) == 3
    for report in reports:
        assert report["cwd"] == str(tmp_path)
        assert report["transport"] == "ipc"
        # the names the cell itself defines, and nothing else: the warm import binds none
        assert report["names"] == ["get_connection_info", "ipython_own", "json", "os", "started", "ticks", "time",
                                   "uptime"]
    # the second notebook's kernel was running before the first notebook's three-second cell ended
    assert reports[1]["kernel_started"] < reports[0]["finished"]
    assert not _kernels_of_this_process()


def test_a_failing_notebook_stops_the_series_and_ends_the_kernels_started_ahead(tmp_path: Path) -> None:
    series = _series_of(tmp_path, ["print('first')", "jhtutorial.__name__", "print('never')", "print('never')"])
    (tmp_path / "out").mkdir()
    runs = list(run_notebooks(series, tmp_path / "out", {}))
    # the package was imported ahead, yet a notebook that uses it without importing it fails as it should
    assert [run.ok for run in runs] == [True, False]
    assert "NameError: name 'jhtutorial' is not defined" in runs[1].failure
    assert not (tmp_path / "out" / series[2].name).exists()
    assert not _kernels_of_this_process()
