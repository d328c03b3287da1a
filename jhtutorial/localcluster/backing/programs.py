"""One recipe per image: which program on this machine plays the container, and what it is told.

The tutorial's images and the programs that stand for them:

=====================================================  ===============================================
image                                                  program on this machine
=====================================================  ===============================================
``quay.io/jupyterhub/k8s-hub``                         JupyterHub 5.5.0 + KubeSpawner 7.0.0 (this Python)
``nginxinc/nginx-unprivileged``, ``nginx``             Debian's nginx (``apt-get install nginx-light``)
``quay.io/jupyterhub/configurable-http-proxy``         configurable-http-proxy 5.2.0 from npm, in the cache
``quay.io/jupyterhub/k8s-singleuser-sample``           ``jupyterhub-singleuser`` with JupyterLab (this Python)
=====================================================  ===============================================

Each program starts from the container as the API server holds it: its
command and arguments, its environment, its mounts (:mod:`.mounts`). Only
addresses and paths change, and each change is written down in
:attr:`Launch.mapped` (the supervisor puts them on the pod and in its folder):

- a port the container listens on becomes a free port on 127.0.0.1 (every
  backed pod shares this machine's one loopback, so two proxies cannot both
  have port 8000);
- a Service address (``hub:8081``, ``proxy-api:8001``) becomes the local port
  where the supervisor forwards that Service to its backed pod, as kube-proxy
  would;
- a path inside a mount becomes the pod's folder on this machine.

Anything else (other images, or a program that is not installed) is not run:
the pod stays purely simulated, and :func:`missing_programs` says what to install.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from . import PORTS_ANNOTATION
from .mounts import PodFiles

Obj = dict[str, Any]

HUB_VERSIONS = {"jupyterhub": "5.5.0", "jupyterhub-kubespawner": "7.0.0"}  # what k8s-hub:4.4.0 carries
CHP_VERSION = "5.2.0"  # the version of the pinned configurable-http-proxy image
ADDRESS = re.compile(r"(?<![\w.-])(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*)?:(?P<port>\d{2,5})\b")


def chp_folder() -> Path:
    """Where the set-up installs configurable-http-proxy: the cache, one folder per version."""
    return paths.cache_dir() / f"chp-{CHP_VERSION}"


def chp_command() -> Path:
    return chp_folder() / "node_modules" / ".bin" / "configurable-http-proxy"


def install_hint(program: str) -> str:
    return {
        "nginx": "install Debian's nginx: `sudo apt-get install nginx-light` (or run `make system-deps` as root)",
        "node": "install Node.js (Debian: `sudo apt-get install nodejs npm`)",
        "configurable-http-proxy": f"`npm install --prefix {chp_folder()} configurable-http-proxy@{CHP_VERSION}` "
                                   "(what `make system-deps` does)",
        "jupyterhub": "pip install -e '.[test]' in the project (JupyterHub 5.5.0 and KubeSpawner 7.0.0)",
        "jupyterlab": "pip install -e '.[test]' in the project (JupyterLab)",
    }[program]


@dataclass
class PodContext:
    """What a recipe may use: the pod, its files, its ports, and the way to a Service."""

    pod: Obj
    files: PodFiles
    ports: dict[int, int]  # container port -> port on 127.0.0.1 (the pod's own loopback, mapped)
    service_address: Callable[[str, int], str | None]  # ("hub", 8081) -> "127.0.0.1:41234" or None
    kubeconfig: Path | None  # the pod's ServiceAccount token as a kubeconfig, when the pod mounts one

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    def map_addresses(self, text: str, mapped: list[str]) -> str:
        """Replace ``SERVICE:PORT`` and ``[HOST]:PORT`` of the pod itself by their 127.0.0.1 ports."""
        def replace(match: re.Match[str]) -> str:
            host, port = match.group("host") or "", int(match.group("port"))
            if host in ("", "0.0.0.0", "127.0.0.1", "localhost") and port in self.ports:
                local = f"127.0.0.1:{self.ports[port]}"
            elif host and host not in ("0.0.0.0", "127.0.0.1", "localhost"):
                name, _, rest = host.partition(".")
                namespace = rest.split(".")[0] if rest else self.namespace
                if rest and not re.fullmatch(rf"{re.escape(namespace)}(\.svc(\.cluster\.local)?)?", rest):
                    return match.group(0)
                if namespace != self.namespace:
                    return match.group(0)
                found = self.service_address(name, port)
                if found is None:
                    return match.group(0)
                local = found
            else:
                return match.group(0)
            note = f"{match.group(0)} -> {local}"
            if note not in mapped:
                mapped.append(note)
            return local
        return ADDRESS.sub(replace, text)


@dataclass
class Launch:
    """How to start one container's program: the command line, its environment and folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mapped: list[str] = field(default_factory=list)  # every address or path that differs from the pod


