"""An exercise's folded answer that waits for the learner: with someone at the keyboard (``interactive``), the
answer cell does not do the exercise for them.

The cell that shows an exercise's commands notes what the exercise will change, as it is before the learner
starts (:func:`exercise`); the answer cell asks :meth:`Exercise.answer` what to do:

- headless (papermill, ``interactive=False``): do the exercise, as a learner would have, and show the result;
- interactive, and the object changed since (the learner did the exercise, or part of it): show how it is now,
  and change nothing, so a Run All never undoes or redoes the learner's own work;
- interactive, and nothing changed yet: say "not tried yet: do it, then run this cell", and change nothing,
  so a Run All leaves the exercise for the learner to do.

"Changed" is read from the API server: the object's resourceVersion (any write changes it; a delete and a new
create give another one), whether it exists, and the events about it (a claim made and deleted again leaves
its ``ProvisioningFailed`` events behind).

    >>> role = nb.exercise(conn, "role/hub", interactive)           # doctest: +SKIP   (before the exercise)
    >>> answer = role.answer()                                      # doctest: +SKIP   (in the answer cell)
    not tried yet: do it, then run this cell (role/hub has not changed since the exercise began)
    >>> answer.do, answer.show                                      # doctest: +SKIP
    (False, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..connect import Connection
from ..kubeapi import EVENTS
from .ownership import named
from .reads import kube

NOT_TRIED = "not tried yet: do it, then run this cell"


@dataclass(frozen=True)
class Answer:
    """What an answer cell does: ``do`` the exercise itself (headless only), ``show`` the result (headless, or
    once the learner tried); neither when the learner has not tried it yet."""

    do: bool
    show: bool


@dataclass(frozen=True)
class Exercise:
    """An object an exercise changes, as it was when the exercise began."""

    conn: Connection
    target: str  # KIND/NAME, as kubectl writes it: "role/hub", "service/hub", "pvc/scratch"
    interactive: bool
    version: str | None  # its resourceVersion then; None: it did not exist
    events: frozenset[str]  # the uids of the events about it then

    def tried(self) -> bool:
        """Whether the object changed since the exercise began (written, deleted, made, or new events about it)."""
        version, events = _state(self.conn, self.target)
        return version != self.version or bool(events - self.events)

    def answer(self) -> Answer:
        """What the answer cell should do now (see the module's docstring); says so when it waits."""
        if not self.interactive:
            return Answer(do=True, show=True)
        if self.tried():
            return Answer(do=False, show=True)
        print(f"{NOT_TRIED} ({self.target} has not changed since the exercise began)")
        return Answer(do=False, show=False)


def exercise(conn: Connection, target: str, interactive: bool) -> Exercise:
    """Note ``target`` (KIND/NAME) as it is now, before the learner does the exercise that changes it."""
    version, events = _state(conn, target)
    return Exercise(conn, target, interactive, version, events)


def _state(conn: Connection, target: str) -> tuple[str | None, frozenset[str]]:
    resource, name = named(target)
    found = kube(conn).get_or_none(resource.path(conn.namespace, name))
    about = kube(conn).get(EVENTS.path(conn.namespace),
                           fieldSelector=f"involvedObject.kind={resource.kind},involvedObject.name={name}")
    events = frozenset(event["metadata"]["uid"] for event in about.get("items", []))
    return (None if found is None else found["metadata"]["resourceVersion"]), events
