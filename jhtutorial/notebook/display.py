"""Showing files and commands in a notebook: a manifest as it is on disk, the kubectl line of a step.

    >>> nb.show_manifest("svc-hub.yaml")            # doctest: +SKIP   (the file, syntax-highlighted)
    >>> nb.show_kubectl("kubectl get pods -n alice")  # doctest: +SKIP
    $ kubectl get pods -n alice
"""

from __future__ import annotations

from .. import manifests
from ..connect import Connection
from ..steps import MANIFEST_FOLDER, WHERE_TO_TYPE, get_step


def _display(markdown: str, plain: str) -> None:
    from IPython.display import display  # only in a kernel: the package imports without IPython

    display({"text/markdown": markdown, "text/plain": plain}, raw=True)


def show_manifest(*names: str) -> None:
    """Show manifest files as they are in manifests/ (syntax-highlighted in JupyterLab)."""
    for name in names:
        text = manifests.manifest_path(name).read_text().rstrip("\n")
        _display(f"**`manifests/{name}`**\n\n```yaml\n{text}\n```", f"# manifests/{name}\n{text}")


def show_kubectl(*commands: str) -> None:
    """Show the command(s) a learner would type in a terminal, instead of running this cell.

    Commands that name files in manifests/ get a first line saying where to type them: the folder
    holding manifests/ (the working copy `jhtutorial lab` opens, where its terminals start)."""
    where = [f"# {WHERE_TO_TYPE}"] if any(f"{MANIFEST_FOLDER}/" in command for command in commands) else []
    text = "\n".join([*where, *(f"$ {command}" for command in commands)])
    _display(f"```console\n{text}\n```", text)


def show_step_command(step: str | int, conn: Connection) -> None:
    """Show the kubectl line that applies a step in the connection's namespace."""
    show_kubectl(get_step(step).kubectl(conn.namespace))
