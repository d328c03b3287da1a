"""Where the room stands: one row per learner, one column per step, read from each namespace's objects.

    $ jhtutorial classroom status
    classroom 'learner': 2 learner(s) (learners' pods are simulated: no process runs for them)
    LEARNER    01  02  03  04  05  06  07     08  LATEST PROBLEM
    learner-1  ok  ok  ok  ok  ok  ok  admin  -   -
    learner-2  ok  ok  ~   -   -   -   -      -   Deployment flood: exceeded quota: classroom, requested: pods=1 ...

Steps 01-06 use the very checks of :mod:`jhtutorial.steps` (``Step.check``), fed from one list of each kind
for the whole cluster instead of one request per object, so the table and the notebooks cannot disagree.
07 names the users whose pod ``jupyter-<user>`` exists (``claim-<user>`` alone: "claim"); 08 says "yes" once
nothing of the tutorial is left in a namespace where a hub once ran (its events tell, for an hour).
The latest problem is, first, a quota refusal in the last minutes, then a pod that is not Ready, a PVC that is
Pending, or another recent Warning event.

:class:`RoomView` shows the same table in a notebook and keeps it current from watches, as the live pod view
does for one namespace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..connect import Connection
from ..errors import TutorialError
from ..kubeapi import EVENTS, NAMESPACES, PODS, PVCS, KubeApi, Resource
from ..objects import event_time, pod_is_ready, pod_status
from ..readable import Readable
from ..steps import STEPS, Step, StepStatus
from ..waits import claim_binding_mode, pvc_bound
from ..watching import Reflector
from .backed import cluster_backing, room_simulated
from .provision import CLASSROOM_LABEL, DEFAULT_PREFIX, natural_key

Obj = dict[str, Any]

RECENT = timedelta(minutes=10)  # a Warning event older than this no longer counts as the latest problem
PROBLEM_WIDTH = 90
USER_POD_PREFIX = "jupyter-"
USER_CLAIM_PREFIX = "claim-"
HUB_TRACES = ("Deployment/hub", "ReplicaSet/hub-", "Pod/hub-")  # events that show a hub once ran here
# on the local cluster, when none of the room's namespaces is backed (`jhtutorial.classroom.backed`)
SIMULATED_NOTE = "learners' pods are simulated: no process runs for them, their hubs do not answer"
DRAW_INTERVAL = 0.5


def applied_steps() -> list[Step]:
    return [step for step in STEPS if step.files]


@dataclass
class RoomObjects:
    """Every object the table looks at, by namespace, kind and name (from lists or from watches' caches)."""

    namespaces: list[Obj] = field(default_factory=list)
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)  # (namespace, kind, name) -> object
    events: dict[str, list[Obj]] = field(default_factory=dict)  # namespace -> its events

    def add(self, items: Iterable[Obj], kind: str, wanted: set[str]) -> None:
        for item in items:
            meta = item.get("metadata") or {}
            namespace = meta.get("namespace")
            if namespace not in wanted:
                continue
            if kind == "Event":
                self.events.setdefault(namespace, []).append(item)
            else:
                self.objects[(namespace, kind, meta.get("name"))] = item

    def of_kind(self, namespace: str, kind: str) -> list[Obj]:
        return [obj for (ns, k, _), obj in self.objects.items() if ns == namespace and k == kind]


def watched_resources(kube: KubeApi) -> list[Resource]:
    """The kinds of the steps' objects, plus pods (user servers) and PVCs (their claims); events apart."""
    found: dict[str, Resource] = {}
    for step in applied_steps():
        for obj in step.objects():
            resource = kube.resource_for(obj["apiVersion"], obj["kind"])
            found[resource.kind] = resource
    found[PODS.kind] = PODS
    found[PVCS.kind] = PVCS
    return list(found.values())


def list_room(kube: KubeApi, prefix: str | None) -> RoomObjects:
    """One LIST per kind for the whole cluster (not one request per learner and object)."""
    selector = f"{CLASSROOM_LABEL}={prefix}" if prefix else CLASSROOM_LABEL
    room = RoomObjects(namespaces=kube.get(NAMESPACES.path(), labelSelector=selector).get("items", []))
    wanted = {ns["metadata"]["name"] for ns in room.namespaces}
    if not wanted:
        return room
    for resource in [*watched_resources(kube), EVENTS]:
        room.add(kube.get(resource.path()).get("items", []), resource.kind, wanted)
    return room


