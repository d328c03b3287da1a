"""Whether the cluster a room is on runs its learners' hubs, proxies and user servers (backs them).

On a cluster with containers every pod runs; on the local simulated cluster a pod runs its programs only in
a namespace the backing's rule selects (:mod:`jhtutorial.localcluster.backing.policy`): a learner's when pod
sandboxes can be made on this machine and the instructor did not keep the room purely simulated
(``classroom up --simulated``, label ``jhtutorial/backed=false``).

    >>> backing = cluster_backing(conn)                # doctest: +SKIP
    >>> backing.backs(namespace_object)                # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..connect import Connection, is_local_server
from ..localcluster.backing.policy import namespace_backed

Obj = dict[str, Any]


@dataclass(frozen=True)
class ClusterBacking:
    """How the cluster a connection reaches treats learners' pods."""

    local: bool  # the local simulated cluster of this machine (else pods run in containers, or nowhere we know)
    problems: tuple[str, ...] = ()  # why sandboxes cannot be made on this machine

    @property
    def backs_learners(self) -> bool:
        """The local cluster backs a learner's pods when the room asks for it."""
        return self.local and not self.problems

    def backs(self, namespace: Obj) -> bool:
        """Whether the pods of this learner namespace (a Namespace object) run their programs here."""
        return self.backs_learners and namespace_backed(namespace)

    def why_simulated(self, simulated_asked: bool) -> str | None:
        """Why the room's pods stay purely simulated on the local cluster (None: they are backed, or it is not
        the local cluster)."""
        if not self.local:
            return None
        if self.problems:
            return ("pod sandboxes cannot be made on this machine (" + "; ".join(self.problems) + "), so no "
                    "learner's pod runs: their hubs do not answer; every Kubernetes object and check is real")
        if simulated_asked:
            return ("learners' pods are kept purely simulated (--simulated): no process runs for them, their hubs "
                    "do not answer; every Kubernetes object and check is real")
        return None


def cluster_backing(conn: Connection) -> ClusterBacking:
    """What the local cluster's supervisor does with learners' pods (whether it can make sandboxes, as it says)."""
    if conn.cluster_kind != "local" or not is_local_server(conn.server):
        return ClusterBacking(local=conn.cluster_kind == "local")
    from ..localcluster import LocalCluster

    control = LocalCluster(progress=lambda _message: None).supervisor
    return ClusterBacking(local=True, problems=tuple(control.status().get("sandbox_problems") or ()))


def room_simulated(backing: ClusterBacking, namespaces: Iterable[Obj]) -> bool:
    """True on the local cluster when none of these learner namespaces is backed (the status table says so)."""
    return backing.local and not any(backing.backs(namespace) for namespace in namespaces)
