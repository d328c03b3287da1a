"""JupyterHub as a process on this machine, standing in for the hub container of a simulated cluster.

On the simulated cluster (kwok) the hub pod is Running but no container runs
in it, so nobody can log in. To keep the login lesson real, this module runs
the real thing next to the cluster instead:

- the same JupyterHub and KubeSpawner versions the hub image carries
  (5.5.0 and 7.0.0, installed by ``pip install -e '.[test]'``);
- the ``jupyterhub_config.py`` from the cluster's ``hub-config`` ConfigMap,
  unchanged; a small file loaded around it only moves what must move off the
  pod: the listening addresses (127.0.0.1), the sqlite database and cookie
  secret (a temporary folder instead of the hub-db-dir volume), the proxy, and
  shorter spawn timeouts;
- the ``hub`` ServiceAccount's own token (TokenRequest, 10 minutes), so
  KubeSpawner talks to the real API server with exactly the hub's
  least-privilege Role, and ``POD_NAMESPACE`` as the Deployment sets it;
- configurable-http-proxy in front when it is installed (``npm install
  configurable-http-proxy@5.2.0``, found on PATH, in ``$JHTUTORIAL_CHP`` or under
  ``~/.cache/jhtutorial/chp``), otherwise no proxy at all: requests go to the
  hub's own port.

    >>> with LocalHub(conn) as hub:           # doctest: +SKIP
    ...     print(hub.url)
    http://127.0.0.1:40613

What a learner would do instead, on a cluster with containers:
``kubectl logs -n NS deploy/hub -f`` and the proxy-public URL.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.metadata
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .connect import Connection, current_connection
from .errors import LocalHubFailed, StepOutOfOrder
from .kubeapi import CONFIGMAPS, SERVICE_ACCOUNTS, KubeApi
from .localcluster import paths

#: The versions in quay.io/jupyterhub/k8s-hub:4.4.0, which the manifests pin.
HUB_VERSIONS = {"jupyterhub": "5.5.0", "jupyterhub-kubespawner": "7.0.0"}
CHP_ENV = "JHTUTORIAL_CHP"
CHP_VERSION = "5.2.0"
READY_LINE = "JupyterHub is now running"
TOKEN_SECONDS = 600  # the shortest lifetime the TokenRequest API grants
LOG_LINES = 400


def find_chp() -> str | None:
    """The configurable-http-proxy command, if installed (``$JHTUTORIAL_CHP``, PATH, the cache)."""
    explicit = os.environ.get(CHP_ENV)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    on_path = shutil.which("configurable-http-proxy")
    if on_path:
        return on_path
    cached = paths.cache_dir() / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(cached) if cached.is_file() and shutil.which("node") else None


def installed_versions() -> dict[str, str | None]:
    """The installed versions of the packages the hub image carries (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in HUB_VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


@dataclass
class LocalHub:
    """A JupyterHub process configured from the cluster's hub-config, as the hub's ServiceAccount.

    Args:
        conn: a connection (default: the last one made); its namespace holds the tutorial.
        proxy: "auto" (configurable-http-proxy if installed), "chp" (require it) or "none".
        start_timeout / http_timeout: KubeSpawner's limits for the pod to run and the
            server to answer (the ConfigMap's 600/120 s are meant for image pulls).
        ready_timeout: seconds to wait for the hub process to come up.
    """

    conn: Connection | None = None
    proxy: str = "auto"
    start_timeout: int = 30
    http_timeout: int = 60
    ready_timeout: float = 60.0
    url: str = ""  # where to log in: the proxy's public port, or the hub's own
    hub_url: str = ""  # the hub's own port
    proxy_used: str = ""  # "configurable-http-proxy" or "none"
    versions: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started_seconds: float = 0.0
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _workdir: Path | None = field(default=None, repr=False)
    _log: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=LOG_LINES), repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)
    _ready: threading.Event = field(default_factory=threading.Event, repr=False)
    _closed_port: socket.socket | None = field(default=None, repr=False)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> LocalHub:
        """Start the hub and wait until it says it is running. Raises LocalHubFailed with its log."""
        if self.running:
            return self
        conn = self.conn = self.conn or current_connection()
        started = time.monotonic()
        self.versions = self._check_versions()
        chp = self._choose_proxy()
        kube = KubeApi(conn.api)
        config_text = self._hub_config(kube, conn)
        token = self._hub_token(kube, conn)
        self._workdir = Path(tempfile.mkdtemp(prefix="jhtutorial-hub-"))
        try:
            self._write_files(conn, config_text, token, chp)
            self._launch(conn, chp)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop the hub (SIGTERM, as Kubernetes does), and remove its temporary folder.

        The hub-config sets ``cleanup_servers = False``: like a hub pod being
        replaced, the stopping hub leaves user pods and PVCs where they are.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(10)
            self._reader = None
        if process is not None and process.stdout is not None:
            process.stdout.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)  # the database and the token's kubeconfig
            self._workdir = None
        if self._closed_port is not None:
            self._closed_port.close()
            self._closed_port = None

    def _unanswered_url(self) -> str:
        """A loopback URL where connections are refused for as long as the hub runs.

        The socket is bound but never listens: the kernel refuses every
        connection to it, and no other program can take the port meanwhile.
        """
        if self._closed_port is None:
            self._closed_port = socket.socket()
            self._closed_port.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{self._closed_port.getsockname()[1]}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self, last: int | None = None) -> list[str]:
        """The hub's most recent log lines."""
        lines = list(self._log)
        return lines[-last:] if last else lines

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- preparation ------------------------------------------------------------------

    def _check_versions(self) -> dict[str, str | None]:
        found = installed_versions()
        missing = [name for name, version in found.items() if version is None]
        if missing:
            pins = " ".join(f"'{name}=={version}'" for name, version in HUB_VERSIONS.items())
            raise LocalHubFailed(
                f"{' and '.join(missing)} not installed in this Python ({sys.executable}): the simulated "
                "cluster's hub cannot run here",
                fix=f"pip install -e '.[test]' in the project (or pip install {pins})",
            )
        for name, version in found.items():
            if version != HUB_VERSIONS[name]:
                self.notes.append(f"{name} {version} is installed; the hub image carries {HUB_VERSIONS[name]}")
        return found

    def _choose_proxy(self) -> str | None:
        if self.proxy not in ("auto", "chp", "none"):
            raise LocalHubFailed(f"unknown proxy choice {self.proxy!r}", fix="use 'auto', 'chp' or 'none'")
        chp = find_chp() if self.proxy in ("auto", "chp") else None
        if self.proxy == "chp" and chp is None:
            raise LocalHubFailed(
                "configurable-http-proxy is not installed",
                fix=f"npm install --prefix {paths.cache_dir() / 'chp'} configurable-http-proxy@{CHP_VERSION} "
                f"(or set {CHP_ENV} to its path), or use proxy='none'",
            )
        self.proxy_used = "configurable-http-proxy" if chp else "none"
        return chp

    @staticmethod
    def _hub_config(kube: KubeApi, conn: Connection) -> str:
        config_map = kube.get_or_none(CONFIGMAPS.path(conn.namespace, "hub-config"))
        text = ((config_map or {}).get("data") or {}).get("jupyterhub_config.py")
        if not text:
            raise StepOutOfOrder(
                f"ConfigMap hub-config (with jupyterhub_config.py) is missing in namespace {conn.namespace}",
                fix="apply step 02 first: jhtutorial.apply('configmaps')",
            )
        return text

    @staticmethod
    def _hub_token(kube: KubeApi, conn: Connection) -> str:
        """A short-lived token of the hub's ServiceAccount (what `kubectl create token hub` prints)."""
        answer = kube.call(
            "POST", SERVICE_ACCOUNTS.path(conn.namespace, "hub", "token"),
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": TOKEN_SECONDS}},
        )
        return str(answer["status"]["token"])

    def _write_files(self, conn: Connection, config_text: str, token: str, chp: str | None) -> None:
        assert self._workdir is not None
        work = self._workdir
        (work / "hub_config_from_configmap.py").write_text(config_text)
        configuration = conn.api.configuration
        cluster: dict[str, object] = {"server": configuration.host}
        if configuration.ssl_ca_cert:
            cluster["certificate-authority"] = configuration.ssl_ca_cert
        if not configuration.verify_ssl:
            cluster["insecure-skip-tls-verify"] = True
        kubeconfig = work / "kubeconfig"
        kubeconfig.touch(mode=0o600)
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "hub", "user": {"token": token}}],
            "contexts": [{"name": "hub", "context": {"cluster": "cluster", "user": "hub",
                                                     "namespace": conn.namespace}}],
            "current-context": "hub",
        }))
        hub_port = _free_port()
        self.hub_url = f"http://127.0.0.1:{hub_port}"
        lines = [
            "# Written by jhtutorial: JupyterHub on this machine, standing in for the hub container",
            "# of a simulated cluster. The cluster's own config comes first, unchanged;",
            "# the lines after it move only what must leave the pod.",
            "load_subconfig(" + repr(str(work / "hub_config_from_configmap.py")) + ")",
            "",
            "# listen on this machine only (in the pod: 0.0.0.0:8081 behind the hub Service)",
            f"c.JupyterHub.hub_bind_url = {self.hub_url!r}",
            "# how the proxy (and user servers) reach the hub (in the cluster: http://hub:8081, the hub Service)",
            f"c.JupyterHub.hub_connect_url = {self.hub_url!r}",
            "# the database and cookie secret in a temporary folder (in the pod: the hub-db-dir volume)",
            f"c.JupyterHub.db_url = {'sqlite:///' + str(work / 'jupyterhub.sqlite')!r}",
            f"c.JupyterHub.cookie_secret_file = {str(work / 'jupyterhub_cookie_secret')!r}",
            "# a simulated pod is Running within seconds; it never answers (no container)",
            f"c.KubeSpawner.start_timeout = {int(self.start_timeout)}",
            f"c.KubeSpawner.http_timeout = {int(self.http_timeout)}",
            "# answer the start request after 1 s; the progress API follows the rest (default 10 s)",
            "c.JupyterHub.tornado_settings.update({'slow_spawn_timeout': 1})",
            "# Never contact the pod's IP: on a simulated node nothing listens there, and this machine",
            "# sends no traffic beyond loopback. The hub (and the proxy's route) point at a local port",
            "# that is reserved but refuses connections, like a server that never starts.",
            f"c.KubeSpawner.get_pod_url = lambda spawner, pod: {self._unanswered_url()!r}",
        ]
        if chp:
            proxy_port, api_port = _free_port(), _free_port()
            self.url = f"http://127.0.0.1:{proxy_port}"
            lines += [
                "# configurable-http-proxy as a child process (in the cluster: the proxy pod)",
                f"c.JupyterHub.bind_url = {self.url!r}",
                "c.ConfigurableHTTPProxy.should_start = True",
                f"c.ConfigurableHTTPProxy.api_url = {'http://127.0.0.1:' + str(api_port)!r}",
                f"c.ConfigurableHTTPProxy.command = [{chp!r}]",
            ]
        else:
            self.url = self.hub_url
            lines += [
                "# no proxy process: the routing table stays in memory, requests go to the hub's port",
                f"c.JupyterHub.bind_url = {'http://127.0.0.1:' + str(_free_port())!r}",
                "c.JupyterHub.proxy_class = 'jhtutorial._hubproxy.RoutesInMemory'",
            ]
        (work / "jupyterhub_config.py").write_text("\n".join(lines) + "\n")

    def _launch(self, conn: Connection, chp: str | None) -> None:
        assert self._workdir is not None
        env = {key: value for key, value in os.environ.items()
               # outside a pod: KubeSpawner must take the kubeconfig, not look for in-cluster credentials
               if key not in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
        env.update({
            "POD_NAMESPACE": conn.namespace,  # what the Deployment's downward API sets
            "KUBECONFIG": str(self._workdir / "kubeconfig"),
            "PYTHONUNBUFFERED": "1",
            # the hub and the proxy share it, as they share Secret hub-secret in the cluster
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
        })
        if chp:
            env["PATH"] = str(Path(chp).parent) + os.pathsep + env.get("PATH", "")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self._workdir / "jupyterhub_config.py")],
            cwd=self._workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._ready.clear()
        self._reader = threading.Thread(target=self._read_log, args=(self._process,),
                                        name="jhtutorial-localhub-log", daemon=True)
        self._reader.start()

    def _read_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in process.stdout:
                self._log.append(line.rstrip())
                if READY_LINE in line:
                    self._ready.set()
        self._ready.set()  # the process ended: whoever waits must look at it

    def _wait_ready(self) -> None:
        self._ready.wait(self.ready_timeout)
        if self._process is not None and self._process.poll() is None and any(READY_LINE in line for line in self._log):
            return
        code = self._process.poll() if self._process else None
        tail = "\n".join(f"    {line}" for line in self.log(15))
        what = f"exited with code {code}" if code is not None else f"did not come up in {self.ready_timeout:.0f} s"
        raise LocalHubFailed(
            f"the local JupyterHub process {what}; its last log lines:\n{tail}",
            fix="read the log for the first error (a Python exception in jupyterhub_config.py, "
            "a port in use, a missing package); `jupyterhub --version` must say 5.5.0",
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