@dataclass
class LearnerProgress:
    """One row: a learner's namespace, their steps, their login and what goes wrong."""

    namespace: str
    steps: list[StepStatus]
    marks: list[str]  # per step: "ok" done, "~" started, "-" nothing of it yet
    users: str  # 07: "admin", "admin (starting)", "claim", "-"
    cleaned: bool  # 08
    problem: str

    def cells(self) -> list[str]:
        return [self.namespace, *self.marks, self.users,
                "yes" if self.cleaned else "-", self.problem or "-"]


def room_progress(conn: Connection, room: RoomObjects, *, now: datetime | None = None) -> list[LearnerProgress]:
    """The rows, one per learner namespace, from the objects at hand (no request is sent)."""
    now = now or datetime.now(timezone.utc)
    steps = [(step, step.objects()) for step in applied_steps()]
    rows = []
    for namespace in sorted((ns["metadata"]["name"] for ns in room.namespaces), key=natural_key):
        learner_conn = dataclasses.replace(conn, namespace=namespace, notes=[])

        def fetch(obj: Obj, namespace: str = namespace) -> Obj | None:
            return room.objects.get((namespace, obj["kind"], obj["metadata"]["name"]))

        statuses = [step.check(learner_conn, fetch=fetch, objects=objects) for step, objects in steps]
        pods = room.of_kind(namespace, "Pod")
        claims = room.of_kind(namespace, "PersistentVolumeClaim")
        events = room.events.get(namespace, [])
        user_pods = [p for p in pods if p["metadata"]["name"].startswith(USER_POD_PREFIX)]
        user_claims = [c for c in claims if c["metadata"]["name"].startswith(USER_CLAIM_PREFIX)]
        nothing_left = all(len(s.missing) == len(objects) for s, (_, objects) in zip(statuses, steps))
        rows.append(LearnerProgress(
            namespace=namespace,
            steps=statuses,
            marks=[_mark(status, len(objects)) for status, (_, objects) in zip(statuses, steps)],
            users=_users(user_pods, user_claims),
            cleaned=nothing_left and not user_pods and not user_claims and _hub_ran(events),
            problem=_problem(conn, pods, claims, events, now),
        ))
    return rows


def progress_table(rows: list[LearnerProgress], *, prefix: str | None, simulated: bool) -> str:
    """The rows as a plain-text table (what `classroom status` prints and a notebook saves)."""
    head = ["LEARNER", *(f"{step.number:02d}" for step in applied_steps()), "07", "08", "LATEST PROBLEM"]
    body = [row.cells() for row in rows]
    caption = f"classroom '{prefix or 'all rooms'}': {len(rows)} learner(s)"
    if simulated:
        caption += f" ({SIMULATED_NOTE})"
    if not rows:
        return caption + "\nno learners: `jhtutorial classroom up --learners N` makes them"
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head) - 1)]
    lines = [caption]
    for line in [head, *body]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
    lines.append("ok: done   ~: started, not done   -: nothing yet   07: users with a pod   "
                 "08: all removed after a hub ran")
    return "\n".join(lines)


@dataclass
class RoomStatus(Readable):
    """What ``classroom status`` shows."""

    prefix: str | None
    rows: list[LearnerProgress]
    simulated: bool
    requests: int = 0

    def lines(self) -> list[str]:
        return progress_table(self.rows, prefix=self.prefix, simulated=self.simulated).splitlines()

    @property
    def all_done(self) -> bool:
        return bool(self.rows) and all(all(s.done for s in row.steps) for row in self.rows)


