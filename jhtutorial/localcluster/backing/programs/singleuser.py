"""A user pod's program: jupyterhub-singleuser with JupyterLab, from this Python."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from .base import Program, install_hint


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
