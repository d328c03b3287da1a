"""The lines of a check cell: ``ok  what``, ``--  what: why``, or an AssertionError saying what is wrong.

    >>> nb.check(True, "the hub may read its ConfigMap")
    ok  the hub may read its ConfigMap
    >>> nb.skip("the hub answers", "no container runs on a simulated node")
    --  the hub answers: no container runs on a simulated node
"""

from __future__ import annotations

from typing import Any

from ..connect import Connection
from ..steps import Step, get_step


def check(condition: Any, what: str, detail: str = "") -> None:
    """One line of a check cell: prints ``ok  what``, or raises AssertionError saying what is wrong."""
    if not condition:
        raise AssertionError(f"{what}: NO" + (f" ({detail})" if detail else ""))
    print(f"ok  {what}")


def skip(what: str, why: str) -> None:
    """One line of a check cell for something not checked, and why: ``--  what: why``."""
    print(f"--  {what}: {why}")


def check_step(conn: Connection, step: str | int | Step) -> None:
    """Assert that a step is done, with the step's own per-object lines as the explanation."""
    status = get_step(step).check(conn)
    print(status)
    if not status.done:
        raise AssertionError(f"step {status.step.key} is not done:\n{status}")
