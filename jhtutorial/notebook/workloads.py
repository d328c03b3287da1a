"""The Deployments and their pods as a learner reads them in notebook 06: who owns whom, and what each
container may do.

    >>> print(nb.owner_chains(conn))             # doctest: +SKIP   (metadata.ownerReferences, two steps up)
    Pod hub-d8df7c9cf-6j6xw  <- ReplicaSet hub-d8df7c9cf  <- Deployment hub
    >>> [(c.where, c.non_root) for c in nb.containers(conn)]          # doctest: +SKIP
    [('hub/hub', True), ('proxy/nginx', True), ('proxy/chp', True)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..connect import Connection
from ..enforcement import enforcement
from ..kubeapi import DEPLOYMENTS, PODS, REPLICASETS
from ..objects import name_of
from .manifest_data import ContainerSettings, container_settings, security_settings
from .reads import COMPONENT, PART_OF, items

Obj = dict[str, Any]
# the Deployments' pods: a user pod the hub makes in 07 carries the tutorial's label too, but no owner chain
DEPLOYED = f"{PART_OF},{COMPONENT} in (hub,proxy)"


@dataclass(frozen=True)
class DeploymentView:
    """How many pods a Deployment keeps and how it replaces them."""

    name: str
    replicas: int
    strategy: str


def deployments(conn: Connection) -> list[DeploymentView]:
    """The workbook's Deployments (``kubectl get deployments -l app.kubernetes.io/part-of=jhtutorial``)."""
    return [DeploymentView(name_of(d), (d.get("spec") or {}).get("replicas", 1),
                           ((d.get("spec") or {}).get("strategy") or {}).get("type", ""))
            for d in items(conn, DEPLOYMENTS, selector=PART_OF)]


def owner_chains(conn: Connection) -> str:
    """For each pod of the hub and proxy Deployments, its owner and its owner's owner (``metadata.ownerReferences``)."""
    replicasets = {name_of(rs): rs for rs in items(conn, REPLICASETS, selector=PART_OF)}
    lines = []
    for pod in items(conn, PODS, selector=DEPLOYED):
        chain = [f"Pod {name_of(pod)}"]
        owner = _controller(pod)
        while owner is not None:
            chain.append(f"{owner['kind']} {owner['name']}")
            owned = replicasets.get(owner["name"]) if owner["kind"] == "ReplicaSet" else None
            owner = _controller(owned) if owned else None
        lines.append("  <- ".join(chain))
    return "\n".join(lines)


def _controller(obj: Obj) -> Obj | None:
    """The owner reference that controls ``obj`` (the first one, if none is marked as the controller)."""
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((ref for ref in references if ref.get("controller")), references[0] if references else None)


def containers(conn: Connection) -> list[ContainerSettings]:
    """The settings of every container of the hub's and the proxy's pods, named component/container."""
    return [settings for pod in items(conn, PODS, selector=DEPLOYED)
            for settings in container_settings(pod["spec"], ((pod["metadata"].get("labels") or {}).get(COMPONENT)
                                                             or name_of(pod)))]


def pod_security(conn: Connection) -> str:
    """For each pod of the hub and the proxy: its ServiceAccount, whether its token is mounted, and what each
    container may do (the ``securityContext`` fields of ``kubectl get pod NAME -o yaml``)."""
    parts = []
    for pod in items(conn, PODS, selector=DEPLOYED):
        spec = pod["spec"]
        parts.append(f"pod {name_of(pod)}, ServiceAccount {spec.get('serviceAccountName', 'default')}, "
                     f"token mounted: {str(spec.get('automountServiceAccountToken', True)).lower()}\n"
                     + security_settings(spec, enforcement(conn.cluster_kind, pod)))
    return "\n\n".join(parts)
