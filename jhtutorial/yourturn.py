"""The folded answer under a "Your turn" cell: what the learner was asked to type, done for a headless run.

A notebook shows the kubectl command of a step (``nb.show_step_command``) and asks the learner to type it in
a terminal; the folded cell after it calls :func:`apply_step`, which does the same when nobody typed it
(papermill, or a learner who skips the terminal) and changes nothing when somebody did. The check cell
that follows verifies the cluster's state, however it got there.

    >>> nb.apply_step(conn, "services")          # doctest: +SKIP   (nobody typed it: applies)
    step 05 (services) applied to namespace alice
      Service/hub           created
      ...
    >>> nb.apply_step(conn, "services")          # doctest: +SKIP   (the learner did)
    step 05-services: its objects are already in namespace alice (you applied them, or an earlier run did): nothing to do
    >>> nb.wait_step(conn, "deployments")        # doctest: +SKIP   (kubectl rollout status deployment/hub ...)
    Deployment hub available: 1/1 replicas available
    Deployment proxy available: 1/1 replicas available
"""

from __future__ import annotations

from .apply import apply
from .connect import Connection
from .steps import Step, get_step


def apply_step(conn: Connection, step: str | int | Step) -> None:
    """The same as the ``kubectl apply`` of ``step``, unless its objects are already there.

    If every object of the step exists (the learner typed the command), nothing is sent and it says so: a
    second apply under another field manager would take over the fields the learner's ``kubectl`` owns.
    Otherwise it applies the step and prints what changed, without the command: the notebook showed it
    just above (each apply prints its kubectl line once).
    """
    step = get_step(step)
    if not step.missing(conn):
        print(f"step {step.key}: its objects are already in namespace {conn.namespace} (you applied them, or an "
              "earlier run did): nothing to do")
        return
    print("\n".join(apply(step, conn=conn).changes()))


def wait_step(conn: Connection, step: str | int | Step, *, timeout: float = 180) -> None:
    """Wait (on a watch) until ``step`` is done; print one line per object waited for, as
    ``kubectl rollout status deployment/NAME`` or ``kubectl wait pvc/NAME --for=...`` would."""
    for waited in get_step(step).wait(conn, timeout=timeout):
        print(f"{waited.what}: {waited.summary}")
