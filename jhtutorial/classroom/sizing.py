"""How much of the cluster one learner may use: a ResourceQuota and a LimitRange derived from the tutorial.

The numbers are not guessed: they come from the files the learner will apply. The hub and proxy Deployments
(``manifests/deploy-*.yaml``) state each container's requests and limits; the hub's configuration
(``manifests/cm-hub-config.yaml``) states what KubeSpawner gives each user pod (``cpu_guarantee``,
``mem_limit``, ``storage_capacity``...). One learner's tutorial is the hub, the proxy, ``USER_PODS`` user pods
and their claims; the quota is that times ``HEADROOM``, so a rollout, a replaced pod or a second login fit,
and a runaway Deployment does not.

    >>> need = tutorial_needs()
    >>> need.pods, need.claims
    (4, 3)
    >>> quota = resource_quota("room-1", {"jhtutorial/classroom": "room"})
    >>> quota["spec"]["hard"]["pods"]
    '8'

The kubectl equivalent of what this makes: ``kubectl create quota classroom --hard=pods=8,... -n room-1``.

On the local simulated cluster with pod sandboxes the learners' pods run their programs on this machine, and the
quota's requests say nothing of what they really take. There the limit is the machine's memory:
``BACKED_LEARNER_MEMORY`` is what one backed learner takes (measured, see there), and :func:`backed_learners_fit`
says how many more fit in what the kernel reports available (``MemAvailable``).

    >>> backed_learners_fit(available=KEEP_FREE + 3 * BACKED_LEARNER_MEMORY, waiting=1)  # one made, not running
    2
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .. import manifests
from ..errors import ClassroomError

Obj = dict[str, Any]

USER_PODS = 2  # the tutorial logs in as admin; a second user shows that each gets a pod and a claim
HEADROOM = 2  # the quota allows twice what the tutorial needs
QUOTA_NAME = "classroom"
LIMIT_RANGE_NAME = "classroom"
HUB_CONFIG = "cm-hub-config.yaml"
DEPLOYMENTS = ("deploy-hub.yaml", "deploy-proxy.yaml")
# KubeSpawner options that size a user pod, as the hub config names them
SPAWNER_SIZES = {
    "cpu_guarantee": "requests.cpu",
    "mem_guarantee": "requests.memory",
    "cpu_limit": "limits.cpu",
    "mem_limit": "limits.memory",
}
MiB = 2**20
# What one backed learner takes on the local cluster with pod sandboxes: the proportional set size (PSS) of every
# process of their hub's, proxy's and one user server's sandboxes, a user logged in, with the keepers and enter
# commands outside them, plus the control plane's growth per learner (PSS counts a library that many programs
# share once). Measured by `bench/classroom --backed` on the 2-core, 24 GiB machine, two runs: 10 learners logged
# in at once, 290 MiB PSS + 8 to 12 MiB control plane each (MemAvailable, which the machine's other programs move
# too, fell by 275 and 328 MiB per learner); one learner alone, 308 to 311 + 8 to 21 MiB. Rounded up from those.
# With the seccomp filter (a Python process waits outside each container in place of nsenter), one run: at 10
# learners 283 MiB PSS + 8.9 MiB control plane, MemAvailable -312 MiB each; one alone 334 MiB PSS. A room is sized
# by the many, where 320 still covers what was measured.
BACKED_LEARNER_MEMORY = 320 * MiB
# Left to the machine itself (the instructor's own tutorial, JupyterLab, the page cache) when counting what fits.
KEEP_FREE = 1024 * MiB
MEMINFO = "/proc/meminfo"


@dataclass
class Needs:
    """What one learner's tutorial asks of the cluster at its largest (hub, proxy, user pods, claims)."""

    pods: int = 0
    claims: int = 0
    services: int = 0
    node_ports: int = 0
    amounts: dict[str, Decimal] | None = None  # requests.cpu, limits.memory, requests.storage, ...
    largest_container: dict[str, Decimal] | None = None  # limits.cpu / limits.memory of the biggest container
    smallest_container: dict[str, Decimal] | None = None  # requests and limits of the smallest one
    largest_claim: Decimal = Decimal(0)


def tutorial_needs() -> Needs:
    """Add up the tutorial's pods, containers and claims from the manifests and the hub config."""
    need = Needs(amounts={}, largest_container={}, smallest_container={})
    containers: list[dict[str, Decimal]] = []
    for name in DEPLOYMENTS:
        for deployment in manifests.load_manifest(name):
            spec = deployment["spec"]
            replicas = int(spec.get("replicas", 1))
            need.pods += replicas
            for container in spec["template"]["spec"].get("containers", []):
                sizes = _container_sizes(container)
                containers.extend([sizes] * replicas)
    spawner = spawner_settings()
    user = {key: parse_quantity(str(spawner[option])) for option, key in SPAWNER_SIZES.items() if option in spawner}
    containers.extend([user] * USER_PODS)
    need.pods += USER_PODS
    for sizes in containers:
        for key, value in sizes.items():
            need.amounts[key] = need.amounts.get(key, Decimal(0)) + value
    for key in ("limits.cpu", "limits.memory"):
        need.largest_container[key] = max(c.get(key, Decimal(0)) for c in containers)
    for key in ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory"):
        need.smallest_container[key] = min(c[key] for c in containers if key in c)
    storage = [parse_quantity(pvc["spec"]["resources"]["requests"]["storage"]) for pvc in _objects("PersistentVolumeClaim")]
    storage += [parse_quantity(spawner.get("storage_capacity", "1Gi"))] * USER_PODS
    need.claims = len(storage)
    need.amounts["requests.storage"] = sum(storage, Decimal(0))
    need.largest_claim = max(storage)
    services = _objects("Service")
    need.services = len(services)
    need.node_ports = sum(1 for s in services if s["spec"].get("type") in ("NodePort", "LoadBalancer"))
    return need


