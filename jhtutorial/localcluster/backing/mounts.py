"""A pod's volumes and environment, as a container would see them, under one folder on this machine.

Every backed pod gets a folder ``root/`` holding what the pod mounts, at the
same paths; each is bound into the pod's sandbox at its ``mountPath``
(:mod:`.sandboxed_pod`):

- a ConfigMap or Secret volume becomes files at ``root/MOUNTPATH/KEY`` (a
  ``subPath`` mount: the one file at ``root/MOUNTPATH``), written from the
  objects as the API server holds them when the pod starts, each created with
  its mode (``defaultMode``, an item's ``mode``; 0644 when neither is given,
  as the kubelet does), never wider first; the pod's folder is 0700;
- an emptyDir becomes an empty folder at ``root/MOUNTPATH``;
- a PersistentVolumeClaim becomes a link ``root/MOUNTPATH`` to the folder of
  its bound volume (the hostPath provisioner's ``/tmp/hostpath_pv/pvc-...``),
  so what a program writes there outlives the pod, as on a real cluster.

No other folder of this machine is ever linked into a pod: a ``hostPath``
volume is not mounted (Pod Security ``restricted`` refuses such pods in the
tutorial's namespaces anyway), and a PVC's folder only when the volume is the
one the provisioner made for exactly that claim, under its folder.

    >>> files = PodFiles(pod, folder, kube)          # doctest: +SKIP
    >>> files.write()
    >>> files.mounts["/etc/nginx/nginx.conf"]
    PosixPath('/root/.local/state/jhtutorial/backing/pods/ns/proxy-.../root/etc/nginx/nginx.conf')

The environment (:func:`container_env`) follows the same rules as the kubelet:
plain values, values from Secrets and ConfigMaps, the downward API, and
``$(NAME)`` references in command and arguments.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import TutorialError
from ...kubeapi import CONFIGMAPS, PVCS, PVS, SECRETS, KubeApi
from ..paths import HOSTPATH_ROOT, private_dir

Obj = dict[str, Any]
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
HOSTPATH_PROVISIONER = "kubernetes.io/host-path"


class NotReadyYet(TutorialError):
    """Something the pod needs is not there yet (a PVC not bound, a Secret missing): try again soon."""


@dataclass
class PodFiles:
    """The folders and files that stand for one pod's mounts."""

    pod: Obj
    folder: Path
    kube: KubeApi
    mounts: dict[str, Path] = field(default_factory=dict)  # container path -> path on this machine

    @property
    def root(self) -> Path:
        return self.folder / "root"

    def write(self) -> None:
        """Write every volume every container of the pod mounts (raises NotReadyYet while one is missing)."""
        namespace = self.pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in (self.pod.get("spec") or {}).get("volumes") or []}
        private_dir(self.folder)
        self.root.mkdir(exist_ok=True)
        sources: dict[str, Path] = {}
        for name, volume in volumes.items():
            source = self._volume(namespace, name, volume)
            if source is not None:
                sources[name] = source
        for container in self._containers():
            for mount in container.get("volumeMounts") or []:
                source = sources.get(mount["name"])
                if source is None:
                    continue
                inside = mount["mountPath"].rstrip("/") or "/"
                if ".." in Path(inside).parts:
                    raise TutorialError(f"volume mount {mount['name']}: mountPath {inside} climbs out with '..'")
                if mount.get("subPath"):
                    source = _inside(source, mount["subPath"], f"subPath of volume mount {mount['name']}")
                target = self.root / inside.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
                if source.is_dir() and volumes[mount["name"]].get("persistentVolumeClaim"):
                    target.symlink_to(source, target_is_directory=True)
                else:
                    _copy_with_modes(source, target)
                self.mounts[inside] = target

    # --- volumes ------------------------------------------------------------------------

    def _containers(self) -> list[Obj]:
        spec = self.pod.get("spec") or {}
        return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]

    def _volume(self, namespace: str, name: str, volume: Obj) -> Path | None:
        staging = self.folder / "volumes" / name
        if "configMap" in volume or "secret" in volume:
            is_secret = "secret" in volume
            ref = volume["secret"] if is_secret else volume["configMap"]
            object_name = ref.get("secretName") if is_secret else ref.get("name")
            resource = SECRETS if is_secret else CONFIGMAPS
            found = self.kube.get_or_none(resource.path(namespace, object_name))
            if found is None:
                if ref.get("optional"):
                    return None
                raise NotReadyYet(f"{resource.kind} {object_name} (volume {name}) does not exist yet")
            data: dict[str, bytes] = {}
            if is_secret:
                data = {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
            else:
                data = {k: v.encode() for k, v in (found.get("data") or {}).items()}
                data.update({k: base64.b64decode(v) for k, v in (found.get("binaryData") or {}).items()})
            default_mode = int(ref.get("defaultMode", 0o644))
            items = ref.get("items")
            files = {item.get("path", item["key"]): (data[item["key"]], int(item.get("mode", default_mode)))
                     for item in items if item["key"] in data} if items else \
                {key: (value, default_mode) for key, value in data.items()}
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            for relative, (content, mode) in files.items():
                path = _inside(staging, relative, f"item path of volume {name}")
                path.parent.mkdir(parents=True, exist_ok=True)
                create_file(path, mode, content)
            return staging
        if "emptyDir" in volume:
            staging.mkdir(parents=True, exist_ok=True)
            staging.chmod(0o777)  # as the kubelet makes it: whichever user the pod runs as may write it
            return staging
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            pvc = self.kube.get_or_none(PVCS.path(namespace, claim))
            volume_name = ((pvc or {}).get("spec") or {}).get("volumeName")
            if not volume_name or ((pvc or {}).get("status") or {}).get("phase") != "Bound":
                raise NotReadyYet(f"PVC {claim} is not bound yet")
            pv = self.kube.get_or_none(PVS.path(name=volume_name)) or {}
            folder = _provisioned_folder(pv, pvc or {})
            if folder is None:
                raise NotReadyYet(f"volume {volume_name} of PVC {claim} is not a folder the hostPath provisioner made "
                                  f"for this claim under {HOSTPATH_ROOT}: no other folder of this machine is mounted")
            folder.mkdir(exist_ok=True)
            return folder
        return None  # projected tokens, hostPath, ...: not needed by the tutorial's pods


def _provisioned_folder(pv: Obj, pvc: Obj) -> Path | None:
    """The PV's folder if the hostPath provisioner made it for exactly this PVC, directly under its own folder."""
    claim = (pv.get("spec") or {}).get("claimRef") or {}
    pvc_meta = pvc.get("metadata") or {}
    if ((pv.get("metadata") or {}).get("annotations") or {}).get(PROVISIONED_BY) != HOSTPATH_PROVISIONER:
        return None  # a PV someone wrote by hand may name any folder of the machine
    if (claim.get("namespace"), claim.get("name"), claim.get("uid")) != \
            (pvc_meta.get("namespace"), pvc_meta.get("name"), pvc_meta.get("uid")):
        return None
    text = str(((pv.get("spec") or {}).get("hostPath") or {}).get("path") or "")
    folder = Path(os.path.normpath(text)) if text.startswith("/") else None
    if folder is None or folder.parent != HOSTPATH_ROOT or (folder.is_symlink()):
        return None
    return folder


def _inside(folder: Path, relative: str, what: str) -> Path:
    """``folder/relative``, refused (TutorialError) when it would lead out of ``folder`` (``..``, a link)."""
    path = folder / relative
    if relative.startswith("/") or not path.resolve().is_relative_to(folder.resolve()):
        raise TutorialError(f"{what} {relative!r} leads out of the volume")
    return path


def create_file(path: Path, mode: int, content: bytes) -> None:
    """Write a new file that has ``mode`` from the moment it exists (never wider first, whatever the umask).

    Whatever is at ``path`` (a file from before, a link planted there) is removed, not written through."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o777)
    try:
        os.fchmod(fd, mode & 0o777)  # the umask may have narrowed the mode asked for: make it exact
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def replace_file(path: Path, mode: int, content: bytes) -> None:
    """Put a new file with ``mode`` at ``path`` in one step: a reader sees the old content or the new, never a
    missing or half-written file (a new file beside it, made by :func:`create_file`, renamed over it)."""
    beside = path.with_name(f".{path.name}.{os.getpid()}.new")
    create_file(beside, mode, content)
    os.replace(beside, path)


def _copy_with_modes(source: Path, target: Path) -> None:
    """Copy a volume's staged file or folder to its mount path; each file created with its own mode."""
    if source.is_dir():
        target.mkdir(mode=0o700)
        for entry in sorted(source.iterdir()):
            _copy_with_modes(entry, target / entry.name)
        target.chmod(stat.S_IMODE(source.stat().st_mode))
    else:
        create_file(target, stat.S_IMODE(source.stat().st_mode), source.read_bytes())


def apply_fs_group(folder: Path, gid: int, *, writable: bool = True) -> None:
    """What the kubelet does for a pod's ``fsGroup`` (policy OnRootMismatch): the volume's files belong to the
    group, which may read them (and write them, in a writable volume), and new files inherit it (set-group-ID
    folders). Nothing is done when the volume's top folder has that group already.

    The volume is written by the pods that mount it, while this runs (another pod of the same claim, the
    previous pod of a rolling update): a name seen as a file may be a link to a file of the machine a moment
    later, and so may a folder above it. So nothing is looked up by path: each folder is opened from the one
    above it and each entry from its folder, never through a link (``os.fwalk``, ``O_NOFOLLOW``), and the
    group and mode are set on what was opened.
    """
    folder_bits, file_bits = (0o2070, 0o060) if writable else (0o2050, 0o040)
    top = folder.stat()
    if top.st_gid == gid and top.st_mode & folder_bits == folder_bits:
        return
    bits = (folder_bits, file_bits)
    for where, folders, files, folder_fd in os.fwalk(folder, follow_symlinks=False):
        for name in ([".", *folders] if where == str(folder) else folders) + files:
            _set_group(name, folder_fd, gid, bits)


def _set_group(name: str, folder_fd: int, gid: int, bits: tuple[int, int]) -> None:
    """``name`` in the open folder ``folder_fd``, unless it is a link (or gone): group ``gid``, the mode bits
    of ``bits`` added (the first for a folder, the second for anything else)."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=folder_fd)
    except FileNotFoundError:
        return  # removed meanwhile by a pod of the volume
    try:
        info = os.fstat(fd)
        if stat.S_ISLNK(info.st_mode):
            return
        # the opened file itself, through its descriptor: a name swapped for a link since cannot redirect this
        os.chown(f"/proc/self/fd/{fd}", -1, gid)
        os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(info.st_mode) | bits[0 if stat.S_ISDIR(info.st_mode) else 1])
    finally:
        os.close(fd)


def container_env(pod: Obj, container: Obj, kube: KubeApi, *, pod_ip: str) -> dict[str, str]:
    """The container's environment as the kubelet builds it (Secrets and the downward API resolved; ``pod_ip``:
    the pod's IP, which its status may not carry yet)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for key, value in _object_data(kube, namespace, source).items():
            env[prefix + key] = value
    for item in container.get("env") or []:
        ref = item.get("valueFrom") or {}
        if not ref:
            # an empty value is stored without its `value` field (KubeSpawner's JUPYTERHUB_HOST): the kubelet
            # still sets the variable, to ""
            env[item["name"]] = expand(item.get("value", ""), env)
            continue
        if "fieldRef" in ref:
            env[item["name"]] = _field(pod, ref["fieldRef"]["fieldPath"], pod_ip)
        elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
            key_ref = ref.get("secretKeyRef") or ref.get("configMapKeyRef")
            data = _object_data(kube, namespace, {("secretRef" if "secretKeyRef" in ref else "configMapRef"): key_ref})
            if key_ref["key"] in data:
                env[item["name"]] = data[key_ref["key"]]
            elif not key_ref.get("optional"):
                raise NotReadyYet(f"key {key_ref['key']} of {key_ref.get('name')} (env {item['name']}) is missing")
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(NAME)`` expansion: known names are replaced, ``$$`` escapes, unknown ones stay."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def _object_data(kube: KubeApi, namespace: str, source: Obj) -> dict[str, str]:
    is_secret = "secretRef" in source
    ref = source.get("secretRef") or source.get("configMapRef") or {}
    found = kube.get_or_none((SECRETS if is_secret else CONFIGMAPS).path(namespace, ref.get("name")))
    if found is None:
        if ref.get("optional"):
            return {}
        raise NotReadyYet(f"{'Secret' if is_secret else 'ConfigMap'} {ref.get('name')} does not exist yet")
    data = found.get("data") or {}
    if is_secret:
        return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
    return dict(data)


def _field(pod: Obj, path: str, pod_ip: str) -> str:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    labels = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if labels:
        return str((meta.get(labels.group(1)) or {}).get(labels.group(2), ""))
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.hostIP": status.get("hostIP"),
    }
    return str(values.get(path) or "")

