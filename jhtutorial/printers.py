"""The columns of ``kubectl get``, computed from the objects the way the API server's table printers do.

``kubectl get`` asks the API server for a table; this module computes the same cells from the objects,
so that a notebook table captioned ``kubectl get KIND`` shows what that command prints. The columns that
hold a moment in time (AGE, CREATED AT, the "(5m ago)" after a restart count) are left out: a committed
notebook must not change with the clock.

    >>> pvc = {"metadata": {"name": "hub-db-dir"}, "spec": {"volumeName": "pvc-1", "storageClassName": "standard"},
    ...        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}
    >>> columns("pvc").headers
    ('NAME', 'STATUS', 'VOLUME', 'CAPACITY', 'ACCESS MODES', 'STORAGECLASS', 'VOLUMEATTRIBUTESCLASS')
    >>> columns("pvc").row(pvc)               # kubectl get pvc hub-db-dir (without AGE)
    ('hub-db-dir', 'Bound', 'pvc-1', '1Gi', 'RWO', 'standard', '<unset>')
    >>> custom_row(pvc, {"NAME": ".metadata.name", "MODE": ".spec.volumeMode"})   # -o custom-columns=...
    ('hub-db-dir', '<none>')

What kubectl has no column for is shown with ``-o custom-columns=NAME:PATH,...`` (scalar fields only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import TutorialError
from .kubeapi import (
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    PODS,
    PVCS,
    PVS,
    REPLICASETS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STORAGE_CLASSES,
    Resource,
)
from .objects import is_default_storage_class, name_of, pod_restarts, pod_status, ready_containers

Obj = dict[str, Any]
Row = tuple[str, ...]
NONE = "<none>"  # kubectl's word for an empty cell (custom columns, EXTERNAL-IP)
UNSET = "<unset>"  # and for an unset list or class (EndpointSlice PORTS/ENDPOINTS, VOLUMEATTRIBUTESCLASS)


@dataclass(frozen=True)
class Columns:
    """How ``kubectl get KIND`` prints one kind: its headers and one row per object (time columns left out);
    ``wide_*``: the columns ``-o wide`` adds."""

    resource: Resource
    headers: tuple[str, ...]
    row: Callable[[Obj], Row]
    wide_headers: tuple[str, ...] = ()
    wide_row: Callable[[Obj], Row] | None = None


def _name(obj: Obj) -> str:
    return name_of(obj)


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


# --- Services, endpoints, volumes ---------------------------------------------------------------------


def _external_ip(service: Obj) -> str:
    spec = _spec(service)
    external = spec.get("externalIPs") or []
    kind = spec.get("type", "ClusterIP")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or NONE
    if kind == "LoadBalancer":
        ingress = (_status(service).get("loadBalancer") or {}).get("ingress") or []
        addresses = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        return ",".join([*addresses, *external]) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_ports(service: Obj) -> str:
    pieces = []
    for port in _spec(service).get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        pieces.append(f"{port['port']}{node}/{port.get('protocol', 'TCP')}")
    return ",".join(pieces) or NONE


def _first_three(values: list[str]) -> str:
    """kubectl's list cell: up to three values, then "+ N more...", or <unset> when empty."""
    if not values:
        return UNSET
    shown = ",".join(values[:3])
    return shown + (f" + {len(values) - 3} more..." if len(values) > 3 else "")


def _slice_ports(endpoint_slice: Obj) -> str:
    return _first_three([str(p["port"]) if p.get("port") is not None else p.get("name") or "*"
                         for p in endpoint_slice.get("ports") or []])


def _slice_endpoints(endpoint_slice: Obj) -> str:
    return _first_three([address for endpoint in endpoint_slice.get("endpoints") or []
                         for address in endpoint.get("addresses") or []])


ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: list[str] | None) -> str:
    """ACCESS MODES as kubectl abbreviates them, in its fixed order: RWO, ROX, RWX, RWOP."""
    return ",".join(short for mode, short in ACCESS_MODES if mode in (modes or []))


