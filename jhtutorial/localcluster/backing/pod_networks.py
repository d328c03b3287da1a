"""The pod networks of one supervisor: a router per backed namespace with pods, made and removed with them.

What kube-proxy and the network plugin do on a node, for sandboxed pods: the
first pod of a namespace makes its router (:class:`.network.NamespaceNetwork`)
and the ``kubernetes`` Service's relay in it (:mod:`.apiserver_relay`); each pod
is joined with its pod IP; each Service's ClusterIP is set to the ready pods
behind it; the last pod's going removes the router.

Routers outlive a supervisor killed with SIGKILL; the names of those this
supervisor made are kept in its folder, so the next one (or ``cluster down``)
removes exactly those, never another cluster's.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...errors import SandboxError
from .apiserver_relay import ApiServerRelay
from .network import POD_CIDR, NamespaceNetwork, ServiceRoute, delete_router

ROUTERS_FILE = "routers"


class PodNetworks:
    def __init__(self, folder: Path, api_port: int) -> None:
        self.record = folder / ROUTERS_FILE
        self.relay = ApiServerRelay(api_port)
        self._routers: dict[str, NamespaceNetwork] = {}
        self._members: dict[str, set[str]] = {}
        self._applied: dict[str, tuple[ServiceRoute, ...]] = {}
        self._addresses: dict[str, str] = {}  # "namespace/pod" -> pod IP
        self._lock = threading.Lock()

    def address_for(self, namespace: str, pod: str, wanted: str | None, base: str, seed: int) -> str:
        """A pod IP for a pod: ``wanted`` (its status.podIP) when free, else one of ``base``.128-254."""
        with self._lock:
            taken = set(self._addresses.values())
            key = f"{namespace}/{pod}"
            if key in self._addresses:
                return self._addresses[key]
            if wanted and ipaddress.ip_address(wanted) in POD_CIDR and wanted not in taken:
                chosen = wanted
            else:
                candidates = [f"{base}.{128 + (seed + n) % 127}" for n in range(127)]
                chosen = next((ip for ip in candidates if ip not in taken), "")
                if not chosen:
                    raise SandboxError(f"pod {key}: no free pod IP left in {base}.128-254")
            self._addresses[key] = chosen
            return chosen

    def attach(self, namespace: str, pod: str, pod_ip: str, pod_netns: Path) -> None:
        with self._lock:
            router = self._routers.get(namespace)
            if router is None:
                router = NamespaceNetwork(namespace)
                router.create()
                self._routers[namespace] = router
                self._members[namespace] = set()
                self._write_record()
                self.relay.serve(router.netns_file)
            router.attach_pod(pod, pod_ip, pod_netns)
            self._members[namespace].add(pod)

    def detach(self, namespace: str, pod: str) -> None:
        """Remove a pod's link; the namespace's router too once no pod is left in it."""
        with self._lock:
            self._addresses.pop(f"{namespace}/{pod}", None)
            router = self._routers.get(namespace)
            if router is None:
                return
            router.detach_pod(pod)
            members = self._members.get(namespace, set())
            members.discard(pod)
            if not members:
                self._remove(namespace)

    def set_services(self, namespace: str, routes: Sequence[ServiceRoute]) -> None:
        """Make the namespace's ClusterIPs lead to ``routes`` (nothing is done when they are as applied)."""
        wanted = tuple(sorted(routes, key=lambda r: (r.cluster_ip, r.port, r.protocol)))
        with self._lock:
            router = self._routers.get(namespace)
            if router is None or self._applied.get(namespace) == wanted:
                return
            router.set_services(wanted)
            self._applied[namespace] = wanted

    def namespaces(self) -> list[str]:
        with self._lock:
            return sorted(self._routers)

    def close(self) -> None:
        with self._lock:
            for namespace in list(self._routers):
                self._remove(namespace)
        self.relay.close()

    def _remove(self, namespace: str) -> None:
        router = self._routers.pop(namespace)
        self._members.pop(namespace, None)
        self._applied.pop(namespace, None)
        self.relay.stop_serving(router.netns_file)
        router.delete()
        self._write_record()

    def _write_record(self) -> None:
        self.record.write_text("".join(f"{router.name}\n" for router in self._routers.values()))


def remove_recorded_routers(folder: Path) -> list[str]:
    """Delete the routers a supervisor of this folder made and left (killed before it could); their names."""
    record = folder / ROUTERS_FILE
    try:
        names = record.read_text().split()
    except OSError:
        return []
    removed = []
    for name in names:
        if (Path("/run/netns") / name).exists():
            delete_router(name)
            removed.append(name)
    record.unlink(missing_ok=True)
    return removed


def routes_for(services: Iterable[dict], pods: Iterable[tuple[dict, str, bool]]) -> list[ServiceRoute]:
    """The ClusterIP routes of one namespace: each Service port to its ready pods (pod, pod IP, ready)."""
    ready = [(pod, ip) for pod, ip, is_ready in pods if is_ready and ip]
    routes = []
    for service in services:
        spec = service.get("spec") or {}
        cluster_ip, selector = spec.get("clusterIP"), spec.get("selector") or {}
        if not cluster_ip or cluster_ip == "None" or not selector:
            continue
        behind = [(pod, ip) for pod, ip in ready
                  if all(((pod.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())]
        for port in spec.get("ports") or []:
            endpoints = []
            for pod, ip in behind:
                target = container_port(pod, port.get("targetPort", port["port"]))
                if target is not None:
                    endpoints.append((ip, target))
            routes.append(ServiceRoute(cluster_ip, int(port["port"]), port.get("protocol", "TCP"),
                                       tuple(sorted(endpoints))))
    return routes


def container_port(pod: dict, target: object) -> int | None:
    """A Service's targetPort (a number or a container port's name) as the pod's port number."""
    if isinstance(target, int) or str(target).isdigit():
        return int(str(target))
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None
