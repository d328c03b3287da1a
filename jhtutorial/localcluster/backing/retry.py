"""Waiting out an API server that does not answer: each failure doubles the wait before the next try.

    >>> backoff = Backoff()
    >>> backoff.due()
    True
    >>> backoff.failed()          # the first failure in a row
    1
    >>> backoff.due()             # not before FIRST_SECONDS have passed
    False
    >>> backoff.succeeded()       # True: it had failed before, so the caller may say the server is back
    True

The kubelet backs off the same way (doubling, capped), so an outage costs a few
requests, not one every loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

FIRST_SECONDS = 0.5
CAP_SECONDS = 8.0


@dataclass
class Backoff:
    failures: int = 0
    next_try: float = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.next_try

    def failed(self) -> int:
        """Note a failure; returns how many came in a row."""
        self.failures += 1
        self.next_try = time.monotonic() + min(CAP_SECONDS, FIRST_SECONDS * 2 ** (self.failures - 1))
        return self.failures

    def succeeded(self) -> bool:
        """Note a success; True if failures came before it."""
        had_failed = self.failures > 0
        self.failures, self.next_try = 0, 0.0
        return had_failed
