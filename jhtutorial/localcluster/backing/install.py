"""Install the programs that back the local cluster's pods, where they are missing.

    $ python -m jhtutorial.localcluster.backing.install            # what `make system-deps` runs
    $ python -m jhtutorial.localcluster.backing.install --strict   # exit 1 if something stays missing

- configurable-http-proxy (the version of the pinned proxy image) from npm into the
  cache (``~/.cache/jhtutorial/chp-VERSION``), when Node.js and npm are installed;
- Debian's nginx (``nginx-light``), only as root on a machine with apt-get;
- the programs that make pod sandboxes and their networks (util-linux, iproute2, nftables, and uidmap for
  an owner who is not root), the same way.

What cannot be installed is said, with the command that would; the pods that need
it then stay purely simulated (the notebooks say so and still pass).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from .programs import CHP_VERSION, chp_command, chp_folder, install_hint, missing_programs
from .sandbox import REQUIRED_PROGRAMS
from .user_namespace import OWNER_PROGRAMS


def install_chp() -> str | None:
    """None when configurable-http-proxy is in the cache (now or already), else why not."""
    if chp_command().is_file():
        return None
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return f"Node.js/npm is missing: {install_hint('node')}"
    print(f"installing configurable-http-proxy {CHP_VERSION} into {chp_folder()}", flush=True)
    result = subprocess.run([npm, "install", "--prefix", str(chp_folder()), "--no-audit", "--no-fund",
                             "--loglevel=error", f"configurable-http-proxy@{CHP_VERSION}"], check=False)
    return None if result.returncode == 0 and chp_command().is_file() else "npm install failed (see above)"


def install_nginx() -> str | None:
    if shutil.which("nginx") or os.path.isfile("/usr/sbin/nginx"):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return install_hint("nginx")
    return _apt_install(["nginx-light"], "it backs the proxy pod on the local cluster")


def install_sandbox_tools() -> str | None:
    """Also the tools that give the machine's other accounts sandboxes of their own (user_namespace.py)."""
    wanted = {**REQUIRED_PROGRAMS, **OWNER_PROGRAMS}
    missing = sorted({package for program, package in wanted.items() if shutil.which(program) is None})
    if not missing:
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"install {' '.join(missing)} (Debian/Ubuntu: sudo apt-get install {' '.join(missing)})"
    return _apt_install(missing, "they make the sandboxes and networks of backed pods")


def _apt_install(packages: list[str], why: str) -> str | None:
    print(f"installing {', '.join(packages)} ({why})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        if subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL).returncode != 0:
            return f"`{' '.join(command)}` failed"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a program stays missing")
    args = parser.parse_args(argv)
    for name, step in (("nginx", install_nginx), ("configurable-http-proxy", install_chp),
                       ("sandbox tools", install_sandbox_tools)):
        problem = step()
        if problem:
            print(f"{name} not installed: {problem}", file=sys.stderr)
    missing = missing_programs()
    for name, why in missing.items():
        print(f"pods needing {name} stay purely simulated: {why}", file=sys.stderr)
    return 1 if missing and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