def spawner_settings() -> dict[str, Any]:
    """``c.KubeSpawner.NAME = constant`` lines of the hub's configuration, read without running it."""
    code = next(obj for obj in manifests.load_manifest(HUB_CONFIG))["data"]["jupyterhub_config.py"]
    found: dict[str, Any] = {}
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
                and target.value.attr == "KubeSpawner" and isinstance(node.value, ast.Constant)):
            found[target.attr] = node.value.value
    return found


def resource_quota(namespace: str, labels: dict[str, str], need: Needs | None = None) -> Obj:
    """The learner's ResourceQuota: the tutorial's needs times HEADROOM."""
    need = need or tutorial_needs()
    hard = {key: _quantity(value * HEADROOM, key) for key, value in sorted((need.amounts or {}).items())}
    hard.update({
        "pods": str(need.pods * HEADROOM),
        "persistentvolumeclaims": str(need.claims * HEADROOM),
        "services": str(need.services * HEADROOM),
        "services.nodeports": str(need.node_ports * HEADROOM),
        "services.loadbalancers": "0",  # a learner's hub stays inside the cluster (and its node port)
    })
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": QUOTA_NAME, "namespace": namespace, "labels": labels}, "spec": {"hard": hard}}


def limit_range(namespace: str, labels: dict[str, str], need: Needs | None = None) -> Obj:
    """The learner's LimitRange: defaults for containers that state nothing (a quota on requests refuses
    such pods otherwise), and no container or claim larger than the tutorial's largest, times HEADROOM."""
    need = need or tutorial_needs()
    small = need.smallest_container or {}
    large = need.largest_container or {}
    container = {
        "type": "Container",
        "defaultRequest": {"cpu": _quantity(small["requests.cpu"], "cpu"),
                           "memory": _quantity(small["requests.memory"], "memory")},
        "default": {"cpu": _quantity(small["limits.cpu"], "cpu"), "memory": _quantity(small["limits.memory"], "memory")},
        "max": {"cpu": _quantity(large["limits.cpu"] * HEADROOM, "cpu"),
                "memory": _quantity(large["limits.memory"] * HEADROOM, "memory")},
    }
    claim = {"type": "PersistentVolumeClaim", "max": {"storage": _quantity(need.largest_claim * HEADROOM, "storage")}}
    return {"apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": LIMIT_RANGE_NAME, "namespace": namespace, "labels": labels},
            "spec": {"limits": [container, claim]}}


def _container_sizes(container: Obj) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    return {f"{part}.{name}": parse_quantity(value)
            for part in ("requests", "limits") for name, value in (resources.get(part) or {}).items()}


def _objects(kind: str) -> list[Obj]:
    return [obj for files in manifests.load_all().values() for obj in files if obj.get("kind") == kind]


def _quantity(value: Decimal, key: str) -> str:
    """A readable Kubernetes quantity, rounded up: millicores for CPU, Mi for bytes."""
    if key.endswith("cpu"):
        return f"{math.ceil(value * 1000)}m"
    return f"{math.ceil(value / (1024 * 1024))}Mi"


# --- learners backed on this machine ---------------------------------------------------------------


def mem_available(meminfo: str = MEMINFO) -> int:
    """Bytes the kernel says can be used without swapping (``MemAvailable``)."""
    with open(meminfo) as lines:
        for line in lines:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise ClassroomError(f"{meminfo} has no MemAvailable line", fix="a Linux kernel 3.14 or newer reports it")


def backed_learners_fit(*, available: int, waiting: int = 0) -> int:
    """How many more backed learners fit in ``available`` bytes, after ``KEEP_FREE`` and the learners already
    made backed whose pods do not run yet (``waiting``: their memory is not taken yet, but will be)."""
    spare = available - KEEP_FREE - waiting * BACKED_LEARNER_MEMORY
    return max(0, spare // BACKED_LEARNER_MEMORY)


def check_backed_learners(asked: int, *, waiting: int = 0, available: int | None = None) -> str:
    """The line `classroom up` prints for ``asked`` new backed learners; ClassroomError when they do not fit."""
    available = mem_available() if available is None else available
    fit = backed_learners_fit(available=available, waiting=waiting)
    each = f"{BACKED_LEARNER_MEMORY / MiB:.0f} MiB"
    counted = (f"{available / MiB:.0f} MiB available (MemAvailable), {KEEP_FREE / MiB:.0f} MiB kept free"
               + (f", {waiting} backed learner(s) made whose pods do not run yet" if waiting else ""))
    if asked > fit:
        raise ClassroomError(
            f"{asked} more backed learner(s) do not fit this machine: each takes about {each} (hub, proxy and one "
            f"user server in sandboxes, measured), and {counted}: {fit} fit",
            fix=f"ask for at most {fit} more, or keep learners purely simulated with `--simulated` (every "
                "Kubernetes object and check stays real, their hubs do not answer), or free memory; nothing was made")
    return f"backed learners: {fit} more fit this machine (about {each} each; {counted}); {asked} asked"
