"""A user pod's program: jupyterhub-singleuser with JupyterLab, from this Python."""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

from .base import Launch, Obj, PodContext, Program, argv_of, install_hint


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
        argv = argv_of(container) or ["jupyterhub-singleuser"]
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
