"""What each image gives its container in a sandbox: PATH, HOME, working folder, default command, files.

A container's command runs unchanged inside its pod's sandbox, whose root is the
machine's own file system (there is no image). The few things an image would
bring are given here, per program (:mod:`.programs`): the folder of the
Python environment that holds JupyterHub and JupyterLab first on PATH (the
images put them on theirs), configurable-http-proxy's folder bound read-only at
``/opt/configurable-http-proxy`` (it is installed in the cache, under the
owner's home, which sandboxes hide), the Python installation and environment
bound read-only at their own paths (pyenv puts the installation under the
owner's home too), the images' HOME and WORKDIR.

:func:`environment_problem` says why a program run as the pod's user could not
read the Python environment it runs from, with what to do.
"""

from __future__ import annotations

import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from .programs import ConfigurableHttpProxy, Hub, Nginx, Program, SingleUser, chp_folder
from .sandbox import SANDBOX_PATH, Volume

CHP_INSIDE = "/opt/configurable-http-proxy"


@dataclass(frozen=True)
class Image:
    """What the image of a container would set (its ENV PATH and HOME, WORKDIR, CMD) and bring."""

    path: str
    home: str
    workdir: str
    command: tuple[str, ...]
    volumes: tuple[Volume, ...] = ()


def python_bin() -> str:
    """The folder of this Python environment's programs (jupyterhub, jupyterhub-singleuser)."""
    return str(Path(sys.executable).parent)


def python_folders() -> tuple[Path, ...]:
    """The Python installation and the environment (venv) the hub and the user servers run from."""
    return tuple(dict.fromkeys(Path(p).absolute() for p in (sys.base_prefix, sys.prefix)))


def python_volumes() -> tuple[Volume, ...]:
    """Both bound read-only at their own paths: a folder that sandboxes hide (an installation under the
    owner's home, as pyenv makes it) is then still there inside, and only it."""
    return tuple(Volume(folder, str(folder), read_only=True) for folder in python_folders())


def image_for(program: Program) -> Image:
    if isinstance(program, Hub):
        return Image(f"{python_bin()}:{SANDBOX_PATH}", "/home/jovyan", "/srv/jupyterhub", ("jupyterhub",),
                     python_volumes())
    if isinstance(program, SingleUser):
        return Image(f"{python_bin()}:{SANDBOX_PATH}", "/home/jovyan", "/home/jovyan", ("jupyterhub-singleuser",),
                     python_volumes())
    if isinstance(program, ConfigurableHttpProxy):
        return Image(f"{CHP_INSIDE}/node_modules/.bin:{SANDBOX_PATH}", "/", "/", ("configurable-http-proxy",),
                     (Volume(chp_folder(), CHP_INSIDE, read_only=True),))
    if isinstance(program, Nginx):
        return Image(SANDBOX_PATH, "/", "/", ("nginx", "-g", "daemon off;"))
    raise ValueError(f"no image facts for program {program.name}")


def environment_problem(hidden: tuple[Path, ...]) -> str | None:
    """Why a pod's user could not run this Python inside a sandbox (None: it can).

    The hub and the user servers run from it as uid 1000. Its folders are bound at their own
    paths; inside a hidden folder the folders above them are made for the sandbox, enterable
    by all; elsewhere they are the machine's, and each must let everyone through.
    """
    for folder in python_folders():
        for above in folder.parents:
            if any(above.is_relative_to(h) for h in hidden):
                continue
            if not above.stat().st_mode & stat.S_IXOTH:
                return (f"{above} cannot be entered by other users (mode {stat.filemode(above.stat().st_mode)}), "
                        f"so the pods' users (uid 1000) cannot run the Python in {folder}: `chmod o+x {above}`, "
                        "or put the project in a folder everyone may enter")
        if not folder.stat().st_mode & stat.S_IROTH:
            return (f"{folder} cannot be read by other users, so the pods' users (uid 1000) cannot run the Python "
                    f"in it: `chmod -R o+rX {folder}`")
    return None
