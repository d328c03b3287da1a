"""What notebook 08 shows around the clean-up: everything of the workbook and who made it, and the volumes
that go with their claims.

    >>> print(nb.workbook_objects(conn))         # doctest: +SKIP
    OBJECT                              MADE BY
    ServiceAccount/hub                  manifests/
    ...
    PersistentVolumeClaim/claim-admin   the hub (KubeSpawner), for user admin
"""

from __future__ import annotations

from typing import Any

from ..cleanup import inventory
from ..connect import Connection
from ..kubeapi import PVS
from ..objects import name_of
from ..waits import wait_deleted
from .tables import table

Obj = dict[str, Any]


def workbook_objects(conn: Connection) -> str:
    """Everything of the workbook in the namespace and who made it: the manifests, or the hub (KubeSpawner)
    for a user (a summary of ``kubectl get ... -l app.kubernetes.io/part-of=jhtutorial``)."""
    rows = [(found.label, "the hub (KubeSpawner)" + (f", for user {found.user}" if found.user else "")
             if found.from_hub else "manifests/") for found in inventory(conn)]
    return table(rows, ["OBJECT", "MADE BY"]) if rows else "nothing of the workbook is here"


def wait_volumes_gone(conn: Connection, volumes: list[Obj], *, timeout: float = 120) -> None:
    """Wait until these PersistentVolumes are deleted (``kubectl wait --for=delete pv/NAME``): the volume
    controller removes a volume whose reclaim policy is Delete once its claim is gone."""
    for volume in volumes:
        wait_deleted(PVS, name_of(volume), conn=conn, timeout=timeout)
    print(f"volumes deleted with their claims: {len(volumes)}")


def user_servers(conn: Connection) -> dict[str, tuple[str | None, str | None]]:
    """Each user with a server the hub started: user -> (pod, claim), found by the tutorial's label and the
    user KubeSpawner writes on them (``kubectl get pods,pvc -l app.kubernetes.io/part-of=jhtutorial,
    app.kubernetes.io/component=singleuser-server``, annotation ``hub.jupyter.org/username``)."""
    servers: dict[str, tuple[str | None, str | None]] = {}
    for found in inventory(conn):
        if not found.from_hub or not found.user:
            continue
        pod, claim = servers.get(found.user, (None, None))
        if found.resource.kind == "Pod":
            pod = found.name
        else:
            claim = found.name
        servers[found.user] = (pod, claim)
    return servers
