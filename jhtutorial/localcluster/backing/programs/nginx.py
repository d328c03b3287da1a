"""The proxy pod's nginx container: Debian's nginx with the pod's configuration."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .base import Launch, Obj, PodContext, Program, argv_of, install_hint


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
        argv = argv_of(container) or ["nginx", "-g", "daemon off;"]
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
