"""A backed pod's status, as a kubelet writes it, from what its containers' programs do.

Pure functions: what runs goes in, the status patch comes out; :mod:`.pod` sends it to the API server.

    >>> running = ContainerState("hub", "quay.io/jupyterhub/k8s-hub:4.4.0", ready=False, alive=True, restarts=0,
    ...                          process_id=42, started_at="2026-01-01T00:00:00Z", last_exit=None)
    >>> patch = status_patch([running], {}, at="2026-01-01T00:00:01Z")
    >>> [(c["type"], c["status"]) for c in patch["status"]["conditions"]][2]
    ('Ready', 'False')
    >>> patch["status"]["containerStatuses"][0]["state"]
    {'running': {'startedAt': '2026-01-01T00:00:00Z'}}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ContainerState:
    """What one container's program is doing, as far as its status tells."""

    name: str
    image: str
    ready: bool
    alive: bool
    restarts: int
    process_id: int | None
    started_at: str | None
    last_exit: Obj | None  # the last run's end, as ``lastState.terminated``


def container_status(state: ContainerState) -> Obj:
    """One entry of ``status.containerStatuses``."""
    item: Obj = {"name": state.name, "image": state.image, "imageID": "", "ready": state.ready,
                 "restartCount": state.restarts, "started": state.alive}
    if state.alive and state.process_id is not None:
        item["containerID"] = f"process://{state.process_id}"
        item["state"] = {"running": {"startedAt": state.started_at}}
    elif state.last_exit is not None:
        item["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                     "message": f"back-off restarting failed container {state.name}"}}
    else:
        item["state"] = {"waiting": {"reason": "ContainerCreating"}}
    if state.last_exit is not None:
        item["lastState"] = {"terminated": state.last_exit}
    return item


def status_patch(containers: list[ContainerState], current: Obj, *, address: tuple[str, str] | None = None,
                 at: str | None = None) -> Obj:
    """The merge patch of the pod's status: conditions (a transition time kept while a condition holds, as the
    kubelet keeps it) and container statuses; with ``address`` (pod IP, start time) also phase Running and the
    pod's IP, for a pod whose status kwok left to the backing."""
    moment = at or now()
    ready = "True" if containers and all(c.ready for c in containers) else "False"
    earlier = {c.get("type"): c for c in current.get("conditions") or []}

    def condition(kind: str, value: str, reason: str | None = None) -> Obj:
        before = earlier.get(kind) or {}
        item = {"type": kind, "status": value,
                "lastTransitionTime": before.get("lastTransitionTime") if before.get("status") == value else moment}
        if value != "True" and reason:
            item["reason"] = reason
            waiting = [c.name for c in containers if not c.ready]
            item["message"] = f"containers with unready status: [{' '.join(waiting)}]"
        return item

    body: Obj = {"status": {
        "conditions": [condition("PodReadyToStartContainers", "True"), condition("Initialized", "True"),
                       condition("Ready", ready, "ContainersNotReady"),
                       condition("ContainersReady", ready, "ContainersNotReady"),
                       condition("PodScheduled", "True")],
        "containerStatuses": [container_status(c) for c in containers],
    }}
    if address is not None:
        ip, started = address
        body["status"].update({"phase": "Running", "startTime": started, "podIP": ip, "podIPs": [{"ip": ip}]})
    return body


def readiness_matches(current: Obj, ready: bool) -> bool:
    """False when someone else (kwok, before it saw the backing's annotation) wrote another readiness."""
    conditions = {c.get("type"): c.get("status") for c in current.get("conditions") or []}
    return conditions.get("Ready") == ("True" if ready else "False") and current.get("phase") == "Running"
