"""The hub pod's program: JupyterHub with KubeSpawner, from this Python."""

from __future__ import annotations

import importlib.metadata
import sys

from .base import HUB_VERSIONS, Program, install_hint


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