def _volume_class(obj: Obj, annotation: str) -> str:
    return _spec(obj).get("storageClassName") or ((obj.get("metadata") or {}).get("annotations") or {}).get(
        annotation, "")


def _pvc_row(pvc: Obj) -> Row:
    bound = bool(_spec(pvc).get("volumeName"))
    return (_name(pvc), "Terminating" if _deleting(pvc) else _status(pvc).get("phase", ""),
            _spec(pvc).get("volumeName", ""),
            ((_status(pvc).get("capacity") or {}).get("storage", "") if bound else ""),
            access_modes(_status(pvc).get("accessModes")) if bound else "",
            _volume_class(pvc, "volume.beta.kubernetes.io/storage-class"),
            _spec(pvc).get("volumeAttributesClassName") or UNSET)


def _pv_row(pv: Obj) -> Row:
    claim = _spec(pv).get("claimRef")
    return (_name(pv), (_spec(pv).get("capacity") or {}).get("storage", ""), access_modes(_spec(pv).get("accessModes")),
            _spec(pv).get("persistentVolumeReclaimPolicy", ""),
            "Terminating" if _deleting(pv) else _status(pv).get("phase", ""),
            f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else "",
            _volume_class(pv, "volume.beta.kubernetes.io/storage-class"),
            _spec(pv).get("volumeAttributesClassName") or UNSET, _status(pv).get("reason", ""))


def _storage_class_row(storage_class: Obj) -> Row:
    return (_name(storage_class) + (" (default)" if is_default_storage_class(storage_class) else ""),
            storage_class.get("provisioner", ""), storage_class.get("reclaimPolicy") or "Delete",
            storage_class.get("volumeBindingMode") or "Immediate",
            str(bool(storage_class.get("allowVolumeExpansion"))).lower())


def _subjects(binding: Obj) -> Row:
    """USERS, GROUPS, SERVICEACCOUNTS of a binding (``-o wide``); a ServiceAccount as NAMESPACE/NAME."""
    users, groups, accounts = [], [], []
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "User":
            users.append(subject.get("name", ""))
        elif kind == "Group":
            groups.append(subject.get("name", ""))
        elif kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
    return ", ".join(users), ", ".join(groups), ", ".join(accounts)


def _selector(service: Obj) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((_spec(service).get("selector") or {}).items())) or NONE


