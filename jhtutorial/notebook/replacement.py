"""Pods being replaced, watched from a cell: delete them, or restart their Deployment, and see the order
in which old pods go and new ones come.

    >>> seen = nb.watch_replacement(conn, "component=hub", lambda: nb.rollout_restart(conn, "hub"))  # doctest: +SKIP
    >>> print(seen)                                 # doctest: +SKIP   (kubectl get pods -l component=hub --watch)
    1. pod hub-<hash>-<id> terminating
    2. pod hub-<hash>-<id> deleted
    3. pod hub-<hash>-<id> created
    4. pod hub-<hash>-<id> ready
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..connect import Connection
from ..errors import TutorialError
from ..kubeapi import DEPLOYMENTS, PODS
from ..objects import name_of, pod_is_ready
from ..watching import Reflector
from .reads import COMPONENT, PART_OF, kube, pods


@dataclass
class Replacement:
    """What a watch saw while pods were replaced: milestones in the order they happened."""

    old: list[str]
    new: list[str]
    milestones: list[tuple[str, str]]  # (what, pod name): terminating, deleted, created, ready

    def index(self, what: str, name: str) -> int:
        return self.milestones.index((what, name))

    @property
    def new_created_after_old_gone(self) -> bool:
        """What the Recreate strategy promises: every new pod was created after every old one was deleted."""
        gone = max(self.index("deleted", name) for name in self.old)
        return all(self.index("created", name) > gone for name in self.new)

    def __str__(self) -> str:
        return "\n".join(f"{number}. pod {name} {what}"
                         for number, (what, name) in enumerate(self.milestones, 1))

    def summary(self) -> str:
        """Which pods went and which came, and who made the new ones (the same every run, unlike the
        order of the milestones while a deleted pod's replacement is already starting)."""
        replicaset = self.new[0].rsplit("-", 1)[0] if self.new else "?"
        same = all(name.rsplit("-", 1)[0] == replicaset for name in self.old)
        return (f"deleted:     pod {', '.join(self.old)}\n"
                f"replacement: pod {', '.join(self.new)}, Ready, made by ReplicaSet {replicaset}"
                + (" like the one before" if same else ""))


def watch_replacement(conn: Connection, selector: str, action: Callable[[], Any], *,
                      timeout: float = 180) -> Replacement:
    """Run ``action`` (which deletes or restarts pods) while watching the pods of ``selector``;
    return once every old pod is gone and as many new pods are Ready."""
    reflector = Reflector(conn.api, PODS, conn.namespace, label_selector=selector)
    old: list[str] = []
    milestones: list[tuple[str, str]] = []
    started = time.monotonic()

    def note(what: str, name: str) -> None:
        if (what, name) not in milestones:
            milestones.append((what, name))

    for event in reflector.events(timeout=timeout):
        if event.type == "SYNCED" and not old:
            old = sorted(name_of(pod) for pod in reflector.cache.values())
            if not old:
                raise TutorialError(f"no pod matches {selector} in namespace {conn.namespace}",
                                    fix="run the step that creates it first (notebook 06)")
            action()
            continue
        if not old or event.type not in ("ADDED", "MODIFIED", "DELETED"):
            continue
        pod, name = event.object, name_of(event.object)
        if event.type == "DELETED":
            note("deleted", name)
        else:
            if name not in old:
                note("created", name)
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                note("terminating", name)
            elif name not in old and pod_is_ready(pod):
                note("ready", name)
        new = [n for what, n in milestones if what == "created"]
        ready = [n for what, n in milestones if what == "ready"]
        if all(("deleted", n) in milestones for n in old) and len(ready) >= len(old):
            return Replacement(old, new, milestones)
    raise TutorialError(
        f"after {time.monotonic() - started:.0f} s the pods of {selector} were not replaced; "
        "seen so far:\n" + str(Replacement(old, [], milestones)),
        fix=f"`kubectl get pods -l {selector} -n {conn.namespace}` and `kubectl describe` the new pod",
    )


def delete_pods(conn: Connection, names: Iterable[str]) -> None:
    """``kubectl delete pod NAME ...`` (without waiting)."""
    for name in names:
        kube(conn).call("DELETE", PODS.path(conn.namespace, name))


def rollout_restart(conn: Connection, deployment: str) -> None:
    """``kubectl rollout restart deployment/NAME``: a new annotation in the pod template makes a new ReplicaSet."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    kube(conn).call("PATCH", DEPLOYMENTS.path(conn.namespace, deployment), body=patch,
                    content_type="application/strategic-merge-patch+json")


def delete_and_watch(conn: Connection, component: str, *, timeout: float = 180) -> Replacement:
    """``kubectl delete pod -l app.kubernetes.io/component=COMPONENT`` while watching the component's pods,
    until the replacements are Ready."""
    selector = f"{PART_OF},{COMPONENT}={component}"
    return watch_replacement(conn, selector, lambda: delete_pods(conn, pods(conn, component)), timeout=timeout)


def restart_and_watch(conn: Connection, deployment: str, *, timeout: float = 180) -> Replacement:
    """``kubectl rollout restart deployment/NAME`` while watching its pods, until the new pod is Ready."""
    selector = f"{PART_OF},{COMPONENT}={deployment}"
    return watch_replacement(conn, selector, lambda: rollout_restart(conn, deployment), timeout=timeout)
