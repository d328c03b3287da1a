"""What every program recipe shares: the context it is given, the launch it returns, the image matcher,
the pinned versions and where they are installed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import paths
from ..mounts import PodFiles

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


def argv_of(container: Obj) -> list[str]:
    # these images' entrypoints (tini) only run what they are given
    return [*(container.get("command") or []), *(container.get("args") or [])]