# kind -> its columns; the names a learner types for kubectl get, and their short forms
COLUMNS: dict[str, Columns] = {
    "pods": Columns(PODS, ("NAME", "READY", "STATUS", "RESTARTS"),
                    lambda o: (_name(o), ready_containers(o), pod_status(o), str(pod_restarts(o))),
                    ("IP", "NODE"), lambda o: (_status(o).get("podIP") or NONE, _spec(o).get("nodeName") or NONE)),
    "services": Columns(SERVICES, ("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"),
                        lambda o: (_name(o), _spec(o).get("type", "ClusterIP"),
                                   (_spec(o).get("clusterIPs") or [NONE])[0], _external_ip(o), _service_ports(o)),
                        ("SELECTOR",), lambda o: (_selector(o),)),
    "endpointslices": Columns(ENDPOINT_SLICES, ("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS"),
                              lambda o: (_name(o), o.get("addressType", ""), _slice_ports(o), _slice_endpoints(o))),
    "deployments": Columns(DEPLOYMENTS, ("NAME", "READY", "UP-TO-DATE", "AVAILABLE"),
                           lambda o: (_name(o), f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}",
                                      str(_status(o).get("updatedReplicas", 0)),
                                      str(_status(o).get("availableReplicas", 0)))),
    "replicasets": Columns(REPLICASETS, ("NAME", "DESIRED", "CURRENT", "READY"),
                           lambda o: (_name(o), str(_spec(o).get("replicas", 1)), str(_status(o).get("replicas", 0)),
                                      str(_status(o).get("readyReplicas", 0)))),
    "pvc": Columns(PVCS, ("NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                          "VOLUMEATTRIBUTESCLASS"), _pvc_row),
    "pv": Columns(PVS, ("NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS",
                        "VOLUMEATTRIBUTESCLASS", "REASON"), _pv_row),
    "storageclasses": Columns(STORAGE_CLASSES, ("NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                                                "ALLOWVOLUMEEXPANSION"), _storage_class_row),
    "configmaps": Columns(CONFIGMAPS, ("NAME", "DATA"),
                          lambda o: (_name(o), str(len(o.get("data") or {}) + len(o.get("binaryData") or {})))),
    "secrets": Columns(SECRETS, ("NAME", "TYPE", "DATA"),
                       lambda o: (_name(o), o.get("type", ""), str(len(o.get("data") or {})))),
    "serviceaccounts": Columns(SERVICE_ACCOUNTS, ("NAME",), lambda o: (_name(o),)),
    "roles": Columns(ROLES, ("NAME",), lambda o: (_name(o),)),
    "rolebindings": Columns(ROLE_BINDINGS, ("NAME", "ROLE"),
                            lambda o: (_name(o), f"{o['roleRef']['kind']}/{o['roleRef']['name']}"),
                            ("USERS", "GROUPS", "SERVICEACCOUNTS"), _subjects),
}
ALIASES = {"pod": "pods", "po": "pods", "service": "services", "svc": "services", "endpointslice": "endpointslices",
           "deployment": "deployments", "deploy": "deployments", "replicaset": "replicasets", "rs": "replicasets",
           "persistentvolumeclaims": "pvc", "persistentvolumeclaim": "pvc", "persistentvolumes": "pv",
           "persistentvolume": "pv", "storageclass": "storageclasses", "sc": "storageclasses",
           "configmap": "configmaps", "cm": "configmaps", "secret": "secrets", "serviceaccount": "serviceaccounts",
           "sa": "serviceaccounts", "role": "roles", "rolebinding": "rolebindings"}


def columns(kind: str) -> Columns:
    """The columns of ``kubectl get KIND`` (``pods``, ``svc``, ``pvc``, ...)."""
    key = ALIASES.get(kind, kind)
    if key not in COLUMNS:
        raise TutorialError(f"no kubectl-like table for {kind!r}",
                            fix="use one of: " + ", ".join(sorted(COLUMNS)))
    return COLUMNS[key]


def table_rows(kind: str, objects: list[Obj], *, wide: bool = False) -> tuple[tuple[str, ...], list[Row]]:
    """Headers and rows of ``kubectl get KIND [-o wide]`` for these objects (time columns left out)."""
    found = columns(kind)
    if not wide or found.wide_row is None:
        return found.headers, [found.row(obj) for obj in objects]
    wide_row = found.wide_row
    return (*found.headers, *found.wide_headers), [(*found.row(obj), *wide_row(obj)) for obj in objects]


# --- -o custom-columns --------------------------------------------------------------------------------

_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")


def field_value(obj: Obj, path: str) -> str:
    """One cell of ``-o custom-columns=NAME:PATH``: ``.metadata.name``, ``.spec.ports[0].port``; <none> when
    the field is not set; booleans as ``true``/``false``. Scalar fields only."""
    text = path if path.startswith((".", "[")) else f".{path}"
    steps = _STEP.findall(text)
    if "".join(f".{key}" if key else f"[{index}]" for key, index in steps) != text:
        raise TutorialError(f"cannot read the path {path!r}", fix="use .field.field[0] paths, as in custom-columns")
    value: Any = obj
    for key, index in steps:
        if key:
            value = value.get(key) if isinstance(value, dict) else None
        else:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        if value is None:
            return NONE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        raise TutorialError(f"{path} is not a single value", fix="name a field inside it, e.g. PATH[0] or PATH.name")
    return str(value)


def custom_row(obj: Obj, fields: dict[str, str]) -> Row:
    """One row of ``-o custom-columns=HEADER:PATH,...``."""
    return tuple(field_value(obj, path) for path in fields.values())