def classroom_status(conn: Connection, *, prefix: str | None = DEFAULT_PREFIX) -> RoomStatus:
    """The room's table, from one list of each kind.

    Example::

        print(classroom_status(connect(), prefix="learner"))   # like: jhtutorial classroom status
    """
    kube = KubeApi(conn.api)
    room = list_room(kube, prefix)
    rows = room_progress(conn, room)
    simulated = room_simulated(cluster_backing(conn), room.namespaces)
    return RoomStatus(prefix=prefix, rows=rows, simulated=simulated, requests=kube.requests)


# --- the notebook widget --------------------------------------------------------------------------


class RoomView:
    """The room's table as a live widget: watches keep the objects current, the table is redrawn at most
    every ``interval`` seconds (a burst of changes from fifty learners costs one redraw).

        view = RoomView(conn, prefix="learner").start()
        view          # the last line of a cell: the table appears and follows the room
        view.stop()

    One watch per kind for the whole cluster (not one per learner), as :class:`~jhtutorial.LiveView` does
    for one namespace's pods; the rows come from :func:`room_progress`, the same as `classroom status`.
    """

    def __init__(self, conn: Connection, *, prefix: str | None = DEFAULT_PREFIX, interval: float = DRAW_INTERVAL) -> None:
        import ipywidgets  # only a notebook needs it

        self.conn = conn
        self.prefix = prefix
        self.interval = interval
        self._backing = cluster_backing(conn)
        self.renders = 0
        self.error: str | None = None
        self._kube = KubeApi(conn.api)
        self._reflectors: dict[str, Reflector] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._synced: dict[str, threading.Event] = {}
        self.widget = ipywidgets.HTML(value="<i>not started</i>", layout=ipywidgets.Layout(overflow="auto"))

    def start(self, wait: float = 10.0) -> RoomView:
        selector = f"{CLASSROOM_LABEL}={self.prefix}" if self.prefix else CLASSROOM_LABEL
        self._reflectors = {"Namespace": Reflector(self.conn.api, NAMESPACES, label_selector=selector)}
        for resource in [*watched_resources(self._kube), EVENTS]:
            self._reflectors[resource.kind] = Reflector(self.conn.api, resource)
        self._stop.clear()
        for kind, reflector in self._reflectors.items():
            self._synced[kind] = threading.Event()
            self._threads.append(threading.Thread(target=self._follow, args=(kind, reflector), daemon=True,
                                                  name=f"jhtutorial-roomview-{kind}"))
        self._threads.append(threading.Thread(target=self._draw_loop, daemon=True, name="jhtutorial-roomview-draw"))
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + wait
        for synced in self._synced.values():
            synced.wait(max(0.0, deadline - time.monotonic()))
        self._render(live=True)
        return self

    def stop(self) -> None:
        self._stop.set()
        for reflector in self._reflectors.values():
            reflector.stop()
        self._changed.set()
        for thread in self._threads:
            thread.join(10)
        self._threads = []
        self._render(live=False)

    def rows(self) -> list[LearnerProgress]:
        return room_progress(self.conn, self._room())

    def table(self) -> str:
        room = self._room()
        return progress_table(room_progress(self.conn, room), prefix=self.prefix,
                              simulated=room_simulated(self._backing, room.namespaces))

    def _room(self) -> RoomObjects:
        if "Namespace" not in self._reflectors:  # never started: one list of each kind instead
            return list_room(self._kube, self.prefix)
        room = RoomObjects(namespaces=list(self._reflectors["Namespace"].cache.values()))
        wanted = {ns["metadata"]["name"] for ns in room.namespaces}
        for kind, reflector in self._reflectors.items():
            if kind != "Namespace":
                room.add(list(reflector.cache.values()), kind, wanted)
        return room

    def _follow(self, kind: str, reflector: Reflector) -> None:
        try:
            for event in reflector.events():
                if event.type == "SYNCED":
                    self._synced[kind].set()
                self._changed.set()
        except TutorialError as err:
            self.error = f"the {kind} watch stopped: {err.problem}"
            self._changed.set()
        finally:
            self._synced[kind].set()

    def _draw_loop(self) -> None:
        while not self._stop.is_set():
            self._changed.wait()
            if self._stop.wait(self.interval):  # let a burst of changes pile up into one redraw
                return
            self._changed.clear()
            self._render(live=True)

    def _render(self, *, live: bool) -> None:
        try:
            text = self.table()
        except RuntimeError:  # a cache changed size while it was read: the next change redraws
            return
        state = "live" if live else "stopped"
        if self.error:
            text += f"\n{self.error}"
        value = (f"<div><i>{state}, updated {datetime.now(timezone.utc).strftime('%H:%M:%S')} UTC</i></div>"
                 f"<pre style='margin:0'>{html.escape(text)}</pre>")
        if value != self.widget.value:
            self.widget.value = value
            self.renders += 1

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        with contextlib.suppress(Exception):  # no kernel: no widget
            widget_bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude, **kwargs)
            bundle.update(widget_bundle[0] if isinstance(widget_bundle, tuple) else widget_bundle or {})
        bundle["text/plain"] = self.table()
        return bundle


