"""Pod sandboxes made for real: namespaces, file system, user, teardown (needs root)."""

from __future__ import annotations

import ctypes
import os
import pty
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jhtutorial.errors import SandboxError
from jhtutorial.localcluster.backing import seccomp
from jhtutorial.localcluster.backing.sandbox import (
    RUNTIME_ROOT,
    RunAs,
    Sandbox,
    SandboxSpec,
    Volume,
    checked_mount_path,
    create,
    existing,
    processes_in_namespace,
    remove_dead,
    unavailable_reasons,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes as the machine's root (the cluster owner is root)")

LEARNER = RunAs(uid=1000, gid=1000, groups=(1000, 2000))


@pytest.fixture
def machine_folder() -> Iterator[Path]:
    """A folder on the machine's root file system (a sandbox gets a fresh /tmp, so tmp_path would prove nothing)."""
    folder = Path(tempfile.mkdtemp(prefix="jhtutorial-sandbox-test-", dir="/var/tmp"))
    folder.chmod(0o755)  # traversable by the pod's user, so that only hiding keeps it out
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def pod_folders(machine_folder: Path) -> dict[str, Path]:
    tmp_path = machine_folder
    volume = tmp_path / "pods" / "hub-0" / "db"
    volume.mkdir(parents=True)
    (volume / "jupyterhub.sqlite").write_text("the hub's database\n")
    os.chown(volume, LEARNER.uid, LEARNER.gid)
    other = tmp_path / "pods" / "other-0"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("another pod's file\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "kubeconfig").write_text("the cluster's credentials\n")
    config = tmp_path / "pods" / "hub-0" / "config"
    config.mkdir()
    (config / "jupyterhub_config.py").write_text("c = get_config()\n")
    hosts = tmp_path / "pods" / "hub-0" / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.244.1.7 hub-0\n10.96.0.20 hub hub.tutorial hub.tutorial.svc.cluster.local\n")
    return {"volume": volume, "other": other, "state": state, "config": config, "hosts": hosts}


@pytest.fixture
def hub_box(pod_folders: dict[str, Path]) -> Iterator[Sandbox]:
    spec = SandboxSpec(
        key=f"test.hub-0-{os.getpid()}",
        hostname="hub-0",
        volumes=(
            Volume(pod_folders["volume"], "/srv/jupyterhub"),
            Volume(pod_folders["config"], "/usr/local/etc/jupyterhub", read_only=True),
            Volume(pod_folders["hosts"], "/etc/hosts", read_only=True),  # a file: Service names resolve
        ),
        hidden=(pod_folders["other"], pod_folders["state"], Path.home()),
    )
    box = create(spec)
    yield box
    box.teardown()


def test_a_process_inside_sees_its_pod_not_the_machine(hub_box: Sandbox, pod_folders: dict[str, Path]) -> None:
    def inside(*argv: str) -> str:
        result = hub_box.run(list(argv), LEARNER)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert inside("hostname") == "hub-0"
    assert inside("uname", "-n") == "hub-0"
    assert inside("cat", "/srv/jupyterhub/jupyterhub.sqlite") == "the hub's database"
    assert inside("cat", "/usr/local/etc/jupyterhub/jupyterhub_config.py") == "c = get_config()"
    assert inside("getent", "hosts", "hub.tutorial.svc.cluster.local").split()[0] == "10.96.0.20"
    # its own PID namespace: the shell is a small number, PID 1 is the sandbox's init
    assert int(inside("sh", "-c", "echo $$")) < 100
    # hidden folders are empty: other pods' volumes, the cluster's state, the owner's home
    for folder in (pod_folders["other"], pod_folders["state"], Path.home()):
        assert inside("ls", "-A", str(folder)) == "", folder
    # the machine's own /tmp is not there (a fresh tmpfs is)
    assert inside("ls", "-A", "/tmp") == ""
    # the sandbox's first process names none of the machine's folders behind its volumes or hidden ones on its
    # command line, which the pod's user may read; its environment, which holds them, it may not
    first = inside("cat", "/proc/1/cmdline")
    assert "sandbox_init.py" in first
    assert not [folder for folder in pod_folders.values() if str(folder) in first], first
    assert hub_box.run(["cat", "/proc/1/environ"], LEARNER).returncode != 0


def test_it_runs_as_its_user_without_privileges(hub_box: Sandbox) -> None:
    result = hub_box.run(["sh", "-c", "id -u; id -g; id -G; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status"], LEARNER)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[:3] == ["1000", "1000", "1000 2000"]
    status = dict(line.split(":\t") for line in lines[3:] if line)
    # the bounding set keeps what nsenter needed (sys_admin, sys_chroot, setuid), which no_new_privs and the
    # empty permitted set leave no way to use
    assert status == {"CapEff": "0000000000000000", "CapPrm": "0000000000000000",
                      "CapBnd": f"{(1 << 21) | (1 << 18) | (1 << 7):016x}", "NoNewPrivs": "1"}
    # nothing of the caller's environment leaks in
    env = hub_box.run(["env"], LEARNER).stdout
    assert "JHTUTORIAL" not in env and "KUBECONFIG" not in env and "HOME=/root" not in env


def test_a_command_inside_starts_with_every_signal_at_its_default(hub_box: Sandbox) -> None:
    """What started the cluster may have ignored or blocked signals (nohup, a shell's background job), and an
    ignored signal stays ignored across exec; a container's process starts with none ignored or blocked."""
    def ignore_and_block() -> None:
        for number in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
        # and one of the C library's own, which its sigaction refuses (seen ignored in a CI job's environment)
        libc = ctypes.CDLL(None, use_errno=True)
        ignore = (ctypes.c_ulong * 4)(1)  # SIG_IGN
        assert libc.syscall(13, 32, ctypes.byref(ignore), None, 8) == 0
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    result = subprocess.run([*hub_box.enter_command(LEARNER), "grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"],
                            capture_output=True, text=True, timeout=30, preexec_fn=ignore_and_block)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"]


def _seccomp_mode(pid: int) -> str:
    """/proc/PID/status's Seccomp field, read from the machine: 2 is a filter."""
    return Path(f"/proc/{pid}/status").read_text().split("\nSeccomp:")[1].split()[0]


def test_every_process_inside_runs_under_the_pods_seccomp_filter(hub_box: Sandbox) -> None:
    """The runtime's default profile, made true: what enters (here as the pod's user and as uid 0) and the
    sandbox's own first process, which reaps the orphans, each carry the filter."""
    started = hub_box.run(["sh", "-c", "setsid sleep 1000 > /dev/null 2>&1 < /dev/null &"], LEARNER)
    assert started.returncode == 0, started.stderr
    inside = processes_in_namespace(f"pid:[{hub_box.namespace_file('pid').stat().st_ino}]")
    assert hub_box.init_pid in inside and len(inside) == 2  # the first process and the sleep
    assert {pid: _seccomp_mode(pid) for pid in inside} == dict.fromkeys(inside, "2")
    for user in (LEARNER, RunAs(uid=0, gid=0)):
        seen = hub_box.run(["sh", "-c", "grep ^Seccomp: /proc/self/status; unshare -Ur true"], user)
        assert seen.stdout == "Seccomp:\t2\n", (user, seen)
        assert seen.returncode != 0 and "unshare failed: Operation not permitted" in seen.stderr, (user, seen)
    # the keyrings, another kernel surface a process needs no capability for
    keyctl = hub_box.run(["python3", "-c", "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
                          f"print(libc.syscall({seccomp.REFUSED[seccomp.native_arch()]['keyctl']}, 0, -3, 0), "
                          "os.strerror(ctypes.get_errno()))"], LEARNER)
    assert keyctl.stdout.strip() == "-1 Operation not permitted", keyctl
    # a command that is not there: said, with a shell's exit code
    missing = hub_box.run(["no-such-program"], LEARNER)
    assert (missing.returncode, missing.stderr.strip()) == (127, "cannot run no-such-program: No such file or directory")


def test_the_root_is_read_only_and_volumes_are_as_asked(hub_box: Sandbox, pod_folders: dict[str, Path]) -> None:
    root = RunAs(uid=0, gid=0)  # even uid 0, with its capabilities dropped, cannot write the machine's files
    for target in ("/usr/sandbox-test", "/etc/sandbox-test", "/usr/local/etc/jupyterhub/x", "/etc/hosts"):
        result = hub_box.run(["touch", target], root)
        assert result.returncode != 0 and "Read-only file system" in result.stderr, (target, result)
    assert not Path("/usr/sandbox-test").exists() and not Path("/etc/sandbox-test").exists()
    # the machine's sysctls are root's files: without this, uid 0 could write them even with no capability
    # (the value written is the one already there, so a failure of this test changes nothing on the machine)
    sysctl = "/proc/sys/kernel/printk_ratelimit"
    same_value = hub_box.run(["sh", "-c", f"v=$(cat {sysctl}); echo $v > {sysctl}"], root)
    assert same_value.returncode != 0 and "Read-only file system" in same_value.stderr, same_value
    assert hub_box.run(["cat", "/proc/keys"], root).stdout == ""  # masked, as container runtimes do
    written = hub_box.run(["sh", "-c", "echo new > /srv/jupyterhub/written"], LEARNER)
    assert written.returncode == 0, written.stderr
    assert (pod_folders["volume"] / "written").read_text() == "new\n"  # the volume is the caller's folder
    # the mount point was made in the sandbox only: the machine has no /srv/jupyterhub
    assert not Path("/usr/local/etc/jupyterhub").exists()


def test_teardown_leaves_no_process_and_no_mount(pod_folders: dict[str, Path]) -> None:
    box = create(SandboxSpec(key=f"test.kernel-0-{os.getpid()}", hostname="kernel-0"))
    pid_namespace = f"pid:[{box.namespace_file('pid').stat().st_ino}]"
    # a process that leaves its session and its parent, as kernels and terminals do
    started = box.run(["sh", "-c", "setsid sleep 1000 > /dev/null 2>&1 < /dev/null &"], LEARNER)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 5
    while len(processes_in_namespace(pid_namespace)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_in_namespace(pid_namespace)) == 2  # init and the sleep
    box.teardown()
    assert processes_in_namespace(pid_namespace) == []
    assert not box.folder.exists()
    assert str(box.folder) not in Path("/proc/self/mountinfo").read_text()
    assert not box.alive()


@pytest.mark.skipif(not Path("/var/run").is_symlink(), reason="needs /var/run -> /run, as on Debian and Ubuntu")
def test_a_mount_path_through_a_symbolic_link_stays_inside(pod_folders: dict[str, Path]) -> None:
    """/var/run -> /run: the mount point is made in the sandbox's /run, never in the machine's."""
    if Path("/run/secrets").exists():
        pytest.skip("the machine has a /run/secrets of its own, so a stray one could not be told apart")
    box = create(SandboxSpec(key=f"test.sa-{os.getpid()}", hostname="sa", volumes=(
        Volume(pod_folders["config"], "/var/run/secrets/kubernetes.io/serviceaccount", read_only=True),)))
    try:
        listed = box.run(["ls", "/var/run/secrets/kubernetes.io/serviceaccount", "/run/secrets/kubernetes.io/serviceaccount"], LEARNER)
        assert listed.stdout.count("jupyterhub_config.py") == 2, listed
    finally:
        box.teardown()
    assert not Path("/run/secrets").exists()


def test_a_key_that_is_not_a_plain_name_is_refused() -> None:
    for key in ("../escape", "ns/pod", "ns.pod with space", ""):
        with pytest.raises(SandboxError, match="the key must be"):
            create(SandboxSpec(key=key, hostname="x"))


@pytest.mark.parametrize("mount_path", ["../../etc", "/srv/../../etc", "srv/data", "/"])
def test_a_mount_path_that_climbs_out_is_refused(mount_path: str, tmp_path: Path) -> None:
    spec = SandboxSpec(key="test.refused", hostname="refused", volumes=(Volume(tmp_path, mount_path),))
    with pytest.raises(SandboxError) as refused:
        create(spec)
    assert repr(mount_path) in str(refused.value) and "sandbox test.refused" in str(refused.value)
    assert refused.value.fix
    assert checked_mount_path("/srv/./data/", where="x") == "/srv/data"


# A maker killed as a supervisor can be (SIGKILL), after its sandbox runs a program that left its session, as a
# kernel or a daemon does (setsid, re-parented to the sandbox's PID 1 once its parent exits).
MAKE_AND_DIE = (
    "import os, signal, sys\n"
    "from jhtutorial.localcluster.backing.sandbox import RunAs, SandboxSpec, create\n"
    "box = create(SandboxSpec(key=sys.argv[1], hostname='maker-died'))\n"
    "started = box.run(['sh', '-c', 'setsid sleep 1000 > /dev/null 2>&1 < /dev/null &'], RunAs(1000, 1000))\n"
    "assert started.returncode == 0, started.stderr\n"
    "print(box.init_pid, f'pid:[{box.namespace_file(\"pid\").stat().st_ino}]', flush=True)\n"
    "os.kill(os.getpid(), signal.SIGKILL)\n"
)


def test_a_sandbox_ends_with_its_maker_and_its_folder_is_removed_later() -> None:
    key = f"test.maker-died-{os.getpid()}"
    made = subprocess.run([sys.executable, "-c", MAKE_AND_DIE, key], capture_output=True, text=True, timeout=60)
    assert made.returncode == -signal.SIGKILL, made.stderr
    _, pid_namespace = made.stdout.split()
    deadline = time.monotonic() + 10
    while processes_in_namespace(pid_namespace) and time.monotonic() < deadline:
        time.sleep(0.05)
    # nothing of the sandbox runs once its maker is gone, the program that left its session included
    assert processes_in_namespace(pid_namespace) == []  # its PID 1 (init_pid) among them
    # its folder, with the namespace files bound, is left for the next maker to remove
    assert key in existing()[1]
    remove_dead(key)
    assert not (RUNTIME_ROOT / key).exists()
    assert str(RUNTIME_ROOT / key) not in Path("/proc/self/mountinfo").read_text()


def test_a_sandbox_whose_first_process_died_is_removed_with_everything_in_it() -> None:
    key = f"test.crashed-{os.getpid()}"
    box = create(SandboxSpec(key=key, hostname="crashed"))
    try:
        started = box.run(["sh", "-c", "setsid sleep 1000 > /dev/null 2>&1 < /dev/null &"], LEARNER)
        assert started.returncode == 0
        pid_namespace = f"pid:[{box.namespace_file('pid').stat().st_ino}]"
        os.kill(box.init_pid, signal.SIGKILL)  # PID 1 gone: the kernel ends the rest of its namespace
        deadline = time.monotonic() + 10
        while processes_in_namespace(pid_namespace) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert key in existing()[1]
        remove_dead(key)
        assert processes_in_namespace(pid_namespace) == []
        assert not (RUNTIME_ROOT / key).exists()
        assert str(RUNTIME_ROOT / key) not in Path("/proc/self/mountinfo").read_text()
    finally:
        box.teardown()


def test_programs_a_pod_puts_on_its_path_never_run_with_privileges(machine_folder: Path) -> None:
    """A volume at the head of PATH, or over /usr/bin, holds programs named like the ones that enter a sandbox.

    Whatever of the sandbox's own file system runs while entering must run as the pod's user already: as root
    in the sandbox, a planted program would be root on the machine.
    """
    planted = machine_folder / "planted"
    planted.mkdir()
    report = machine_folder / "report"
    report.mkdir(mode=0o777)
    report.chmod(0o777)
    for name in ("env", "setpriv", "setsid", "nsenter", "sh", "true", "python3"):
        program = planted / name
        program.write_text(f"#!/bin/dash\necho {name} $(/usr/bin/grep ^Seccomp: /proc/self/status) "
                           f"$(/usr/bin/id -u) >> /report/ran\nexec /usr/bin/{name} \"$@\"\n")
        program.chmod(0o755)
    box = create(SandboxSpec(key=f"test.planted-{os.getpid()}", hostname="planted", volumes=(
        Volume(planted, "/usr/local/sbin", read_only=True), Volume(report, "/report"))))
    try:
        assert box.run(["true"], LEARNER).returncode == 0
        pid, terminal = pty.fork()  # a terminal of its own, as kwok gives `kubectl exec -it`
        if pid == 0:
            os.execv(box.enter_command(LEARNER, terminal=True)[0], [*box.enter_command(LEARNER, terminal=True), "true"])
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        box.teardown()
    ran = (report / "ran").read_text().split("\n") if (report / "ran").exists() else []
    # as the pod's user, and under the pod's seccomp filter already: nothing found inside runs before it
    assert ran and all(line.endswith(f" Seccomp: 2 {LEARNER.uid}") for line in ran if line), ran


def test_a_link_a_pod_left_in_its_volume_cannot_lead_a_mount_point_onto_the_machine(machine_folder: Path) -> None:
    """A persistent volume holds links planted by an earlier pod; another volume is mounted through them."""
    outside = machine_folder / "outside"  # a folder of the machine the links point at
    outside.mkdir()
    data = machine_folder / "data"
    data.mkdir()
    (data / "via-old-root").symlink_to(f"/.old-root{outside}")  # the machine's tree, while a sandbox is made
    (data / "via-root").symlink_to(outside)  # the machine's path, as seen inside
    other = machine_folder / "other"
    other.mkdir()
    for link in ("via-old-root", "via-root"):
        spec = SandboxSpec(key=f"test.links-{os.getpid()}", hostname="links", volumes=(
            Volume(data, "/data"), Volume(other, f"/data/{link}/inner")))
        try:
            create(spec).teardown()
        except SandboxError as refused:  # a link that leads nowhere inside is refused
            assert "could not be made" in str(refused)
    assert list(outside.iterdir()) == []


def test_what_is_in_the_way_of_sandboxes_is_named_with_its_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert unavailable_reasons() == []  # this machine: root with subordinate ids, util-linux, uidmap, iproute2, nftables
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the programs
    reasons = unavailable_reasons()
    assert len(reasons) == 2
    assert "newuidmap" in reasons[0].problem and "user namespace" in reasons[0].problem
    assert reasons[0].fix == "as root: apt-get install uidmap util-linux (Debian/Ubuntu)"
    assert "nsenter" in reasons[1].problem and "nft" in reasons[1].problem
    assert reasons[1].fix == "install them (Debian/Ubuntu: apt-get install iproute2 nftables util-linux)"
    with pytest.raises(SandboxError, match="sandbox test.nothing: the user namespace pod sandboxes are made in needs"):
        create(SandboxSpec(key="test.nothing", hostname="nothing"))
