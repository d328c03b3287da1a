"""Who set which field of an object, and changes made the way ``kubectl edit`` or ``kubectl patch`` make them.

Server-side apply records, per field, which *field manager* set it: ``kubectl`` for ``kubectl apply
--server-side``, ``jhtutorial`` for the helpers, ``kubectl-edit`` and ``kubectl-patch`` for hand edits. The
notebooks show those records and make hand edits as those managers, to show what a later apply does.

    >>> print(nb.field_managers(conn, "role/hub"))   # doctest: +SKIP   (kubectl get role hub --show-managed-fields)
    MANAGER      OPERATION   FIELDS
    jhtutorial   Apply       .metadata.labels, .rules
    >>> nb.change(conn, "configmap/hub-config", {"data": {"k": "v"}}, manager="kubectl-edit")   # doctest: +SKIP
    configmap/hub-config changed by field manager kubectl-edit
"""

from __future__ import annotations

from typing import Any

from ..connect import Connection
from ..errors import TutorialError
from ..kubeapi import (
    CONFIGMAPS,
    DEPLOYMENTS,
    PODS,
    PVCS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    Resource,
)
from .reads import kube
from .tables import table

# the kind names kubectl accepts for the objects of this workbook, as in `kubectl get role/hub`
KINDS: dict[str, Resource] = {
    "serviceaccount": SERVICE_ACCOUNTS, "role": ROLES, "rolebinding": ROLE_BINDINGS, "configmap": CONFIGMAPS,
    "secret": SECRETS, "pvc": PVCS, "persistentvolumeclaim": PVCS, "service": SERVICES, "deployment": DEPLOYMENTS,
    "pod": PODS,
}
PATCH_TYPES = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
               "strategic": "application/strategic-merge-patch+json"}


def named(target: str) -> tuple[Resource, str]:
    """``"role/hub"`` -> (the Role resource, ``"hub"``), as kubectl reads ``KIND/NAME``."""
    kind, _, name = target.partition("/")
    resource = KINDS.get(kind.lower())
    if resource is None or not name:
        raise TutorialError(f"cannot read {target!r} as KIND/NAME",
                            fix="write it as kubectl does, e.g. role/hub or configmap/hub-config; kinds: "
                            + ", ".join(sorted(KINDS)))
    return resource, name


def field_managers(conn: Connection, target: str) -> str:
    """One line per field manager of an object: who set which fields, and how (``Apply``: server-side apply;
    ``Update``: a create, edit, patch or replace). Timestamps are left out."""
    resource, name = named(target)
    entries = (kube(conn).get(resource.path(conn.namespace, name))["metadata"].get("managedFields") or [])
    rows = [(entry.get("manager", "?"), entry.get("operation", "?")
             + (f" ({entry['subresource']})" if entry.get("subresource") else ""),
             ", ".join(field_paths(entry.get("fieldsV1") or {})) or "-") for entry in entries]
    return table(rows, ["MANAGER", "OPERATION", "FIELDS"])


def field_paths(fields: dict[str, Any], prefix: str = "", depth: int = 2) -> list[str]:
    """The paths of a managedFields ``fieldsV1`` tree, ``depth`` levels deep at most:
    ``{"f:metadata": {"f:labels": {...}}, "f:rules": {}}`` -> ``[".metadata.labels", ".rules"]``."""
    paths = []
    for key, below in fields.items():
        if key == ".":
            continue
        path = f"{prefix}.{key.split(':', 1)[1] if ':' in key else key}"
        inner = {k: v for k, v in (below or {}).items() if k != "."}
        if inner and depth > 1 and key.startswith("f:"):
            paths.extend(field_paths(inner, path, depth - 1))
        else:
            paths.append(path)
    return paths


def change(conn: Connection, target: str, patch: Any, *, manager: str, patch_type: str = "merge") -> None:
    """Change an object the way a person at a terminal would, recorded as field manager ``manager``:
    ``kubectl edit`` records ``kubectl-edit``, ``kubectl patch`` ``kubectl-patch``, ``kubectl replace``
    ``kubectl-replace``. ``patch_type``: merge (a JSON merge patch), json (a JSON patch) or strategic."""
    resource, name = named(target)
    kube(conn).call("PATCH", resource.path(conn.namespace, name), query={"fieldManager": manager}, body=patch,
                    content_type=PATCH_TYPES[patch_type])
    print(f"{target} changed by field manager {manager}")
