"""The proxy pod's configurable-http-proxy container: the pinned version from npm, in the cache."""

from __future__ import annotations

import shutil
from .base import CHP_VERSION, Program, chp_command, install_hint


class ConfigurableHttpProxy(Program):
    name = "configurable-http-proxy"
    images = ("quay.io/jupyterhub/configurable-http-proxy", "jupyterhub/configurable-http-proxy")

    def missing(self) -> str | None:
        if shutil.which("node") is None:
            return f"node is not installed: {install_hint('node')}"
        if not chp_command().is_file():
            return f"configurable-http-proxy {CHP_VERSION} is not installed: {install_hint('configurable-http-proxy')}"
        return None