# --- helpers --------------------------------------------------------------------------------------


def _mark(status: StepStatus, total: int) -> str:
    if status.done:
        return "ok"
    return "-" if len(status.missing) == total else "~"


def _users(pods: list[Obj], claims: list[Obj]) -> str:
    names = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        user = pod["metadata"]["name"][len(USER_POD_PREFIX):]
        names.append(user if pod_is_ready(pod) else f"{user} (starting)")
    if not names and claims:
        return "claim"
    return ", ".join(names) or "-"


def _hub_ran(events: list[Obj]) -> bool:
    for event in events:
        involved = event.get("involvedObject") or {}
        label = f"{involved.get('kind')}/{involved.get('name')}"
        if label == HUB_TRACES[0] or label.startswith(HUB_TRACES[1:]):
            return True
    return False


def _problem(conn: Connection, pods: list[Obj], claims: list[Obj], events: list[Obj], now: datetime) -> str:
    recent = [e for e in events if e.get("type") == "Warning" and _newer_than(e, now - RECENT)]
    recent.sort(key=event_time, reverse=True)
    quota = [e for e in recent if "exceeded quota" in str(e.get("message", ""))]
    if quota:  # the part that matters comes last in the controller's message: lead with it
        involved = quota[0].get("involvedObject") or {}
        message = " ".join(str(quota[0].get("message")).split())
        return _clip(f"{involved.get('kind')} {involved.get('name')}: {message[message.index('exceeded quota'):]}")
    # a warning about a pod or a claim counts while that object is still unwell (a pod that waited for its
    # claim and then started is fine now), and then it says why
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not pod_is_ready(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            why = _latest_about(recent, "Pod", pod)
            return _clip(f"Pod {pod['metadata']['name']}: {pod_status(pod)}, not Ready" + (f"; {why}" if why else ""))
    for claim in sorted(claims, key=lambda c: c["metadata"]["name"]):
        mode = claim_binding_mode(conn, claim)
        verdict = pvc_bound(claim, mode)
        if not verdict.done:
            why = _latest_about(recent, "PersistentVolumeClaim", claim)
            return _clip(f"PersistentVolumeClaim {claim['metadata']['name']}: {verdict.summary}"
                         + (f"; {why}" if why else ""))
    others = [e for e in recent if (e.get("involvedObject") or {}).get("kind") not in ("Pod", "PersistentVolumeClaim")]
    return _clip(_event_text(others[0])) if others else ""


def _latest_about(events: list[Obj], kind: str, obj: Obj) -> str:
    """The newest of these warnings about this very object (same uid), as "Reason: message"."""
    uid = (obj.get("metadata") or {}).get("uid")
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") == kind and involved.get("uid") == uid:
            return f"{event.get('reason')}: {' '.join(str(event.get('message') or '').split())}"
    return ""


def _event_text(event: Obj) -> str:
    involved = event.get("involvedObject") or {}
    message = " ".join(str(event.get("message") or "").split())
    return f"{involved.get('kind')} {involved.get('name')}: {event.get('reason')}: {message}"


def _newer_than(event: Obj, when: datetime) -> bool:
    stamp = event_time(event)
    try:
        then = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return True
    return then >= when


def _clip(text: str) -> str:
    return text if len(text) <= PROBLEM_WIDTH else text[: PROBLEM_WIDTH - 3] + "..."

