"""The first cell of every notebook: connect, say where we are, and stop if an earlier step is not done.

    >>> conn = nb.begin("05-services", namespace="alice")    # doctest: +SKIP
    connected to the local simulated cluster (kwok), Kubernetes v1.36.3
      context:    kwok-jhtutorial
      namespace:  alice
    earlier steps: 01-rbac done, 02-configmaps done, 03-secret done, 04-pvc done
"""

from __future__ import annotations

import sys
from typing import Any

from ..connect import CLUSTER_KINDS, Connection, connect, require_namespace, resolve_context, resolve_namespace
from ..errors import StepOutOfOrder, TutorialError
from ..architecture import you_are_here
from ..steps import STEPS, StepStatus, and_join, steps_named, up_command


def begin(notebook: str, *, context: str | None = None, namespace: str | None = None) -> Connection:
    """Connect, print where we are, and stop, naming every earlier step that is not done.

    ``notebook`` is the notebook's key ("05-services"); the steps before it must be done. Only the first
    notebook (00) creates the namespace; the others stop with NamespaceNotFound if it does not exist, so a
    mistyped ``namespace`` parameter is an error, not a new, empty namespace.
    """
    _install_error_display()
    context = resolve_context(context)
    first = notebook.startswith("00")
    conn = connect(context, resolve_namespace(context, namespace), create_namespace=first)
    if not first:
        require_namespace(conn, fix="check the `namespace` parameter (or run 00 first, which creates it)")
    print(f"connected to {cluster_name(conn)}, Kubernetes {conn.server_version}")
    print(f"  context:    {conn.context or '(in-cluster service account)'}")
    print(f"  namespace:  {conn.namespace}{' (created)' if conn.namespace_created else ''}")
    done = require_steps(conn, notebook)
    if done:
        print("earlier steps: " + ", ".join(f"{status.step.key} done" for status in done))
    _show_where(notebook)
    return conn


def _show_where(notebook: str) -> None:
    """In a notebook, draw the architecture with this notebook's part highlighted (SVG; text where SVG is not
    shown). Outside a kernel nothing is drawn: the connection lines above say enough."""
    ipython = sys.modules.get("IPython")
    if ipython is None or ipython.get_ipython() is None:  # type: ignore[attr-defined]
        return
    from IPython.display import display

    display(you_are_here(notebook))


def require_steps(conn: Connection, notebook: str) -> list[StepStatus]:
    """Check every step before ``notebook``; raise StepOutOfOrder naming every one that is not done."""
    number = int(notebook[:2])
    statuses = [step.check(conn) for step in STEPS
                if step.number < number and step.files and not notebook.startswith("08")]
    behind = [status for status in statuses if not status.done]
    if behind:
        keys = [status.step.key for status in behind]
        raise StepOutOfOrder(
            f"notebook {notebook} needs {steps_named(keys)} first, and in namespace {conn.namespace} "
            f"{'it is' if len(keys) == 1 else 'they are'} not done:\n"
            + "\n".join(f"    {line}" for status in behind for line in str(status).splitlines()),
            fix=f"run notebook{'s' if len(keys) > 1 else ''} {and_join(keys)} first"
            + (", in order" if len(keys) > 1 else "")
            + f" (or all at once from a terminal: `{up_command(behind[-1].step.number, conn.namespace)}`), "
            "then run this notebook again",
        )
    return statuses


def simulated(conn: Connection) -> bool:
    """True on the local cluster, where the control plane is real and no container ever runs."""
    return conn.cluster_kind == "local"


def cluster_name(conn: Connection) -> str:
    """How the notebooks name the kind of cluster: "the local simulated cluster (kwok)", "minikube", ..."""
    return CLUSTER_KINDS[conn.cluster_kind]


def _install_error_display() -> None:
    """In a notebook, show a TutorialError as its message and fix instead of a long traceback.

    The cell still fails (papermill and nbval still stop there)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None  # type: ignore[attr-defined]
    if shell is None:
        return

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
        stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
        shell._showtraceback(etype, value, stb)  # the error output papermill and nbval read
        return stb

    shell.set_custom_exc((TutorialError,), handler)
