"""A stand-in for the learner at notebook 07's login, for runs where nobody sits at a browser.

Run All in JupyterLab leaves the login to the learner: 07's login cell prints the address, counts down and
follows whatever login happens. The committed outputs come from such a run (``python -m jhtutorial.workbook
refresh``), and so does the nbval check of them; with nobody there, both would show a countdown that ran out
instead of the payoff. While the login cell runs, a :class:`StandInLearner` does what the learner would: it
waits for the way in that 07 opened, then logs in as a browser does (the same requests as ``jhtutorial login``).
The notebook itself is run unchanged, as Run All runs it, and follows that login as it follows a learner's.

    with StandInLearner("jhtutorial") as learner:
        ...                           # run 07; call learner.start() as its login cell starts
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from ..connect import connect
from ..errors import TutorialError
from ..wayin import recorded

LOGIN_CALL = "nb.log_in("  # what 07's login cell calls, and no other cell
#: after the cell starts: time for it to print the address and begin following, as a learner reads before typing
READING_SECONDS = 3.0
WAY_IN_SECONDS = 60.0  # 07 opens its way in two cells before the login cell


def is_login_cell(source: str) -> bool:
    """Whether a cell's source is 07's login cell (where a learner logs in)."""
    return LOGIN_CALL in source


class StandInLearner:
    """Logs in once, in a thread, when :meth:`start` is called; what happened is in :attr:`outcome`."""

    def __init__(self, namespace: str, user: str = "admin", password: str = "admin", *, timeout: float = 120.0):
        self.namespace, self.user, self.password, self.timeout = namespace, user, password, timeout
        self.outcome = "not started"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._log_in, name="stand-in-learner", daemon=True)
            self._thread.start()

    def __enter__(self) -> StandInLearner:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout)

    def _log_in(self) -> None:
        from ..login import login

        if self._stop.wait(READING_SECONDS):
            return
        conn = connect(namespace=self.namespace, create_namespace=False)
        try:
            deadline = time.monotonic() + WAY_IN_SECONDS
            way = recorded(conn)
            while way is None and time.monotonic() < deadline and not self._stop.wait(0.5):
                way = recorded(conn)  # written by 07's way-in cell; nothing to wait on but the file
            if way is None:
                self.outcome = f"no way in was recorded for namespace {self.namespace} within {WAY_IN_SECONDS:.0f} s"
                return
            result = login(self.user, self.password, conn=conn, url=way.url, timeout=self.timeout)
            self.outcome = f"logged in as {self.user}: {result.server_answer}"
        except TutorialError as err:
            self.outcome = f"the login failed: {err}"
        finally:
            conn.close()
