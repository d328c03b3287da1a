"""Notebook 07's side of the hub: the login in one call, and the hub's own log.

    >>> result = nb.log_in(conn, access, "admin", "admin", interactive=True, wait=120)   # doctest: +SKIP
    waiting for your login at http://127.0.0.1:8080/hub/login: 117 s left

With someone at the keyboard (``interactive``) the learner logs in, in their browser: the cell follows the spawn
and shows a countdown meanwhile; it never logs in for them (their browser would then be a second session). When
the time is up it says how to go on (log in, then run the cell again; or ``jhtutorial login`` in a terminal).
Headless it logs in itself, as a browser would.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..access import Access
from ..connect import Connection
from ..errors import LoginFailed
from ..kubeapi import PODS
from ..login import LoginResult, follow_login, login
from ..waits import wait_deployment_available
from .reads import PART_OF, kube
from .replacement import rollout_restart


def log_in(conn: Connection, access: Access, user: str, password: str, *, interactive: bool, wait: float,
           timeout: float) -> LoginResult | None:
    """The learner's login followed (interactive), or the helper's own (headless); None when nobody logged in."""
    if access.url is None:
        print("Nothing can answer here, so nobody can log in:", *access.notes, sep="\n  ")
        return None
    if interactive:
        print(f"open {access.url}/hub/login in a second browser tab and log in as {user} / {password}\n")
        with Countdown(f"waiting for your login at {access.url}/hub/login", wait):
            seen = follow_login(access.url, user, conn=conn, timeout=wait, progress=print)
        if seen.server_answered:
            return seen
        print(f"\n{seen.server_answer}. Log in at {access.url}/hub/login, then run this cell again; or type\n"
              f"  jhtutorial login --user {user} -n {conn.namespace}\nin a terminal (it logs in as a browser would).")
        return None
    try:
        return login(user, password, conn=conn, url=access.url, progress=print, timeout=timeout)
    except LoginFailed as failed:
        if not getattr(getattr(failed, "result", None), "route_missing", False):
            raise
        # The proxy was replaced (notebook 06 does that) after the user's server started: it lost its routes.
        # A new hub gives them back as it starts.
        print(f"\n{failed.fix}\n")
        rollout_restart(conn, "hub")
        wait_deployment_available("hub", conn=conn, timeout=timeout)
        return login(user, password, conn=conn, url=access.url, progress=print, timeout=timeout)


class Countdown:
    """A line that counts down the seconds left, updated in place in JupyterLab (a display handle), else a
    printed line every 30 s."""

    def __init__(self, what: str, seconds: float) -> None:
        self.what, self.seconds = what, seconds
        self._stop = threading.Event()
        self._handle: Any = None
        self._thread = threading.Thread(target=self._run, name="countdown", daemon=True)

    def __enter__(self) -> Countdown:
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self._handle = display(self._text(self.seconds), display_id=True)
        except ImportError:
            self._handle = None
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._handle is not None:
            self._handle.update(f"{self.what}: done after {time.monotonic() - self._started:.0f} s")

    def _text(self, left: float) -> str:
        return f"{self.what}: {left:.0f} s left"

    def _run(self) -> None:
        every = 1.0 if self._handle is not None else 30.0
        while not self._stop.wait(every):
            left = max(0.0, self.seconds - (time.monotonic() - self._started))
            if self._handle is not None:
                self._handle.update(self._text(left))
            else:
                print(self._text(left), flush=True)


def hub_log(conn: Connection, *words: str, tail: int = 400, last: int | None = None, width: int = 260,
            settle: float = 5.0) -> str:
    """``kubectl logs deploy/hub --tail=TAIL | grep -E 'WORD|WORD' | tail -n LAST``: the hub's log lines that
    name any of ``words`` (all of the tail when none are given), each once, cut at ``width`` characters (a
    traceback repeats the API server's answer; the first ``width`` characters say what it refused).

    A line reaches the log a moment after the hub writes it (a node's copy of a container's output lags a
    little, and on a busy machine more): until every word has a line, it asks again for up to ``settle`` s.
    A caller that knows no such line can come (nobody logged in) passes ``settle=0``."""
    # Why the whole settle when a word never comes: nothing seen from here tells "not written" from "written, not
    # copied yet". A quiet log proves nothing (a starved copy stays quiet, then delivers in a burst), the hub's
    # own timestamps only date what arrived, and a marker line the hub writes on request (so that every line
    # before it is known to be in) would need a request to the hub, printed into the log the learner reads.
    # What is known without asking: no hub pod runs (returned at once, below).
    deadline = time.monotonic() + settle
    while True:
        lines = _hub_log_lines(conn, words, tail, width)
        if lines is None or all(any(word in line for line in lines) for word in words) \
                or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # no event says that a line was written
    if lines is None:
        return f"no hub pod runs in namespace {conn.namespace}"
    lines = lines[-last:] if last else lines
    return "\n".join(lines) or f"(no line of the hub's last {tail} names {', '.join(words)})"


def _hub_log_lines(conn: Connection, words: tuple[str, ...], tail: int, width: int) -> list[str] | None:
    """The matching lines of the running hub pod's log, each once (None: no hub pod runs)."""
    hubs = [pod for pod in kube(conn).get(PODS.path(conn.namespace),
                                          labelSelector=f"{PART_OF},app.kubernetes.io/component=hub")["items"]
            if pod.get("status", {}).get("phase") == "Running"]
    if not hubs:
        return None
    response = kube(conn).open("GET", PODS.path(conn.namespace, hubs[0]["metadata"]["name"], "log"),
                               query={"tailLines": tail})
    try:
        text = response.data.decode(errors="replace")
    finally:
        response.release_conn()
    return list(dict.fromkeys(line if len(line) <= width else line[:width] + " ..."
                              for line in text.splitlines() if not words or any(word in line for word in words)))
