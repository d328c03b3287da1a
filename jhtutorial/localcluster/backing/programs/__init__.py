"""One recipe per image: which program on this machine plays the container, and what it is told.

The tutorial's images and the programs that stand for them:

=====================================================  ===============================================
image                                                  program on this machine
=====================================================  ===============================================
``quay.io/jupyterhub/k8s-hub``                         JupyterHub 5.5.0 + KubeSpawner 7.0.0 (this Python)
``nginxinc/nginx-unprivileged``, ``nginx``             Debian's nginx (``apt-get install nginx-light``)
``quay.io/jupyterhub/configurable-http-proxy``         configurable-http-proxy 5.2.0 from npm, in the cache
``quay.io/jupyterhub/k8s-singleuser-sample``           ``jupyterhub-singleuser`` with JupyterLab (this Python)
=====================================================  ===============================================

Each program starts from the container as the API server holds it: its
command and arguments, its environment, its mounts (:mod:`.mounts`). Only
addresses and paths change, and each change is written down in
:attr:`Launch.mapped` (the supervisor puts them on the pod and in its folder):

- a port the container listens on becomes a free port on 127.0.0.1 (every
  backed pod shares this machine's one loopback, so two proxies cannot both
  have port 8000);
- a Service address (``hub:8081``, ``proxy-api:8001``) becomes the local port
  where the supervisor forwards that Service to its backed pod, as kube-proxy
  would;
- a path inside a mount becomes the pod's folder on this machine.

Anything else (other images, or a program that is not installed) is not run:
the pod stays purely simulated, and :func:`missing_programs` says what to install.
"""

from __future__ import annotations

from .base import (CHP_VERSION, HUB_VERSIONS, Launch, PodContext, Program, chp_command, chp_folder, image_pattern,
                   install_hint)
from .chp import ConfigurableHttpProxy
from .hub import Hub
from .nginx import Nginx
from .singleuser import SingleUser

__all__ = ["CHP_VERSION", "HUB_VERSIONS", "PROGRAMS", "ConfigurableHttpProxy", "Hub", "Launch", "Nginx",
           "PodContext", "Program", "SingleUser", "chp_command", "chp_folder", "image_pattern", "install_hint",
           "missing_programs", "program_for"]

PROGRAMS: tuple[Program, ...] = (Hub(), Nginx(), ConfigurableHttpProxy(), SingleUser())


def program_for(image: str) -> Program | None:
    return next((program for program in PROGRAMS if program.matches(image)), None)


def missing_programs() -> dict[str, str]:
    """Every program that cannot run here, with how to install it (empty: all can run)."""
    return {program.name: why for program in PROGRAMS if (why := program.missing())}
