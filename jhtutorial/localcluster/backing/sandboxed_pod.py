"""One backed pod in a sandbox of its own: the pod runtime (:mod:`.pod`) with what a container runtime gives.

- the pod gets a sandbox (:mod:`.sandbox`) with its name as hostname, joined to
  its namespace's pod network with its ``status.podIP`` (:mod:`.pod_networks`);
- its volumes are bound at their ``mountPath`` (with ``fsGroup`` applied to the
  writable ones), its ServiceAccount token at
  ``/var/run/secrets/kubernetes.io/serviceaccount``, a hosts file for the
  Services of its namespace at ``/etc/hosts`` (:mod:`.hosts`);
- each container's command and arguments run as they are, as its
  ``runAsUser``/``runAsGroup`` (``fsGroup`` and ``supplementalGroups`` as
  supplementary groups), with no capability and no_new_privs, in the image's
  working folder (:mod:`.images`); no address or path is rewritten;
- probes connect to the pod IP inside the pod's network namespace;
- kwok's PortForward, Logs and Exec objects send ``kubectl port-forward``,
  ``logs`` and ``exec`` (``-it`` too) into the sandbox, as the container's user;
- when the pod goes, its processes get SIGTERM, then the sandbox is torn down
  (the kernel kills whatever is left in its PID namespace) and its link removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

from ...kubeapi import NODES, KubeApi
from . import BACKED_BY_ANNOTATION, KWOK_STATUS_ANNOTATION, SANDBOXED_BY
from .apiserver_relay import KUBERNETES_CLUSTER_IP, KUBERNETES_PORT, socket_in
from .credentials import TokenLifetime, service_account_folder
from .hosts import hosts_file
from .images import image_for
from .mounts import apply_fs_group, container_env, create_file, expand
from .kwok_objects import EXECS, FORMER_ANNOTATIONS, LOGS, PORT_FORWARDS
from .pod import STOP_GRACE, Container, Launch, PodRuntime
from .pod_networks import PodNetworks
from .programs import program_for
from .sandbox import RunAs, Sandbox, SandboxSpec, Volume, create

Obj = dict[str, Any]
SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def sandbox_prefix(folder: Path) -> str:
    """The first word of the keys of one supervisor's sandboxes: another cluster's are never touched."""
    return "c" + hashlib.sha256(str(folder.absolute()).encode()).hexdigest()[:8]


def run_as(pod: Obj, container: Obj) -> RunAs:
    """The container's user and groups, as its securityContext and the pod's say (the pod's fsGroup included)."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    context = {**pod_context, **(container.get("securityContext") or {})}
    uid = int(context.get("runAsUser", 65534))  # no user named and no image to name one: nobody, never root
    gid = int(context.get("runAsGroup", uid))
    groups = [int(g) for g in pod_context.get("supplementalGroups") or []]
    if "fsGroup" in pod_context:
        groups.insert(0, int(pod_context["fsGroup"]))
    return RunAs(uid, gid, tuple(dict.fromkeys(groups)))


class SandboxedPod(PodRuntime):
    def __init__(self, pod: Obj, folder: Path, kube: KubeApi, kubeconfig_cluster: Obj, networks: PodNetworks,
                 key_prefix: str, hidden: tuple[Path, ...], log: Any, *,
                 tokens: TokenLifetime = TokenLifetime()) -> None:
        super().__init__(pod, folder, kube, kubeconfig_cluster, log, tokens=tokens)
        self.networks = networks
        self.key = f"{key_prefix}.{self.namespace}.{self.name}"
        self.hidden = hidden
        self.box: Sandbox | None = None
        self.pod_ip = ""
        self.users: dict[str, RunAs] = {}
        self._hosts = self.folder / "hosts"

    # --- life cycle -----------------------------------------------------------------------

    def reserve(self) -> None:
        # from now on kwok leaves this pod's status to the supervisor (see cluster._kwok_config)
        self._annotate({KWOK_STATUS_ANNOTATION: "custom", **dict.fromkeys(FORMER_ANNOTATIONS)})

    def prepare(self) -> None:
        """Make the sandbox (once) and each container's command (raises NotReadyYet to try later)."""
        spec = self.pod.get("spec") or {}
        self._flush_annotations()
        if self.box is None:
            self._make_sandbox(spec)
        self.containers = []
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        for spec_container in spec.get("containers") or []:
            program = program_for(spec_container.get("image", ""))
            assert program is not None  # the supervisor only backs pods whose images all have a program
            image = image_for(program)
            env = {"PATH": image.path, "HOME": image.home, "HOSTNAME": self.name, "LANG": "C.UTF-8",
                   "KUBERNETES_SERVICE_HOST": KUBERNETES_CLUSTER_IP, "KUBERNETES_SERVICE_PORT": str(KUBERNETES_PORT),
                   "KUBERNETES_SERVICE_PORT_HTTPS": str(KUBERNETES_PORT),
                   **container_env(self.pod, spec_container, self.kube, pod_ip=self.pod_ip)}
            command = [*(spec_container.get("command") or []), *(spec_container.get("args") or [])]
            argv = [expand(word, env) for word in command or image.command]
            workdir = spec_container.get("workingDir") or image.workdir
            self.users[spec_container["name"]] = run_as(self.pod, spec_container)
            self._write_environment(spec_container["name"], env)
            self.containers.append(Container(spec_container, program,
                                             self.folder / "logs" / f"{spec_container['name']}.log",
                                             Launch(argv, env, Path(workdir))))

    def _make_sandbox(self, spec: Obj) -> None:
        self.files.write()
        fs_group = ((spec.get("securityContext") or {}).get("fsGroup"))
        kinds = {v["name"]: v for v in spec.get("volumes") or []}
        # ConfigMap and Secret volumes are read-only, as the kubelet mounts them; others as the mount says
        read_only = {m["mountPath"].rstrip("/") or "/": bool(m.get("readOnly")) or
                     bool({"configMap", "secret"} & set(kinds.get(m["name"], {})))
                     for c in spec.get("containers") or [] for m in c.get("volumeMounts") or []}
        volumes: dict[str, Volume] = {}
        for inside, source in self.files.mounts.items():
            if fs_group is not None and source.resolve().is_dir():
                apply_fs_group(source.resolve(), int(fs_group), writable=not read_only.get(inside))
            volumes[inside] = Volume(source, inside, read_only.get(inside, False))
        for container in spec.get("containers") or []:
            program = program_for(container.get("image", ""))
            for volume in image_for(program).volumes if program else ():
                volumes.setdefault(volume.mount_path, volume)
        if spec.get("automountServiceAccountToken", True):
            volumes[SERVICE_ACCOUNT_PATH] = Volume(self._service_account(), SERVICE_ACCOUNT_PATH, read_only=True)
        self.pod_ip = self._choose_address()
        create_file(self._hosts, 0o644, hosts_file(self.name, self.pod_ip, self.namespace, {}).encode())
        volumes["/etc/hosts"] = Volume(self._hosts, "/etc/hosts", read_only=True)
        box = create(SandboxSpec(key=self.key, hostname=self.name, volumes=tuple(volumes.values()),
                                 hidden=self.hidden))
        try:
            self.networks.attach(self.namespace, self.name, self.pod_ip, box.net_namespace)
        except BaseException:
            box.teardown()
            raise
        self.box = box
        self.log(f"{self.namespace}/{self.name}: sandbox {self.key} made, pod IP {self.pod_ip}")

    def update_hosts(self, services: dict[str, str]) -> None:
        """Rewrite the pod's /etc/hosts for the Services of its namespace now (in place: it is bound inside)."""
        if self.box is None:
            return
        text = hosts_file(self.name, self.pod_ip, self.namespace, services)
        with open(self._hosts, "r+", encoding="utf-8") as hosts:
            if hosts.read() != text:
                hosts.seek(0)
                hosts.write(text)
                hosts.truncate()

    def stop(self) -> None:
        """SIGTERM every process in the sandbox, then tear it down; remove the pod's link and folder."""
        self._stop.set()
        self._wake.set()
        box = self.box
        if box is not None:
            for pid in box.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            while any(c.alive for c in self.containers) and time.monotonic() < deadline:
                time.sleep(0.05)  # process exit has no event to wait on here
            self.networks.detach(self.namespace, self.name)
            box.teardown()  # SIGKILL to the sandbox's PID 1: the kernel ends everything left inside
            self.box = None
        for container in self.containers:
            if container.process is not None:
                container.process.wait()
            for reader in container.readers:
                reader.join(2)
        if self._thread is not None:
            self._thread.join(5)
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()

    def report(self) -> Obj:
        # the sandbox's first process, as the machine numbers it: what reads the status from outside the
        # supervisor's mount namespace (where the sandbox's folder is) finds the sandbox's namespaces by it
        return {**super().report(), "sandbox": self.key, "sandbox_pid": self.box.init_pid if self.box else None,
                "podIP": self.pod_ip,
                "users": {name: [user.uid, user.gid, list(user.groups)] for name, user in self.users.items()}}

    # --- processes and probes -------------------------------------------------------------

    def _environment_file(self, container: str) -> Path:
        return self.folder / "env" / f"{container}.json"

    def _write_environment(self, container: str, env: dict[str, str]) -> None:
        """The container's whole environment, in a file only root reads (the pod's folder is hidden inside
        every sandbox): its program and every ``kubectl exec`` start with it, and no value, a Secret's
        included, goes on a command line or into a kwok object."""
        assert self.box is not None
        path = self._environment_file(container)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        create_file(path, 0o600, json.dumps(self.box.environment(env)).encode())

    def _command(self, container: Container, launch: Launch) -> tuple[list[str], dict[str, str], Path]:
        assert self.box is not None
        # the working folder is set inside, as the pod's user (`env -C`), never looked up on the machine
        inside = ["/usr/bin/env", "-C", str(launch.cwd), "--", *launch.argv]
        words = self.box.enter_command(self.users[container.name], env_file=self._environment_file(container.name))
        return [*words, *inside], {}, Path("/")

    def _check_exit(self, container: Container) -> None:
        keeper = container.process
        if keeper is not None and keeper.poll() is not None:
            self._end_leftovers(keeper.pid)
        super()._check_exit(container)

    def _end_leftovers(self, session: int) -> None:
        """SIGKILL what a container's program left in the sandbox when it exited, as the kernel does in a
        container whose first process ends: nginx's workers, say, which would hold the port its next start
        binds. The keeper cannot: a process orphaned inside is handed to the sandbox's PID 1, not to the keeper
        outside. The container's processes are those still in the keeper's session (``session``, its PID); one
        that made a session of its own (a kernel) is left to the pod's end."""
        for pid in self.box.processes() if self.box is not None else []:
            with contextlib.suppress(ProcessLookupError):
                if os.getsid(pid) == session:
                    os.kill(pid, signal.SIGKILL)

    def _stdio_owner(self, container: Container) -> int | None:
        return self.users[container.name].uid

    def _connect(self, port: int, timeout: float) -> socket.socket | None:
        if self.box is None:
            return None
        sock = socket_in(self.box.net_namespace)  # the pod's network: its pod IP is its own address there
        sock.settimeout(timeout)
        try:
            sock.connect((self.pod_ip, port))
        except OSError:
            sock.close()
            raise
        return sock

    def _pod_ip(self) -> str:
        return self.pod_ip

    def _choose_address(self) -> str:
        status = self.pod.get("status") or {}
        node = (self.pod.get("spec") or {}).get("nodeName")
        cidr = (((self.kube.get_or_none(NODES.path(name=node)) or {}).get("spec") or {}).get("podCIDR")
                if node else None) or "10.244.0.0/24"
        base = cidr.split("/")[0].rsplit(".", 1)[0]
        return self.networks.address_for(self.namespace, self.name, status.get("podIP"), base,
                                         int(self.uid.replace("-", "")[:8], 16))

    # --- the API side ---------------------------------------------------------------------

    def _service_account(self) -> Path:
        """The ServiceAccount's token (bound to this pod), the cluster's CA and the namespace, as the kubelet
        projects them."""
        return self._write_credentials(self._new_token())

    def _write_credentials(self, token: str) -> Path:
        # the folder is what the sandbox mounts: a file renamed into it is seen inside at once
        return service_account_folder(self.folder, token, self.kubeconfig_cluster, self.namespace)

    def _publish(self) -> None:
        """PortForward, Logs and Exec objects that send kubectl into the sandbox, and what runs the pod."""
        assert self.box is not None
        forwards = []
        for container in self.containers:
            user = self.users[container.name]
            for port in container.spec.get("ports") or []:
                number = int(port["containerPort"])
                forwards.append({"ports": [number], "command": self.box.port_forward_command(number, user)})
        logs = [{"containers": [c.name], "logsFile": str(c.log_path), "follow": True} for c in self.containers]
        execs = [{"containers": [c.name], "local": {"envs": self.box.kwok_exec_envs(
                     self.users[c.name], env_file=self._environment_file(c.name))}} for c in self.containers]
        self._apply_kwok_objects([(PORT_FORWARDS, {"forwards": forwards}), (LOGS, {"logs": logs}),
                                  (EXECS, {"execs": execs})])
        users = ", ".join(f"{name} as uid {user.uid}" for name, user in self.users.items())
        self._annotate({BACKED_BY_ANNOTATION: f"{SANDBOXED_BY} (pod IP {self.pod_ip}; {users})"})
