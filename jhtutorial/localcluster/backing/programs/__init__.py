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

Each program runs in its pod's sandbox with the container's command, arguments
and environment unchanged (:mod:`..sandboxed_pod`); what its image would
bring (PATH, HOME, working folder, default command) is :mod:`..images`'.

Anything else (other images, or a program that is not installed) is not run:
the pod stays purely simulated, and :func:`missing_programs` says what to install.
"""

from __future__ import annotations

from .base import CHP_VERSION, HUB_VERSIONS, Program, chp_command, chp_folder, image_pattern, install_hint
from .chp import ConfigurableHttpProxy
from .hub import Hub
from .nginx import Nginx
from .singleuser import SingleUser

__all__ = ["CHP_VERSION", "HUB_VERSIONS", "PROGRAMS", "ConfigurableHttpProxy", "Hub", "Nginx", "Program",
           "SingleUser", "chp_command", "chp_folder", "image_pattern", "install_hint", "missing_programs",
           "program_for"]

PROGRAMS: tuple[Program, ...] = (Hub(), Nginx(), ConfigurableHttpProxy(), SingleUser())


def program_for(image: str) -> Program | None:
    return next((program for program in PROGRAMS if program.matches(image)), None)


def missing_programs() -> dict[str, str]:
    """Every program that cannot run here, with how to install it (empty: all can run)."""
    return {program.name: why for program in PROGRAMS if (why := program.missing())}
