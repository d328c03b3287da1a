"""The manifests read as data: which key of which ConfigMap or Secret lands where, and what each
container may do.

    >>> hub = nb.manifest_objects("deploy-hub.yaml")     # doctest: +SKIP
    >>> nb.secret_env(hub)                              # doctest: +SKIP   (kubectl get deploy hub -o yaml)
    [('hub/hub', 'CONFIGPROXY_AUTH_TOKEN', 'hub-secret', 'proxy.token')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import manifests
from ..enforcement import (CAPS_DROPPED, NON_ROOT, PRIV_ESCALATION, READ_ONLY_ROOT, SECCOMP, USER, Enforcement)
from ..objects import name_of
from .tables import table

Obj = dict[str, Any]


def manifest_objects(*names: str) -> list[Obj]:
    """Every object of the named manifest files, in file order."""
    return [obj for name in names for obj in manifests.load_manifest(name)]


def mounted_files(deployments: list[Obj], volume_kind: str) -> list[tuple[str, str, str, str, str]]:
    """Where each key of each ConfigMap (``volume_kind="configMap"``) or Secret lands in which container:
    (source, key, deployment/container, path, follows edits)."""
    rows = []
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v[volume_kind] for v in spec.get("volumes") or [] if volume_kind in v}
        for container in spec.get("containers") or []:
            for mount in container.get("volumeMounts") or []:
                source = volumes.get(mount["name"])
                if source is None:
                    continue
                name = source.get("name") or source.get("secretName")
                where = f"{name_of(deployment)}/{container['name']}"
                if mount.get("subPath"):
                    rows.append((name, mount["subPath"], where, mount["mountPath"], "no (subPath)"))
                else:
                    keys = _keys_of(volume_kind, name)
                    rows.extend((name, key, where, f"{mount['mountPath'].rstrip('/')}/{key}", "yes (folder)")
                                for key in keys)
    return rows


def _keys_of(volume_kind: str, name: str) -> list[str]:
    kind = {"configMap": "ConfigMap", "secret": "Secret"}[volume_kind]
    for obj in manifest_objects(*manifests.MANIFEST_FILES):
        if obj["kind"] == kind and name_of(obj) == name:
            return sorted({**(obj.get("data") or {}), **(obj.get("stringData") or {})})
    return ["(all keys)"]


def secret_env(deployments: list[Obj]) -> list[tuple[str, str, str, str]]:
    """Every environment variable filled from a Secret: (deployment/container, variable, secret, key)."""
    rows = []
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"].get("containers") or []:
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    rows.append((f"{name_of(deployment)}/{container['name']}", env["name"], ref["name"], ref["key"]))
    return rows


@dataclass(frozen=True)
class ContainerSettings:
    """What one container may do: its non-root and least-privilege settings, the container's over the pod's."""

    where: str  # "component/container" (hub/hub, proxy/nginx) or the container's name
    user: int | str  # runAsUser, or "(image)" when the image decides
    non_root: bool
    privilege_escalation: bool
    capabilities_dropped: str
    read_only_root: bool
    seccomp: str


def container_settings(pod_spec: Obj, owner: str = "") -> list[ContainerSettings]:
    """The settings of every container of a pod spec (a manifest's template or a running pod's);
    ``owner`` prefixes ``where`` (``hub/``)."""
    pod_context = pod_spec.get("securityContext") or {}
    found = []
    for container in pod_spec.get("containers") or []:
        context = container.get("securityContext") or {}
        found.append(ContainerSettings(
            where=f"{owner}/{container['name']}" if owner else container["name"],
            user=context.get("runAsUser", pod_context.get("runAsUser", "(image)")),
            non_root=bool(context.get("runAsNonRoot", pod_context.get("runAsNonRoot", False))),
            privilege_escalation=bool(context.get("allowPrivilegeEscalation", True)),
            capabilities_dropped=",".join((context.get("capabilities") or {}).get("drop") or []) or "-",
            read_only_root=bool(context.get("readOnlyRootFilesystem", False)),
            seccomp=((context.get("seccompProfile") or pod_context.get("seccompProfile")) or {}).get("type", "-"),
        ))
    return found


def security_settings(pod_spec: Obj, enforced: Enforcement | None = None) -> str:
    """What each container of a pod may do, as a table: the non-root and least-privilege settings; with
    ``enforced`` (:func:`jhtutorial.enforcement.enforcement`), a last row saying which of them hold where the
    pod runs, and a line saying why."""
    columns = (USER, NON_ROOT, PRIV_ESCALATION, CAPS_DROPPED, READ_ONLY_ROOT, SECCOMP)
    rows = [(c.where, c.user, str(c.non_root).lower(), str(c.privilege_escalation).lower(), c.capabilities_dropped,
             str(c.read_only_root).lower(), c.seccomp) for c in container_settings(pod_spec)]
    if enforced is not None:
        rows.append(("(enforced here)", *(enforced.says(column) for column in columns)))
    shown = table(rows, ("CONTAINER", *columns))
    return shown if enforced is None else f"{shown}\n{enforced.note()}"


def manifest_value(name: str, key: str) -> str:
    """One ``data`` key of the first object of a manifest file, as the file has it: what an apply puts back."""
    return str((manifest_objects(name)[0].get("data") or {})[key])
