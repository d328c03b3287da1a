"""A live table of the namespace's pods, like ``kubectl get pods --watch``, inside a notebook.

    >>> view = live_view()              # doctest: +SKIP
    >>> view                            # doctest: +SKIP   (the last line of a cell: the table appears)
    >>> ...                             # apply steps, log in: rows appear, change and go
    >>> view.stop()                     # doctest: +SKIP
    >>> print(view.snapshot())          # doctest: +SKIP
    pods: 2 (nodes and pods are simulated by kwok, no container runs; RUNS AS says which pods run ...)
    NAME               PHASE    READY  RESTARTS  RUNS AS  LATEST EVENT
    hub-<hash>-<id>    Running  1/1    0         process  Scheduled
    proxy-<hash>-<id>  Running  2/2    0         process  Scheduled

The kubectl equivalents: ``kubectl get pods -n NS -o wide --watch`` and
``kubectl get events -n NS --field-selector involvedObject.kind=Pod --watch``.

How it works, and why:

- **one watch per kind, not one per pod**: a :class:`~jhtutorial.watching.Reflector`
  follows all pods of the namespace (list once, then watch from that
  resourceVersion), a second one the namespace's pod events; each runs in its
  own background thread and blocks on its stream, so an idle view costs no
  CPU and no requests;
- **batched drawing**: a change only marks the table dirty; a third thread
  redraws at most every ``interval`` seconds (0.3 by default), so a burst of
  a hundred pod changes costs a few redraws, not a hundred;
- **one view per namespace**: starting a view stops any other running view of
  the same namespace, so re-running a notebook cell leaves no watch behind;
- **stop() joins its threads**; afterwards the table holds the final state;
- **two kinds of output**: the widget (live, with ages and nodes) for a
  running kernel, and a deterministic table (no ages, nodes, IPs, UIDs or
  generated name suffixes) as text/plain and text/html, which is what
  papermill, nbval, GitHub and nbviewer keep. :meth:`LiveView.snapshot` gives
  the same table as text for a notebook's last cell.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .connect import Connection, current_connection
from .errors import TutorialError
from .kubeapi import EVENTS, PODS, KubeApi
from .objects import event_time, pod_restarts, pod_status, ready_containers
from .localcluster.backing import BACKED_BY_ANNOTATION, NOT_BACKED_ANNOTATION
from .tally import Observer, ignore
from .watching import Reflector

Obj = dict[str, Any]

#: Redraw at most this often (seconds): a burst of changes becomes one redraw.
DEFAULT_INTERVAL = 0.3
#: Redraw this often while nothing changes, so ages move on (None: never).
DEFAULT_AGE_REFRESH = 5.0
SIMULATED_CAPTION = ("nodes and pods are simulated by kwok, no container runs; RUNS AS says which pods run "
                     "their real programs here instead, each in a sandbox of its own")
EVENT_WIDTH = 70  # characters of an event message shown in the live table
JOIN_SECONDS = 10.0

_registry_lock = threading.Lock()
_running: dict[tuple[str, str], LiveView] = {}


@dataclass(frozen=True)
class PodRow:
    """One line of the table."""

    name: str
    stable_name: str  # the name with generated parts replaced (deterministic across runs)
    phase: str
    ready: str
    restarts: int
    age: str
    node: str
    event_reason: str
    event_text: str
    runs_as: str = ""  # on the local cluster: "sandbox" or "simulated"
    not_backed: str = ""  # on the local cluster: why a pod of a backed namespace stays purely simulated


@dataclass
class _LatestEvent:
    stamp: str
    reason: str
    message: str
    type: str = "Normal"


@dataclass
class _State:
    pods: dict[str, Obj] = field(default_factory=dict)  # uid -> pod
    events: dict[str, _LatestEvent] = field(default_factory=dict)  # pod uid (or name) -> latest event
    synced: bool = False
    error: str | None = None
    events_error: str | None = None


class LiveView:
    """A live pod table for one namespace, fed by background watches.

    Args:
        conn: a connection from :func:`~jhtutorial.connect` (default: the last one made).
        namespace: which namespace to show (default: the connection's).
        interval: redraw at most this often, in seconds.
        age_refresh: redraw this often while idle so ages move on (None: only on changes).
        events: also watch the namespace's events and show each pod's latest one.
        tally: told each pod event, event about a pod, redraw and the seconds it took
            (see :mod:`jhtutorial.tally`); by default nothing is counted.

    Use it as ``view = live_view()`` (started), or ``with LiveView() as view: ...``.
    """

    def __init__(
        self,
        conn: Connection | None = None,
        *,
        namespace: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        age_refresh: float | None = DEFAULT_AGE_REFRESH,
        events: bool = True,
        tally: Observer | None = None,
    ) -> None:
        import ipywidgets  # here, not at import time: the CLI never draws a widget

        self.conn = conn or current_connection()
        self.namespace = namespace or self.conn.namespace
        self.interval = max(0.05, float(interval))
        self.age_refresh = age_refresh
        self.watch_events = events
        self.simulated = self.conn.cluster_kind == "local"
        self._tally = ignore if tally is None else tally  # not `or`: an empty Tally is falsy
        self._state = _State()
        self._lock = threading.Lock()  # guards _state
        self._dirty = threading.Condition()
        self._changed = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reflectors: list[Reflector] = []
        self._holding = False  # between start() and the end of stop(): self.conn.hold() is in force
        self._last_render = 0.0
        self._render_lock = threading.Lock()
        self._listed = threading.Event()  # the pods' first list is in
        self._events_listed = threading.Event()  # the events' first list is in (or they cannot be read)
        # overflow: a notebook narrower than the table scrolls it sideways instead of cutting it off
        self.widget = ipywidgets.HTML(value=self._html([], live=False, note="not started"),
                                      layout=ipywidgets.Layout(overflow="auto"))

    # --- lifecycle -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self, wait: float = 10.0) -> LiveView:
        """Start the background watches (a no-op if running). Stops another view of the same namespace.

        Returns once the first lists are in (at most ``wait`` seconds), so a view
        displayed right away shows the pods that exist, not an empty table.
        """
        if self.running:
            return self
        key = (self.conn.server, self.namespace)
        with _registry_lock:
            previous = _running.get(key)
            _running[key] = self
        if previous is not None and previous is not self:
            previous.stop()
        self._stop.clear()
        self._listed.clear()
        self._events_listed.clear()
        if not self.watch_events:
            self._events_listed.set()
        self._state = _State()
        self.conn.hold()  # a connect() meanwhile must not close the connection under the watches
        self._holding = True
        pods = Reflector(self.conn.api, PODS, self.namespace)
        self._reflectors = [pods]
        self._threads = [threading.Thread(target=self._follow_pods, args=(pods,),
                                          name=f"jhtutorial-liveview-pods-{self.namespace}", daemon=True)]
        if self.watch_events:
            # Only events about pods: the field selector keeps Deployment and PVC chatter off the wire.
            events = Reflector(self.conn.api, EVENTS, self.namespace, field_selector="involvedObject.kind=Pod")
            self._reflectors.append(events)
            self._threads.append(threading.Thread(target=self._follow_events, args=(events,),
                                                  name=f"jhtutorial-liveview-events-{self.namespace}", daemon=True))
        self._threads.append(threading.Thread(target=self._draw_loop,
                                              name=f"jhtutorial-liveview-draw-{self.namespace}", daemon=True))
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + wait
        self._listed.wait(wait)
        self._events_listed.wait(max(0.0, deadline - time.monotonic()))
        self._render(live=True)
        return self

    def stop(self, timeout: float = JOIN_SECONDS) -> None:
        """Stop the watches, wait for their threads to end, draw the final state."""
        self._stop.set()
        for reflector in self._reflectors:
            reflector.stop()  # wakes a thread blocked on its stream at once
        with self._dirty:
            self._dirty.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        with _registry_lock:
            if _running.get((self.conn.server, self.namespace)) is self:
                del _running[(self.conn.server, self.namespace)]
        if self._holding and not alive:
            self._holding = False
            self.conn.release()
        self._render(live=False)
        if alive:
            raise TutorialError(f"the live view's threads did not stop within {timeout:.0f} s: {', '.join(alive)}",
                                fix="a request to the API server hangs; they end when it times out (30 s at most)")

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what it shows ------------------------------------------------------------------

    def rows(self) -> list[PodRow]:
        """The table's rows, sorted by name (lists the pods once if the view never ran)."""
        if not self._threads and not self._state.synced:
            self._list_once()
        with self._lock:
            pods = list(self._state.pods.values())
            events = dict(self._state.events)
        now = datetime.now(timezone.utc)
        return sorted((_row(pod, events, now) for pod in pods), key=lambda r: (r.name, r.node))

    def snapshot(self) -> str:
        """The table as text with nothing that differs between two runs: no ages, nodes, IPs or UIDs.

        Generated name parts are replaced (``hub-<hash>-<id>``), events show their reason only.
        Meant for a notebook's last cell, so nbval can compare it with the committed output.
        """
        return _text_table(self.rows(), self.simulated, self._state.error)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        # A live kernel shows the widget; everything else (papermill's saved file,
        # nbval, GitHub, nbviewer without widget state) falls back to the
        # deterministic table as it is at display time.
        rows = self.rows()
        bundle: dict[str, Any] = {}
        with contextlib.suppress(Exception):  # no kernel (plain Python): no widget view
            widget_bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude, **kwargs)
            if isinstance(widget_bundle, tuple):
                widget_bundle = widget_bundle[0]
            bundle.update(widget_bundle or {})
        bundle["text/plain"] = _text_table(rows, self.simulated, self._state.error)
        bundle["text/html"] = self._html(rows, live=False, stable=True)
        return bundle

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LiveView namespace={self.namespace!r} {state}, {len(self._state.pods)} pods>"

    # --- background threads -------------------------------------------------------------

    def _follow_pods(self, reflector: Reflector) -> None:
        try:
            for event in reflector.events():
                with self._lock:
                    if event.type == "SYNCED":
                        # the cache is complete now: take it whole (a relist after 410 may have dropped pods)
                        self._state.pods = {_uid(p): p for p in reflector.cache.values()}
                        self._state.synced = True
                        self._listed.set()
                    elif event.type == "DELETED":
                        self._state.pods.pop(_uid(event.object), None)
                        self._state.events.pop(_uid(event.object), None)
                    elif event.type in ("ADDED", "MODIFIED"):
                        self._state.pods[_uid(event.object)] = event.object
                    else:
                        continue
                    self._tally("pod_event", event.type != "SYNCED")
                self._mark_dirty()
        except TutorialError as err:
            with self._lock:
                self._state.error = f"the pod watch stopped: {err.problem}"
            self._mark_dirty()
        finally:
            self._listed.set()  # whoever waits in start() must not wait for a list that will not come

    def _follow_events(self, reflector: Reflector) -> None:
        try:
            for event in reflector.events():
                if event.type == "SYNCED":
                    self._events_listed.set()
                if event.type not in ("ADDED", "MODIFIED"):
                    continue  # an expired Event object says nothing new about its pod
                involved = event.object.get("involvedObject") or {}
                key = involved.get("uid") or involved.get("name") or ""
                latest = _LatestEvent(
                    stamp=event_time(event.object),
                    reason=str(event.object.get("reason") or ""),
                    message=" ".join(str(event.object.get("message") or "").split()),
                    type=str(event.object.get("type") or "Normal"),
                )
                with self._lock:
                    known = self._state.events.get(key)
                    if known is None or latest.stamp >= known.stamp:
                        self._state.events[key] = latest
                    self._tally("pod_event_change")
                self._mark_dirty()
        except TutorialError as err:
            # No permission to read events is common for namespaced users: the pods still show.
            with self._lock:
                self._state.events_error = f"events not shown: {err.problem}"
            self._mark_dirty()
        finally:
            self._events_listed.set()

    def _mark_dirty(self) -> None:
        with self._dirty:
            self._changed = True
            self._dirty.notify()

    def _draw_loop(self) -> None:
        while not self._stop.is_set():
            with self._dirty:
                if not self._changed:
                    # Sleep until a change, or until the ages are worth refreshing.
                    wait = self.age_refresh if (self.age_refresh and self._state.pods) else None
                    self._dirty.wait(wait)
                self._changed = False
            if self._stop.is_set():
                return
            # Leave room for more changes to pile up: at most one redraw per interval.
            since = time.monotonic() - self._last_render
            if since < self.interval and self._stop.wait(self.interval - since):
                return
            with self._dirty:
                self._changed = False  # whatever came in meanwhile is in this redraw
            self._render(live=True)

    def _render(self, *, live: bool) -> None:
        with self._render_lock:  # start() and stop() draw too, from the caller's thread
            started = time.monotonic()
            rows = self.rows()
            value = self._html(rows, live=live)
            if value != self.widget.value:
                self.widget.value = value  # from this thread: ipywidgets sends the change to the browser
                self._tally("render")
            self._last_render = time.monotonic()
            self._tally("render_seconds", self._last_render - started)

    def _list_once(self) -> None:
        """For a view that never ran: one list of the pods and events, no watch."""
        kube = KubeApi(self.conn.api)
        pods = kube.get(PODS.path(self.namespace)).get("items", [])
        with self._lock:
            self._state.pods = {_uid(p): p for p in pods}
            self._state.synced = True
        if self.watch_events:
            try:
                items = kube.get(EVENTS.path(self.namespace), fieldSelector="involvedObject.kind=Pod").get("items", [])
            except TutorialError:
                return
            with self._lock:
                for item in sorted(items, key=event_time):
                    involved = item.get("involvedObject") or {}
                    self._state.events[involved.get("uid") or involved.get("name") or ""] = _LatestEvent(
                        event_time(item), str(item.get("reason") or ""),
                        " ".join(str(item.get("message") or "").split()), str(item.get("type") or "Normal"))

    # --- HTML -----------------------------------------------------------------------------

    def _html(self, rows: list[PodRow], *, live: bool, stable: bool = False, note: str | None = None) -> str:
        state = note or ("live" if live else ("stopped" if self._threads else "not started"))
        runs = ["runs as"] if self.simulated else []
        if stable:
            head = ["name", "phase", "ready", "restarts", *runs, "latest event"]
            body = [[r.stable_name, r.phase, r.ready, str(r.restarts), *([r.runs_as] if runs else []), r.event_reason]
                    for r in rows]
            caption = f"pods: {len(rows)}"
        else:
            head = ["name", "phase", "ready", "restarts", "age", "node", *runs, "latest event"]
            body = [[r.name, r.phase, r.ready, str(r.restarts), r.age, r.node or "-", *([r.runs_as] if runs else []),
                     r.event_text] for r in rows]
            caption = f"pods in namespace {self.namespace}: {len(rows)} ({state})"
        lines = [f"<div class='jhtutorial-liveview'><div><b>{html.escape(caption)}</b></div>"]
        for extra in self._captions(rows):
            lines.append(f"<div><i>{html.escape(extra)}</i></div>")
        if rows:
            cell = "padding:1px 8px;text-align:left"
            table = "font-family:monospace"
            styles = [cell] * len(head)
            if not stable:
                # In the widget: ipywidgets' HTML control sets the line height of a one-line
                # control (28px), and in a notebook narrower than the table the browser broke
                # pod and node names at their hyphens. Only the event text wraps, in a column
                # wide enough to read.
                table += ";line-height:1.4"
                cell += ";vertical-align:top"
                styles = [cell + ";white-space:nowrap"] * (len(head) - 1) + [cell + ";min-width:28ch"]
            lines.append(f"<table style='{table}'><thead><tr>"
                         + "".join(f"<th style='{st}'>{html.escape(h)}</th>" for st, h in zip(styles, head))
                         + "</tr></thead><tbody>")
            for values in body:
                lines.append("<tr>" + "".join(f"<td style='{st}'>{html.escape(v)}</td>" for st, v in zip(styles, values))
                             + "</tr>")
            lines.append("</tbody></table>")
        else:
            lines.append("<div>no pods</div>")
        lines.append("</div>")
        return "\n".join(lines)

    def _captions(self, rows: list[PodRow]) -> list[str]:
        out = []
        if self.simulated:
            out.append(SIMULATED_CAPTION)
            # what is in the way of running a pod (sandboxes that cannot be made here, a program not installed)
            out.extend(f"not run here: {why}" for why in sorted({r.not_backed for r in rows if r.not_backed}))
        if self._state.error:
            out.append(self._state.error)
        if self._state.events_error:
            out.append(self._state.events_error)
        return out


