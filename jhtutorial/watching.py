"""List-then-watch: follow one kind of object with two requests, not a polling loop.

This is the building block under every wait and under the live pod view. It
does what ``kubectl get pods --watch`` does, and what a controller's reflector
does, in this order:

1. LIST the objects once; the answer carries a ``resourceVersion``, a position
   in the cluster's history;
2. WATCH from that position: the server streams every later change as one JSON
   line (``ADDED``, ``MODIFIED``, ``DELETED``), plus ``BOOKMARK`` lines that only
   move the position forward on a quiet stream;
3. when the stream ends (the server's ``timeoutSeconds``, a restarted API
   server, a dropped connection) WATCH again from the last position seen, so no
   change is missed;
4. when the server answers ``410 Gone`` (the position fell out of its history
   window), LIST again and report the difference to what was known as events;
5. a line that is not a watch event (a broken proxy, a cut-off write) is logged
   (logger ``jhtutorial.watching``) and handled like 4: a change it may have
   carried is not lost, and the view or wait reading the events goes on.

    >>> pods = Reflector(api_client, PODS, namespace="jhub")     # doctest: +SKIP
    >>> for event_type, pod in pods.events(timeout=60):            # doctest: +SKIP
    ...     print(event_type, pod["metadata"].get("name"), pod.get("status", {}).get("phase"))
    ADDED hub-5d9f7c7b8-x2x9q Pending
    SYNCED None None
    MODIFIED hub-5d9f7c7b8-x2x9q Running

The kubectl equivalent: ``kubectl get pods -n jhub --watch``.

Another thread may call :meth:`Reflector.stop` at any time; the generator then
returns promptly even while blocked on a quiet stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any, NamedTuple

import urllib3
from kubernetes.client import ApiClient

from .errors import ClusterUnreachable, KubeApiError
from .kubeapi import CONNECTION_ERRORS, KubeApi, Resource, raise_for_status
from .tally import Observer, ignore

# The server ends a watch after this many seconds; we then watch again from the
# last resourceVersion. Long enough that a wait of a few minutes costs one watch
# request; short enough that a silently dead connection is noticed.
WATCH_SECONDS = 300
# Extra seconds the client waits for a byte beyond the server's timeoutSeconds
# before it decides the connection died without a FIN.
READ_GRACE = 15.0
CONNECT_TIMEOUT = 5.0
# Reconnect backoff after a failure (server down, 5xx, 429): doubles up to the cap.
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 2.0
LIST_PAGE_SIZE = 500

log = logging.getLogger(__name__)


class Event(NamedTuple):
    """One change: ``type`` is ADDED, MODIFIED, DELETED or SYNCED (or BOOKMARK, when asked for).

    SYNCED follows every (re)list: at that moment :attr:`Reflector.cache`
    holds the complete, current set of objects. Its ``object`` is the list's
    header (``{"kind": "PodList", "metadata": {"resourceVersion": ...}}``), not
    an object of the watched kind.
    """

    type: str
    object: dict[str, Any]


class _Expired(Exception):
    """The server no longer has our resourceVersion in its history: relist."""


class _Malformed(Exception):
    """A line of the stream was not a watch event: relist, as after 410 Gone."""


class _StreamBroken(Exception):
    """The server ended or broke the stream in a way worth retrying after a pause."""


def object_key(obj: dict[str, Any]) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


class Reflector:
    """Keep a local copy of one kind of object current, and report each change.

    Args:
        api_client: the official client's ApiClient (``connect().api``).
        resource: which kind, e.g. ``kubeapi.PODS``.
        namespace: one namespace, or None for all namespaces (or a cluster-scoped kind).
        label_selector / field_selector: as for ``kubectl get -l`` / ``--field-selector``.
        resource_version: resume from this position instead of listing first
            (``kubectl get --watch-only --resource-version=...``).
        watch_seconds: the server-side timeout of each watch request.
        yield_bookmarks: also yield the BOOKMARK events (an object holding only
            metadata.resourceVersion); by default they only move the position.
        tally: told each list, watch, event, bookmark, relist and reconnect (see :mod:`jhtutorial.tally`);
            by default nothing is counted.

    Attributes worth reading: :attr:`cache` (``namespace/name`` -> object),
    :attr:`resource_version`, :attr:`requests` (HTTP requests sent, counted on
    the client), :attr:`timed_out`.
    """

    def __init__(
        self,
        api_client: ApiClient,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        watch_seconds: int = WATCH_SECONDS,
        yield_bookmarks: bool = False,
        tally: Observer | None = None,
    ) -> None:
        self.api = KubeApi(api_client)
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resource_version = resource_version
        self.watch_seconds = max(1, int(watch_seconds))
        self.yield_bookmarks = yield_bookmarks
        self.cache: dict[str, dict[str, Any]] = {}
        self._tally = ignore if tally is None else tally  # not `or`: an empty Tally is falsy
        self.timed_out = False
        self._lines_read = 0
        self._stop = threading.Event()
        self._response_lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None

    # --- public -------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """HTTP requests this reflector has sent so far (lists, pages and watches)."""
        return self.api.requests

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self, timeout: float | None = None) -> Generator[Event, None, None]:
        """Yield changes until :meth:`stop` is called or ``timeout`` seconds pass.

        Calling it again later continues from where the last call ended (same
        cache, same resourceVersion). Raises Forbidden/KubeApiError for answers
        that retrying cannot fix (no permission, unknown kind).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self.timed_out = False
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                self.timed_out = True
                return
            try:
                if self.resource_version is None:
                    yield from self._relist(deadline)
                if self._stop.is_set():  # stop() came while the list was being read
                    return
                opened, lines_before = time.monotonic(), self._lines_read
                yield from self._watch(deadline)
                ended = time.monotonic()
                if (self._lines_read == lines_before and ended - opened < 1.0 and not self._stop.is_set()
                        and (deadline is None or ended < deadline)):
                    # ended at once with nothing in it (a proxy cutting watches?): do not spin
                    raise _StreamBroken("the watch ended immediately")
                backoff = BACKOFF_FIRST  # a stream that ended normally: reconnect at once
            except _Expired:
                self._tally("expired")
                self.resource_version = None  # relist on the next turn, right away
            except (ClusterUnreachable, _StreamBroken, _Malformed) as failure:
                if self._stop.is_set():
                    return
                if isinstance(failure, _Malformed):
                    self._tally("malformed")
                    self.resource_version = None  # the line may have held a change: relist, which reports it
                else:
                    self._tally("reconnect")
                # Jitter keeps many watchers from reconnecting in lockstep after an outage.
                pause = backoff * random.uniform(0.8, 1.2)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - time.monotonic()))
                self._stop.wait(pause)
                backoff = min(backoff * 2, BACKOFF_CAP)

    def stop(self) -> None:
        """End :meth:`events` soon; safe to call from any thread, any number of times.

        Stopping is final: a stopped reflector yields nothing more (make a new one to watch again).
        """
        self._stop.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            # SHUT_RD wakes the thread blocked in recv() on this socket at once; if the
            # response is already closed or released, the reader sees the stop flag instead.
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                response.shutdown()

    # --- list -----------------------------------------------------------------------

    def _relist(self, deadline: float | None) -> Iterator[Event]:
        fresh: dict[str, dict[str, Any]] = {}
        continue_token: str | None = None
        list_version = ""
        while True:
            query: dict[str, Any] = {
                "labelSelector": self.label_selector,
                "fieldSelector": self.field_selector,
                "limit": LIST_PAGE_SIZE,
                "continue": continue_token,
            }
            self._tally("list")
            try:
                page = self.api.call("GET", self._path(), query=query, timeout=self._timeouts(deadline, 30.0))
            except KubeApiError as err:
                if err.status == 410 and continue_token:  # the paging token expired: start over
                    fresh, continue_token = {}, None
                    continue
                raise _retryable_or(err) from None
            for item in page.get("items") or []:
                # list items carry no kind/apiVersion; add them so every event looks alike
                item.setdefault("kind", self.resource.kind)
                item.setdefault("apiVersion", self.resource.api_version)
                fresh[object_key(item)] = item
            list_version = (page.get("metadata") or {}).get("resourceVersion", "")
            continue_token = (page.get("metadata") or {}).get("continue") or None
            if not continue_token:
                break
        previous, self.cache = self.cache, fresh
        self.resource_version = list_version
        # Report the difference to what we knew, so a consumer that missed
        # changes while we were away (410, outage) still sees each one.
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None:
                yield self._count(Event("ADDED", obj))
            elif _version(old) != _version(obj):
                yield self._count(Event("MODIFIED", obj))
        for key, old in previous.items():
            if key not in fresh:
                yield self._count(Event("DELETED", old))
        yield Event("SYNCED", {"kind": f"{self.resource.kind}List", "metadata": {"resourceVersion": list_version}})

    # --- watch ----------------------------------------------------------------------

    def _watch(self, deadline: float | None) -> Iterator[Event]:
        query = {
            "watch": True,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": self.watch_seconds,
            "labelSelector": self.label_selector,
            "fieldSelector": self.field_selector,
        }
        self._tally("watch")
        response = self.api.open(
            "GET", self._path(), query=query, timeout=self._timeouts(deadline, self.watch_seconds + READ_GRACE)
        )
        with self._response_lock:
            self._response = response
        try:
            if self._stop.is_set():  # stop() ran before the response was registered
                return
            if response.status != 200:
                data = response.data
                if response.status == 410:
                    raise _Expired()
                try:
                    raise_for_status(response.status, data, what=f"watch {self._path()}", token=self.api.token)
                except KubeApiError as err:
                    raise _retryable_or(err) from None
            for line in self._lines(response, deadline):
                event = self._handle(self._parse(line))
                if event is not None:
                    yield event
        finally:
            with self._response_lock:
                self._response = None
            # close() rather than release: a half-read stream must never go back to the pool as is
            response.close()
            response.release_conn()

    def _lines(self, response: urllib3.BaseHTTPResponse, deadline: float | None) -> Iterator[bytes]:
        """Complete lines of the stream; returns at the stream's end, the deadline or stop()."""
        pending = b""
        try:
            for chunk in _chunks(response):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        self._lines_read += 1
                        yield line
                if self._stop.is_set():
                    return
        except CONNECTION_ERRORS as err:
            if self._stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return  # our own shutdown or our own read timeout: not a failure
            raise _StreamBroken(str(err)) from None
        if self._stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return
        if pending.strip():  # the stream stopped in the middle of a line: the server went away
            raise _StreamBroken("stream ended inside an event")

    def _parse(self, line: bytes) -> dict[str, Any]:
        """One line of the stream as a watch event, or _Malformed: after a line that cannot be read, the
        position in the stream is uncertain (a change may be lost inside it), so the caller lists again."""
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("object", {}), dict):
            log.warning("the watch on %s sent a line that is not a JSON watch event (%r); listing again",
                        self._describe(), line[:120])
            raise _Malformed()
        return message

    def _handle(self, message: dict[str, Any]) -> Event | None:
        event_type = message.get("type")
        obj = message.get("object") or {}
        if event_type == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Expired()
            if code in (429, 500, 503, 504):
                raise _StreamBroken(str(obj.get("message")))
            raise KubeApiError(
                f"the watch on {self._describe()} failed: {obj.get('message')}",
                status=int(code or 0),
                reason=str(obj.get("reason", "")),
            )
        new_version = (obj.get("metadata") or {}).get("resourceVersion")
        if new_version:
            self.resource_version = new_version
        if event_type == "BOOKMARK":
            self._tally("bookmark")
            return Event("BOOKMARK", obj) if self.yield_bookmarks else None
        key = object_key(obj)
        if event_type == "DELETED":
            self.cache.pop(key, None)
        elif event_type in ("ADDED", "MODIFIED"):
            self.cache[key] = obj
        else:
            return None  # a type this code does not know: skip rather than guess
        return self._count(Event(event_type, obj))

    # --- helpers --------------------------------------------------------------------

    def _count(self, event: Event) -> Event:
        self._tally("event")
        return event

    def _path(self) -> str:
        return self.resource.path(self.namespace)

    def _describe(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.resource.plural}{where}"

    @staticmethod
    def _timeouts(deadline: float | None, read: float) -> tuple[float, float]:
        # A read timeout no later than the deadline lets a wait return on time even
        # when the stream is silent; the generator then sees the deadline and ends.
        if deadline is not None:
            remaining = max(0.05, deadline - time.monotonic())
            return (min(CONNECT_TIMEOUT, remaining), min(read, remaining))
        return (CONNECT_TIMEOUT, read)



def _retryable_or(err: KubeApiError) -> Exception:
    """Overload and server errors pass with time: retry them; anything else goes to the caller."""
    if err.status in (429, 500, 502, 503, 504):
        return _StreamBroken(str(err))
    return err


def _chunks(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Bytes as they arrive. The API server sends a watch chunked, one event per chunk; a proxy
    in between may not, and a plain read(n) would then sit on events until n bytes pile up."""
    if getattr(response, "chunked", False):
        yield from response.stream(64 * 1024)
        return
    while chunk := response.read1(64 * 1024):
        yield chunk


def _version(obj: dict[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")
