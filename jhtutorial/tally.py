"""One small hook for measuring: the watches and the live view say what they did, and nothing is kept
unless someone passes a tally in (the benchmarks in bench/ and the tests do).

    >>> tally = Tally()
    >>> reflector = Reflector(api, PODS, "jhub", tally=tally)   # doctest: +SKIP
    >>> dict(tally)                                               # doctest: +SKIP
    {'list': 1, 'event': 3, 'watch': 1}

What each reports: a Reflector ``list`` (per page), ``watch``, ``event``
(ADDED/MODIFIED/DELETED), ``bookmark``, ``expired`` (410 Gone), ``reconnect``
and ``malformed`` (a line that was not a watch event); a LiveView
``pod_event``, ``pod_event_change`` (an Event object about a pod), ``render``
and ``render_seconds``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

#: What the library calls: the name of what happened, and how much (1 unless it is a duration).
Observer = Callable[[str, float], None]


def ignore(what: str, amount: float = 1) -> None:
    """The default observer: measuring is off."""


class Tally(Counter):  # type: ignore[type-arg]  # Counter[str] of ints and float seconds
    """An observer that keeps the totals: ``tally["watch"]``."""

    def __call__(self, what: str, amount: float = 1) -> None:
        self[what] += amount
