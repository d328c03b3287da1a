"""The proxy pod's configurable-http-proxy container: the pinned version from npm, in the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

from .base import CHP_VERSION, Launch, Obj, PodContext, Program, argv_of, chp_command, install_hint


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
        argv = argv_of(container) or ["configurable-http-proxy"]
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