def live_view(conn: Connection | None = None, *, namespace: str | None = None,
              interval: float = DEFAULT_INTERVAL, events: bool = True) -> LiveView:
    """A started :class:`LiveView`; show it by making it a cell's last expression.

    Example::

        view = jhtutorial.live_view()     # like: kubectl get pods -n NS --watch
        view
    """
    return LiveView(conn, namespace=namespace, interval=interval, events=events).start()


def running_views() -> list[LiveView]:
    """The views whose watches run right now (at most one per namespace)."""
    with _registry_lock:
        return list(_running.values())


# --- rows -----------------------------------------------------------------------------------


def _uid(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or meta.get("name"))


def _row(pod: Obj, events: dict[str, _LatestEvent], now: datetime) -> PodRow:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    latest = events.get(_uid(pod)) or events.get(str(meta.get("name")))
    reason = latest.reason if latest else ""
    text = f"{latest.reason}: {latest.message}" if latest else ""
    if len(text) > EVENT_WIDTH:
        text = text[: EVENT_WIDTH - 3] + "..."
    return PodRow(
        name=str(meta.get("name")),
        stable_name=stable_name(pod),
        phase=pod_status(pod),
        ready=ready_containers(pod),
        restarts=pod_restarts(pod),
        age=_age(meta.get("creationTimestamp"), now),
        node=str(spec.get("nodeName") or ""),
        event_reason=reason,
        event_text=text,
        runs_as=_runs_as((meta.get("annotations") or {}).get(BACKED_BY_ANNOTATION)),
        not_backed=str((meta.get("annotations") or {}).get(NOT_BACKED_ANNOTATION) or ""),
    )


