"""`jhtutorial lab` starts a real JupyterLab server, here on a free loopback port with a token.

The server is asked over its REST API, as the browser would ask it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

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

    def stderr(self) -> str:
        return self.log.read_text()


def start_lab(kubeconfig: Path, folder: Path, *args: str, timeout: float = 90) -> LabServer:
    """`jhtutorial lab` run from ``folder`` as a learner would, answering on 127.0.0.1 only."""
    port = free_port()
    home = folder.parent / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JHTUTORIAL_", "JUPYTER"))}
    env.update(KUBECONFIG=str(kubeconfig), HOME=str(home))  # HOME: no learner's ~/.jupyter settings
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
    server = start_lab(kubeconfig, learner)
    yield server
    stop_lab(server)


def test_lab_starts_for_root_with_allow_root_and_says_so(lab: LabServer) -> None:
    said = "running as root: passing --allow-root to JupyterLab"
    if os.geteuid() == 0:
        assert said in lab.stderr()
    else:
        assert said not in lab.stderr()
    assert lab.get("/api/status").json()["started"]  # the server answers: it did start
