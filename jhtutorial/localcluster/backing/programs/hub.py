"""The hub pod's program: JupyterHub with KubeSpawner, from this Python."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from .. import PORTS_ANNOTATION
from .base import HUB_VERSIONS, Launch, Obj, PodContext, Program, argv_of, install_hint


class Hub(Program):
    name = "jupyterhub"
    images = ("quay.io/jupyterhub/k8s-hub", "jupyterhub/k8s-hub")

    def missing(self) -> str | None:
        for package in HUB_VERSIONS:
            try:
                importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                return f"{package} is not installed in {sys.executable}: {install_hint('jupyterhub')}"
        return None

    def launch(self, ctx: PodContext, container: Obj, env: dict[str, str]) -> Launch:
        mapped: list[str] = []
        argv = argv_of(container) or ["jupyterhub"]
        config = "jupyterhub_config.py"  # the image's default: the working folder
        rest: list[str] = []
        words = iter(argv[1:])
        for word in words:
            if word in ("-f", "--config"):
                config = next(words, config)
            elif word.startswith("--config="):
                config = word.split("=", 1)[1]
            else:
                rest.append(word)
        workdir = ctx.files.host_path("/srv/jupyterhub")  # the image's WORKDIR
        config_path = ctx.files.host_path(config if config.startswith("/") else f"/srv/jupyterhub/{config}")
        wrapper = ctx.files.folder / "jupyterhub_config_local.py"
        hub_port = next((c["containerPort"] for c in container.get("ports") or []), 8081)
        wrapper.write_text(_hub_wrapper(ctx, config_path, hub_port, mapped))
        mapped.append(f"--config {config} -> {wrapper} (loads {config_path}, then maps addresses and paths)")
        env = dict(env)
        if ctx.kubeconfig is not None:
            env["KUBECONFIG"] = str(ctx.kubeconfig)
            mapped.append("ServiceAccount token: a TokenRequest bound to this pod, in a kubeconfig "
                          "(in a container: /var/run/secrets/kubernetes.io/serviceaccount)")
        return Launch([sys.executable, "-m", "jupyterhub", "--config", str(wrapper), *rest], env,
                      Path(workdir), mapped)


def _hub_wrapper(ctx: PodContext, config_path: str, hub_port: int, mapped: list[str]) -> str:
    """The hub's configuration: the ConfigMap's file, unchanged, then the few values that must move."""
    addresses: dict[str, str] = {}

    def note(line: str) -> None:
        mapped.append(line)

    # the addresses the config may name: the hub's own port and every Service of the namespace it names
    config_text = Path(config_path).read_text() if Path(config_path).is_file() else ""
    probe: list[str] = []
    ctx.map_addresses(config_text, probe)
    for line in probe:
        before, after = line.split(" -> ")
        addresses[before] = after
    addresses.setdefault(f"0.0.0.0:{hub_port}", f"127.0.0.1:{ctx.ports.get(hub_port, hub_port)}")
    path_map = {inside: str(local) for inside, local in ctx.files.mounts.items()}
    for before, after in addresses.items():
        note(f"{before} -> {after}")
    bind = f"http://127.0.0.1:{ctx.ports.get(hub_port, hub_port)}"
    lines = [
        "# jupyterhub_config.py of this pod as a process on this machine (written by the local cluster's",
        "# supervisor). First the file the pod mounts from ConfigMap hub-config, unchanged; then only what",
        "# must differ off the pod: addresses (this machine's loopback, one port per pod and Service) and",
        "# the paths of the pod's mounts. Nothing connects to a pod IP or a Service IP.",
        f"load_subconfig({config_path!r})",
        "",
        "import json as _json",
        "from urllib.parse import urlsplit as _urlsplit",
        "",
        f"ADDRESSES = {addresses!r}  # in the pod -> on this machine",
        f"PATHS = {path_map!r}  # mount path in the pod -> folder on this machine",
        "",
        "def _local(value):",
        "    value = str(value)",
        "    for before, after in ADDRESSES.items():",
        "        value = value.replace('//' + before, '//' + after)",
        "    for inside in sorted(PATHS, key=len, reverse=True):",
        "        for prefix in ('sqlite:///', ''):",
        "            if value.startswith(prefix + inside + '/') or value == prefix + inside:",
        "                return prefix + PATHS[inside] + value[len(prefix + inside):]",
        "    return value",
        "",
        "# the hub listens on this machine's loopback (in the pod: all interfaces, port 8081)",
        f"c.JupyterHub.hub_bind_url = {bind!r}",
        "for _cls, _name in [('JupyterHub', 'hub_connect_url'), ('ConfigurableHTTPProxy', 'api_url'),",
        "                    ('JupyterHub', 'db_url'), ('JupyterHub', 'cookie_secret_file')]:",
        "    if _name in c[_cls]:",
        "        c[_cls][_name] = _local(c[_cls][_name])",
        "",
        "def _pod_url(spawner, pod):",
        "    # A user pod's server listens on a loopback port that the supervisor writes on the pod",
        f"    # (annotation {PORTS_ANNOTATION}); the pod IP is simulated and never contacted.",
        f"    ports = _json.loads((pod['metadata'].get('annotations') or {{}}).get({PORTS_ANNOTATION!r}, '{{}}'))",
        "    local = ports.get(str(spawner.port))",
        "    # port 1 on loopback refuses connections: the hub waits, as for a server that is not up yet",
        "    return f'http://127.0.0.1:{local or 1}'",
        "",
        "c.KubeSpawner.get_pod_url = _pod_url",
    ]
    note("KubeSpawner.get_pod_url: the user pod's loopback port from its annotation "
         f"{PORTS_ANNOTATION}, never the pod IP")
    return "\n".join(lines) + "\n"