def image_pattern(repositories: tuple[str, ...] | list[str]) -> str:
    """A regular expression for an image of one of these repositories: ``NAME``, ``NAME:TAG``, ``NAME@DIGEST``
    or ``NAME:TAG@DIGEST`` (a registry's ``:PORT`` belongs to NAME).

    The one matcher of the backing: Python's ``re`` runs it for the supervisor, and the API server's CEL
    (``matches``, RE2) for the admission policy (:mod:`.admission`), so the two never disagree on an image.

    >>> bool(re.fullmatch(image_pattern(["nginx"]), "nginx@sha256:0a1b")), re.fullmatch(image_pattern(["nginx"]), "nginx:5000/x")
    (True, None)
    """
    names = "|".join(re.escape(repository) for repository in sorted(repositories))
    return rf"^({names})(:[^:/@]+)?(@[^:/@]+:[^:/@]+)?$"


class Program:
    """A recipe: which images it stands for, what must be installed, how to start it."""

    name = ""
    images: tuple[str, ...] = ()

    def matches(self, image: str) -> bool:
        return re.fullmatch(image_pattern(self.images), image) is not None

    def missing(self) -> str | None:
        """None when the program can run here, else which one is missing and how to install it."""
        return None

    def launch(self, ctx: PodContext, container: Obj, env: dict[str, str]) -> Launch:
        raise NotImplementedError


def _argv(container: Obj) -> list[str]:
    # these images' entrypoints (tini) only run what they are given
    return [*(container.get("command") or []), *(container.get("args") or [])]


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
        argv = _argv(container) or ["jupyterhub"]
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


class Nginx(Program):
    name = "nginx"
    images = ("nginxinc/nginx-unprivileged", "nginx", "docker.io/library/nginx", "docker.io/nginxinc/nginx-unprivileged")

    @staticmethod
    def binary() -> str | None:
        return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)

    def missing(self) -> str | None:
        return None if self.binary() else f"nginx is not installed: {install_hint('nginx')}"

    def launch(self, ctx: PodContext, container: Obj, env: dict[str, str]) -> Launch:
        mapped: list[str] = []
        argv = _argv(container) or ["nginx", "-g", "daemon off;"]
        binary = self.binary() or "nginx"
        out = [binary]
        words = iter(argv[1:])
        conf = "/etc/nginx/nginx.conf"
        global_directives = None
        for word in words:
            if word in ("-p", "-c"):
                value = next(words, "")
                if word == "-c":
                    conf = value
                local = ctx.files.host_path(value.rstrip("/")) + ("/" if value.endswith("/") else "")
                if local != value:
                    mapped.append(f"{word} {value} -> {local}")
                out += [word, local]
            elif word == "-g":
                global_directives = next(words, "")
                out += [word, global_directives]
            else:
                out.append(word)
        system_types = Path("/etc/nginx/mime.types")
        conf_dir = str(Path(conf).parent)
        if system_types.is_file():
            ctx.files.add_image_file(f"{conf_dir}/mime.types", system_types)
        # the configuration files the pod mounts under nginx's folder: listen and upstream addresses mapped
        # (under the pod's root folder only: nothing of this machine's own /etc/nginx is read or touched)
        for path in sorted((ctx.files.root / conf_dir.lstrip("/")).rglob("*")):
            if path.is_file() and (path.suffix == ".conf" or path.name == Path(conf).name):
                text = path.read_text()
                changes: list[str] = []
                text = re.sub(r"(?m)^(\s*listen\s+)(?:\[::\]:|0\.0\.0\.0:|\*:)?(\d+)(\b[^;]*;)",
                              lambda m: self._listen(m, ctx, changes), text)
                text = ctx.map_addresses(text, changes)
                if changes:
                    path.write_text(text)
                    mapped += [f"{path.name}: {change}" for change in changes]
        if os.geteuid() == 0:
            # as root, nginx's workers would switch to user nobody, who may not write under the pod's folder;
            # in the container nginx already runs unprivileged and never switches
            index = out.index("-g") + 1 if "-g" in out else None
            if index is None:
                out += ["-g", "user root;"]
            else:
                out[index] = out[index].rstrip() + " user root;"
            mapped.append("-g 'user root;' added: run as root here, the workers keep the master's user")
        return Launch(out, dict(env), Path(ctx.files.host_path("/tmp")), mapped)

    @staticmethod
    def _listen(match: re.Match[str], ctx: PodContext, changes: list[str]) -> str:
        port = int(match.group(2))
        local = ctx.ports.get(port, port)
        changes.append(f"listen {port} -> listen 127.0.0.1:{local}")
        return f"{match.group(1)}127.0.0.1:{local}{match.group(3)}"


