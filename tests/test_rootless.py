"""A cluster owner who is not root: pods in sandboxes made in the owner's own user namespace.

A second account of this machine (made here, as on a shared teaching server) runs a local
cluster of its own with the tutorial on it, through the same commands a learner types:
`jhtutorial cluster up`, `jhtutorial up`, `jhtutorial login`, `kubectl exec`, `cluster
down`. Its pods' programs must run as ids of the account's subordinate range (never root,
never the account itself), listen nowhere in the machine's network namespace, and leave
nothing behind when the cluster goes.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jhtutorial.localcluster import LocalCluster, ensure_binaries, versions
from jhtutorial.localcluster.backing.programs import chp_folder
from jhtutorial.localcluster.backing.user_namespace import (IDS_NEEDED, OWNER_PROGRAMS, free_range_start,
                                                             subordinate_range)
from jhtutorial.localcluster.build import kwok_patch_digest
from tests.kubehelpers import until

OWNER = "jhtutorial-owner"
# Kept between runs (keyed by what they are made from): the account's Python environment and the
# cluster's programs where it can read them (the build cache lies under root's home).
KEPT = Path("/var/tmp/jhtutorial-owner")
PROJECT = Path(__file__).resolve().parents[1]


@dataclass
class Owner:
    name: str
    uid: int
    subordinate_start: int
    environment: dict[str, str]
    state: Path

    def run(self, *argv: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["runuser", "-u", self.name, "--", "env", "-i",
                                 *(f"{k}={v}" for k, v in self.environment.items()), *argv],
                                capture_output=True, text=True, timeout=timeout, check=False, cwd="/tmp")
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def owns_range(self, uid: int) -> bool:
        return self.subordinate_start <= uid < self.subordinate_start + IDS_NEEDED - 1


def _account() -> tuple[int, int]:
    """The account (made once) and its subordinate uid range start."""
    try:
        uid = pwd.getpwnam(OWNER).pw_uid
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", OWNER], check=True, capture_output=True)
        uid = pwd.getpwnam(OWNER).pw_uid
    if subordinate_range("uid", OWNER, uid) is None or subordinate_range("gid", OWNER, uid) is None:
        start = free_range_start(200000)
        subprocess.run(["usermod", f"--add-subuids={start}-{start + IDS_NEEDED - 1}",
                        f"--add-subgids={start}-{start + IDS_NEEDED - 1}", OWNER], check=True, capture_output=True)
    granted = subordinate_range("uid", OWNER, uid)
    assert granted is not None
    return uid, granted[0]


def _python_environment() -> Path:
    """A Python environment with the project (editable) that the account can run: this one lies under
    root's home when pyenv made it, so one is made from the machine's python3 and kept."""
    digest = hashlib.sha256((PROJECT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = KEPT / f"venv-{digest}"
    if not (venv / "bin" / "jhtutorial").exists():
        uv = Path(sys.executable).parent / "uv"
        python = shutil.which("python3", path="/usr/bin:/bin")
        if python is None or not uv.exists():
            pytest.fail("an environment for the second account needs /usr/bin/python3 and uv (in the test extras)")
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(uv), "venv", "--quiet", "--python", python, str(venv)], check=True)
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                        "-e", str(PROJECT)], check=True)
    return venv


def _programs() -> Path:
    """The cluster's programs, hard-linked (or copied) where the account can read them."""
    folder = KEPT / f"bin-{versions.KUBERNETES}-{versions.KWOK}-{kwok_patch_digest()}"
    binaries = ensure_binaries()
    if not all((folder / program.name).exists() for program in binaries.all()):
        folder.mkdir(parents=True, exist_ok=True)
        for program in binaries.all():
            target = folder / program.name
            target.unlink(missing_ok=True)
            try:
                os.link(program.resolve(), target)
            except OSError:
                shutil.copy2(program.resolve(), target)
            target.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def owner(local_cluster: LocalCluster | None) -> Iterator[Owner]:
    if local_cluster is None or os.geteuid() != 0:
        pytest.skip("a second account of the machine is made by root, for the local simulated cluster")
    missing = [name for name in OWNER_PROGRAMS if shutil.which(name) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `make system-deps` installs them (Debian: apt-get install uidmap)")
    uid, start = _account()
    KEPT.mkdir(mode=0o755, parents=True, exist_ok=True)
    venv, programs = _python_environment(), _programs()
    home = Path(pwd.getpwnam(OWNER).pw_dir)
    cache = home / ".cache" / "jhtutorial"
    if not (cache / chp_folder().name).exists():  # the proxy's program, as `make system-deps` puts it there
        shutil.copytree(chp_folder(), cache / chp_folder().name, symlinks=True)
        subprocess.run(["chown", "-R", f"{OWNER}:", str(home / ".cache")], check=True)
    state = Path(tempfile.mkdtemp(prefix="jhtutorial-owner-state-", dir="/tmp"))
    shutil.chown(state, OWNER, OWNER)
    environment = {"HOME": str(home), "USER": OWNER, "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
                   "JHTUTORIAL_BIN_DIR": str(programs), "JHTUTORIAL_STATE": str(state / "state"),
                   "KUBECONFIG": str(state / "state" / "kubeconfig"), "LANG": "C.UTF-8"}
    person = Owner(OWNER, uid, start, environment, state)
    person.run("jhtutorial", "cluster", "up")
    try:
        yield person
    finally:
        person.run("jhtutorial", "access", "close", check=False)
        person.run("jhtutorial", "cluster", "down", check=False)
        shutil.rmtree(state, ignore_errors=True)


def _processes() -> dict[int, tuple[int, str]]:
    """Every process of the machine: pid -> (real uid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                if "\nState:\tZ" in status:
                    continue  # ended; only its parent's wait is missing
                uid = int(status.split("\nUid:")[1].split()[0])
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            found[int(entry.name)] = (uid, command)
    return found


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = set(), [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.add(child)
            queue.append(child)
    return found


def test_an_owner_who_is_not_root_logs_in_to_a_hub_in_sandboxes(owner: Owner) -> None:
    status = owner.run("jhtutorial", "cluster", "status").stdout
    assert "backed in sandboxes of their own" in status, status
    owner.run("jhtutorial", "up")
    login = owner.run("jhtutorial", "login", timeout=180)
    assert "the server is up" in login.stdout, login.stdout

    # the supervisor is the account's, root only of its own user namespace, with the account's range
    pid = int((owner.state / "state" / "backing" / "supervisor.pid").read_text())
    assert _processes()[pid][0] == owner.uid
    uid_map = [line.split() for line in Path(f"/proc/{pid}/uid_map").read_text().splitlines()]
    assert ["0", str(owner.uid), "1"] in uid_map and ["1", str(owner.subordinate_start), str(IDS_NEEDED - 1)] in uid_map

    # the pods' programs: uid 1000 inside, an id of the account's range on the machine
    for deployment_or_pod in ("deploy/hub", "pod/jupyter-admin"):
        inside = owner.run("kubectl", "-n", "jhtutorial", "exec", deployment_or_pod, "--",
                           "sh", "-c", "id -u; hostname; touch /usr/jhtutorial-escaped 2>&1; echo $?").stdout.split("\n")
        assert inside[0] == "1000", inside
        assert inside[1].startswith("hub-" if "hub" in deployment_or_pod else "jupyter-admin"), inside
        assert "Read-only file system" in inside[2] and inside[3] == "1", inside
    assert not Path("/usr/jhtutorial-escaped").exists()
    below = _descendants(pid)  # of the account's supervisor: this cluster's, whatever else runs on the machine
    programs = {pid: (uid, command) for pid, (uid, command) in _processes().items() if pid in below
                and "bin/jupyterhub " in command and not any(word in command for word in ("keeper.py", "sandbox_enter.py", "unshare"))}
    assert programs, "no JupyterHub process found"
    for pid, (uid, command) in programs.items():
        assert owner.owns_range(uid) and uid == owner.subordinate_start + 999, (pid, uid, command)


def test_nothing_of_its_pods_listens_in_the_machines_network(owner: Owner) -> None:
    """Every listening TCP socket of the machine's network namespace, by the uid that made it: none of the range."""
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                listening.append((fields[1], int(fields[7])))
    assert listening, "the machine's own listeners (the API server at least) should be seen"
    assert not [socket for socket in listening if owner.owns_range(socket[1])], listening


def test_exec_and_port_forward_enter_only_through_its_supervisor(owner: Owner) -> None:
    """kwok, run as the account, enters the supervisor's user namespace first: named by pid and start time."""
    pods = owner.run("kubectl", "-n", "jhtutorial", "get", "pods", "-l", "app.kubernetes.io/component=hub", "-o",
                     "jsonpath={.items[0].metadata.name}").stdout
    forward = owner.run("kubectl", "get", "portforwards.kwok.x-k8s.io", "-n", "jhtutorial", pods, "-o",
                        "jsonpath={.spec.forwards[0].command}").stdout
    pid = (owner.state / "state" / "backing" / "supervisor.pid").read_text().strip()
    assert f'"{pid}"' in forward and "b64decode" in forward, forward


def test_an_exec_whose_kubectl_is_killed_leaves_nothing_in_the_pod(owner: Owner) -> None:
    """kwok, run as the account, hangs the exec up when its kubectl goes; root of the account's user namespace
    ends what the exec started in the sandbox (backing/exec_session.py)."""
    client = subprocess.Popen(["runuser", "-u", owner.name, "--", "env", "-i",
                               *(f"{k}={v}" for k, v in owner.environment.items()),
                               "kubectl", "-n", "jhtutorial", "exec", "deploy/hub", "--", "sleep", "1008"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")

    def sleeping() -> list[int]:
        return [pid for pid, (uid, command) in _processes().items()
                if command.split() == ["sleep", "1008"] and owner.owns_range(uid)]

    try:
        started = until("the exec's sleep in the hub's sandbox", sleeping)
        kubectl = [pid for pid, (uid, command) in _processes().items()
                   if uid == owner.uid and command.startswith("kubectl ") and command.split()[-2:] == ["sleep", "1008"]]
        assert len(kubectl) == 1, kubectl
        os.kill(kubectl[0], signal.SIGKILL)
        until(f"the exec's sleep {started} gone", lambda: not sleeping(), timeout=10)
    finally:
        client.kill()
        client.wait()


def test_cluster_down_removes_the_files_its_pods_users_made(owner: Owner) -> None:
    """The hub's database belongs to uid 1000 of the namespace (an id of the range): `cluster down`, run by the
    account, still removes it with the volume's folder."""
    volume = owner.run("kubectl", "get", "pv", "-o", "jsonpath={.items[*].spec.hostPath.path}").stdout.split()
    made_inside = [path for folder in map(Path, volume) for path in folder.rglob("*")
                   if owner.owns_range(path.lstat().st_uid)]
    assert made_inside, f"no file of the pods' users in {volume}"
    owner.run("jhtutorial", "access", "close", check=False)
    owner.run("jhtutorial", "cluster", "down")
    assert not [folder for folder in volume if Path(folder).exists()]
    assert not (owner.state / "state" / "backing" / "pods").exists()
    deadline = time.monotonic() + 15  # killed components are gone once their parent has waited for them
    while (left := {pid: command for pid, (uid, command) in _processes().items()
                    if owner.owns_range(uid) or uid == owner.uid}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, left


def test_an_account_without_a_subordinate_range_is_told_what_to_do(owner: Owner) -> None:
    """`nobody` has no range in /etc/subuid: sandboxes cannot be made for it, and the reason names the fix."""
    python = owner.environment["PATH"].split(":")[0] + "/python"
    probe = ("from jhtutorial.localcluster.backing.sandbox import unavailable_reasons\n"
             "print('\\n'.join(str(r) for r in unavailable_reasons()))")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", probe],
                         capture_output=True, text=True, check=False, cwd="/tmp", env={"PATH": "/usr/bin:/bin"})
    assert "subordinate uids" in out.stdout and "usermod --add-subuids" in out.stdout, out.stdout + out.stderr