def stable_name(pod: Obj) -> str:
    """The pod's name with the parts Kubernetes generates replaced.

    A Deployment's pod ``hub-5d9f7c7b8-x2x9q`` becomes ``hub-<hash>-<id>``
    (the ReplicaSet's template hash and a random suffix); other generated names
    (``generateName``) end in ``<id>``; names chosen by someone (``jupyter-admin``)
    stay as they are.
    """
    meta = pod.get("metadata") or {}
    name = str(meta.get("name"))
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    owners = [o.get("kind") for o in meta.get("ownerReferences") or []]
    generate = meta.get("generateName")
    if template_hash and "ReplicaSet" in owners and f"-{template_hash}-" in name:
        return name.split(f"-{template_hash}-", 1)[0] + "-<hash>-<id>"
    if generate and name.startswith(generate):
        return f"{generate}<id>"
    return name


def _age(created: str | None, now: datetime) -> str:
    """An age the way kubectl writes it: 42s, 3m10s, 5h, 2d."""
    if not created:
        return "-"
    try:
        then = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _text_table(rows: list[PodRow], simulated: bool, error: str | None) -> str:
    head = f"pods: {len(rows)}" + (f" ({SIMULATED_CAPTION})" if simulated else "")
    lines = [head]
    if error:
        lines.append(error)
    if not rows:
        lines.append("no pods")
        return "\n".join(lines)
    table = [["NAME", "PHASE", "READY", "RESTARTS", *(["RUNS AS"] if simulated else []), "LATEST EVENT"]]
    table += [[r.stable_name, r.phase, r.ready, str(r.restarts), *([r.runs_as] if simulated else []),
               r.event_reason or "-"]
              for r in sorted(rows, key=lambda r: (r.stable_name, r.phase, r.ready, r.event_reason))]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)


def _runs_as(backed_by: str | None) -> str:
    """The RUNS AS column: a pod's programs in a sandbox of its own, or none."""
    return "simulated" if backed_by is None else "sandbox"