class ConfigurableHttpProxy(Program):
    name = "configurable-http-proxy"
    images = ("quay.io/jupyterhub/configurable-http-proxy", "jupyterhub/configurable-http-proxy")

    def missing(self) -> str | None:
        if shutil.which("node") is None:
            return f"node is not installed: {install_hint('node')}"
        if not chp_command().is_file():
            return f"configurable-http-proxy {CHP_VERSION} is not installed: {install_hint('configurable-http-proxy')}"
        return None

    def launch(self, ctx: PodContext, container: Obj, env: dict[str, str]) -> Launch:
        mapped: list[str] = []
        argv = _argv(container) or ["configurable-http-proxy"]
        flags: dict[str, str] = {}
        others: list[str] = []
        for word in argv[1:]:
            if word.startswith("--") and "=" in word:
                key, value = word.split("=", 1)
                flags[key] = value
            else:
                others.append(word)
        for ip_flag in ("--ip", "--api-ip"):
            if flags.get(ip_flag, "") in ("", "0.0.0.0", "*", "::"):
                mapped.append(f"{ip_flag}={flags.get(ip_flag, '')} -> {ip_flag}=127.0.0.1")
                flags[ip_flag] = "127.0.0.1"
        for port_flag, default in (("--port", 8000), ("--api-port", 8001)):
            port = int(flags.get(port_flag, default))
            local = ctx.ports.get(port, port)
            mapped.append(f"{port_flag}={port} -> {port_flag}={local}")
            flags[port_flag] = str(local)
        for key, value in list(flags.items()):
            if key.endswith("-target"):
                flags[key] = ctx.map_addresses(value, mapped)
        out = [str(chp_command()), *(f"{k}={v}" for k, v in flags.items()), *others]
        return Launch(out, dict(env), Path(ctx.files.folder), mapped)


class SingleUser(Program):
    name = "jupyterhub-singleuser"
    images = ("quay.io/jupyterhub/k8s-singleuser-sample", "jupyterhub/k8s-singleuser-sample")

    @staticmethod
    def binary() -> Path:
        return Path(sys.executable).parent / "jupyterhub-singleuser"

    def missing(self) -> str | None:
        try:
            importlib.metadata.version("jupyterlab")
        except importlib.metadata.PackageNotFoundError:
            return f"jupyterlab is not installed in {sys.executable}: {install_hint('jupyterlab')}"
        return None if self.binary().is_file() else f"{self.binary()} is missing: {install_hint('jupyterhub')}"

    def launch(self, ctx: PodContext, container: Obj, env: dict[str, str]) -> Launch:
        mapped: list[str] = []
        argv = _argv(container) or ["jupyterhub-singleuser"]
        out = [str(self.binary()) if Path(argv[0]).name == "jupyterhub-singleuser" else argv[0], *argv[1:]]
        env = dict(env)
        if "JUPYTERHUB_SERVICE_URL" in env:
            env["JUPYTERHUB_SERVICE_URL"] = ctx.map_addresses(env["JUPYTERHUB_SERVICE_URL"], mapped)
        home = ctx.files.host_path("/home/jovyan")  # the image's user's home, where the PVC is mounted
        env["HOME"] = home
        mapped.append(f"/home/jovyan -> {home}")
        if os.geteuid() == 0:
            out.append("--allow-root")
            mapped.append("--allow-root added: the container runs as user 1000, this machine's process as root")
        return Launch(out, env, Path(home), mapped)


PROGRAMS: tuple[Program, ...] = (Hub(), Nginx(), ConfigurableHttpProxy(), SingleUser())


def program_for(image: str) -> Program | None:
    return next((program for program in PROGRAMS if program.matches(image)), None)


def missing_programs() -> dict[str, str]:
    """Every program that cannot run here, with how to install it (empty: all can run)."""
    return {program.name: why for program in PROGRAMS if (why := program.missing())}
