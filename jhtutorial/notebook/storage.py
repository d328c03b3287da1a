"""Volumes in notebook 04: the reclaim policy of this namespace's volumes, and a claim made to fail on purpose.

    >>> print(nb.scratch_claim_command("alice", storage_class="does-not-exist"))
    kubectl apply -n alice -f - <<'EOF'
    apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      name: scratch
    spec:
      storageClassName: does-not-exist
      accessModes:
      - ReadWriteOnce
      resources:
        requests:
          storage: 1Gi
    EOF
"""

from __future__ import annotations

from typing import Any

import yaml

from ..connect import Connection
from ..kubeapi import PVCS
from ..objects import name_of
from ..waits import wait_deleted
from .checks import check, skip
from .reads import items, kube
from .tables import table

Obj = dict[str, Any]
SCRATCH = "scratch"  # the exercise's claim: no file of the workbook names it


def scratch_claim(storage_class: str) -> Obj:
    """The exercise's claim, asking for 1Gi of ``storage_class``."""
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": SCRATCH},
            "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}


def scratch_claim_command(namespace: str, *, storage_class: str) -> str:
    """The claim as a learner types it: ``kubectl apply`` reading the YAML from the terminal (a here-document)."""
    text = yaml.safe_dump(scratch_claim(storage_class), sort_keys=False).rstrip("\n")
    return f"kubectl apply -n {namespace} -f - <<'EOF'\n{text}\nEOF"


def create_scratch_claim(conn: Connection, *, storage_class: str) -> Obj:
    """Create the exercise's claim, unless it exists already (the learner made it); return it as stored."""
    path = PVCS.path(conn.namespace, SCRATCH)
    found = kube(conn).get_or_none(path)
    if found is not None:
        print(f"persistentvolumeclaim/{SCRATCH} exists already (you made it): left as it is")
        return found
    created = kube(conn).call("POST", PVCS.path(conn.namespace), body=scratch_claim(storage_class))
    print(f"persistentvolumeclaim/{SCRATCH} created")
    return created


def delete_scratch_claim(conn: Connection, *, timeout: float = 60) -> None:
    """``kubectl delete pvc scratch``, waiting until it is gone; nothing to do if it is gone already."""
    if kube(conn).get_or_none(PVCS.path(conn.namespace, SCRATCH)) is None:
        print(f"persistentvolumeclaim/{SCRATCH} is gone already (you deleted it)")
        return
    kube(conn).call("DELETE", PVCS.path(conn.namespace, SCRATCH))
    wait_deleted(PVCS, SCRATCH, conn=conn, timeout=timeout)
    print(f'persistentvolumeclaim "{SCRATCH}" deleted')


def claim_names(conn: Connection) -> list[str]:
    """The names of every PersistentVolumeClaim in the namespace (``kubectl get pvc -o name``), sorted."""
    return [name_of(claim) for claim in items(conn, PVCS)]


def reclaim_policies(conn: Connection, volumes: list[Obj] | None) -> str:
    """Each volume bound to a claim of this namespace with its reclaim policy (``kubectl get pv``), or, when you
    may not read PersistentVolumes (``volumes`` is None), what the policy usually is."""
    if volumes is None:
        return ("(You may not read PersistentVolumes. A dynamically provisioned volume takes the reclaim policy of\n"
                "its StorageClass, which is Delete unless the class says Retain.)")
    rows = [(name_of(pv), ((pv.get("spec") or {}).get("claimRef") or {}).get("name", "-"),
             (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", "-")) for pv in volumes]
    return table(rows, ["VOLUME", "CLAIM", "RECLAIM POLICY"])


def check_hub_claim(conn: Connection, volumes: list[Obj] | None, *, name: str = "hub-db-dir") -> None:
    """04's check of the hub's claim, one ``ok`` line each (``kubectl get pvc hub-db-dir -o yaml``): the file's
    access mode and size, and either a volume that claims it back, or (on a ``WaitForFirstConsumer`` class) a
    claim still waiting for its first pod. ``volumes`` is None when you may not read PersistentVolumes.

        >>> nb.check_hub_claim(conn, nb.claimed_volumes(conn))      # doctest: +SKIP
        ok  hub-db-dir is ReadWriteOnce
        ok  hub-db-dir asks for 1Gi
        ok  hub-db-dir is Bound to a volume that claims it back
    """
    claim = kube(conn).get(PVCS.path(conn.namespace, name))
    spec, phase = claim.get("spec") or {}, (claim.get("status") or {}).get("phase")
    check(spec.get("accessModes") == ["ReadWriteOnce"], f"{name} is ReadWriteOnce", str(spec.get("accessModes")))
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    check(size == "1Gi", f"{name} asks for 1Gi", f"it asks for {size}")
    volume = spec.get("volumeName")
    if phase != "Bound":
        check(conn.volume_binding_mode == "WaitForFirstConsumer", f"{name} waits for its first pod",
              f"it is {phase} on a class that binds {conn.volume_binding_mode}")
    elif volumes is None:
        check(volume, f"{name} is Bound to volume {volume}")
        skip("the volume claims it back", "not checked: you may not read PersistentVolumes")
    else:
        check(any(name_of(pv) == volume for pv in volumes), f"{name} is Bound to a volume that claims it back",
              f"no volume of this namespace is named {volume}")
