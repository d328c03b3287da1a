"""What every program recipe shares: the image matcher, the pinned versions and where they are installed."""

from __future__ import annotations

import re
from pathlib import Path

from ... import paths

HUB_VERSIONS = {"jupyterhub": "5.5.0", "jupyterhub-kubespawner": "7.0.0"}  # what k8s-hub:4.4.0 carries
CHP_VERSION = "5.2.0"  # the version of the pinned configurable-http-proxy image


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
    """A recipe: which images it stands for, and what must be installed for them."""

    name = ""
    images: tuple[str, ...] = ()

    def matches(self, image: str) -> bool:
        return re.fullmatch(image_pattern(self.images), image) is not None

    def missing(self) -> str | None:
        """None when the program can run here, else which one is missing and how to install it."""
        return None
