"""The proxy pod's nginx container: Debian's nginx."""

from __future__ import annotations

import shutil
from pathlib import Path

from .base import Program, install_hint


class Nginx(Program):
    name = "nginx"
    images = ("nginxinc/nginx-unprivileged", "nginx", "docker.io/library/nginx", "docker.io/nginxinc/nginx-unprivileged")

    @staticmethod
    def binary() -> str | None:
        return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)

    def missing(self) -> str | None:
        return None if self.binary() else f"nginx is not installed: {install_hint('nginx')}"
