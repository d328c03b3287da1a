"""The pod network of one Kubernetes namespace: pod IPs and Service IPs, with no way off the machine.

Each Kubernetes namespace gets a network namespace of its own, its *router*.
Each pod's sandbox is joined to it by a veth pair made directly between the two
namespaces (the machine's own network namespace never holds either end):

    pod netns                          router netns (one per Kubernetes namespace)
    eth0  10.244.1.7/32       <-veth->  p-<hash>  169.254.1.1/32, route 10.244.1.7/32 dev p-<hash>
    routes: 169.254.1.1 dev eth0                   nftables: ClusterIP:port -> DNAT to ready endpoints
            10.244.0.0/16 via 169.254.1.1
            10.96.0.0/16  via 169.254.1.1

Routed like this (rather than a bridge) a pod reaches exactly the pod IPs its
router has a /32 route for, which are the pods of its own Kubernetes namespace; a
packet to any other address gets "no route" from the router at once, and there is
no default route anywhere, so nothing leaves the machine. The Services are
kube-proxy's job done by the kernel: a DNAT per ClusterIP and port in the
router, choosing among the ready endpoints at random, so no process has to run for
them and connections keep their source address.

    >>> net = NamespaceNetwork("tutorial")        # doctest: +SKIP
    >>> net.create()                              # doctest: +SKIP
    >>> net.attach_pod("hub-0", "10.244.1.7", sandbox.net_namespace)   # doctest: +SKIP
    >>> net.set_services([ServiceRoute("10.96.0.20", 8081, "TCP", (("10.244.1.7", 8081),))])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import SandboxError

POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
# The router's address as each pod sees it: link-local, so it is in neither range and never routed.
ROUTER_ADDRESS = "169.254.1.1"
NETNS_DIR = Path("/run/netns")
NFT_TABLE = "jhtutorial_services"


@dataclass(frozen=True)
class ServiceRoute:
    """One port of a Service: its ClusterIP and port, and the ready endpoints (pod IP, target port)."""

    cluster_ip: str
    port: int
    protocol: str
    endpoints: tuple[tuple[str, int], ...]


def router_name(namespace: str) -> str:
    """The router's network namespace name (``ip netns`` lists it): short, stable, one per Kubernetes namespace."""
    return f"jhtutorial-{_short_hash(namespace)}"


def veth_name(pod: str) -> str:
    """The router's end of a pod's veth (interface names are at most 15 characters)."""
    return f"p-{_short_hash(pod)}"


def services_ruleset(services: Iterable[ServiceRoute]) -> str:
    """The router's nftables table for these Services (replaces the previous one in one transaction).

    A ClusterIP port with no ready endpoint is not translated: the router's local
    route for the whole Service range delivers it to the router itself, where
    nothing listens, so a client is refused at once (as kube-proxy rejects it).
    A pod that reaches its own Service (hairpin) is masqueraded to the router's
    address, or its reply would come from itself and be dropped as martian.
    """
    rules = []
    hairpins = set()
    for service in sorted(services, key=lambda s: (s.cluster_ip, s.port, s.protocol)):
        address = ipaddress.ip_address(service.cluster_ip)
        if address not in SERVICE_CIDR:
            raise SandboxError(f"ClusterIP {service.cluster_ip} is outside the Service range {SERVICE_CIDR}")
        protocol = service.protocol.lower()
        if protocol not in ("tcp", "udp"):
            continue  # SCTP is not served
        endpoints = sorted(service.endpoints)
        for ip, _ in endpoints:
            if ipaddress.ip_address(ip) not in POD_CIDR:
                raise SandboxError(f"endpoint {ip} of {service.cluster_ip} is outside the pod range {POD_CIDR}")
            hairpins.add(ip)
        match = f"ip daddr {address} {protocol} dport {int(service.port)}"
        if len(endpoints) == 1:
            ip, port = endpoints[0]
            rules.append(f"        {match} dnat ip to {ip}:{int(port)}")
        elif endpoints:
            choices = ", ".join(f"{n} : {ip} . {int(port)}" for n, (ip, port) in enumerate(endpoints))
            rules.append(f"        {match} dnat ip to numgen random mod {len(endpoints)} map {{ {choices} }}")
    pairs = ", ".join(f"{ip} . {ip}" for ip in sorted(hairpins, key=ipaddress.ip_address))
    hairpin_rule = f"        ct status dnat ip saddr . ip daddr {{ {pairs} }} masquerade\n" if pairs else ""
    return (
        f"table ip {NFT_TABLE}\n"
        f"delete table ip {NFT_TABLE}\n"
        f"table ip {NFT_TABLE} {{\n"
        "    chain services {\n"
        "        type nat hook prerouting priority dstnat; policy accept;\n"
        + "".join(f"{rule}\n" for rule in rules)
        + "    }\n"
        "    chain hairpin {\n"
        "        type nat hook postrouting priority srcnat; policy accept;\n"
        + hairpin_rule
        + "    }\n"
        "}\n"
    )


class NamespaceNetwork:
    """The router of one Kubernetes namespace and the pods joined to it."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.name = router_name(namespace)

    @property
    def netns_file(self) -> Path:
        return NETNS_DIR / self.name

    def exists(self) -> bool:
        return self.netns_file.exists()

    def create(self) -> None:
        """Make the router (idempotent): loopback up, forwarding on, no address in the pod or Service ranges."""
        if self.exists():
            return
        # what `ip netns add` does, without its last step (back to the machine's network namespace), which
        # root of a user namespace may not take (see user_namespace.py)
        NETNS_DIR.mkdir(mode=0o755, exist_ok=True)
        self.netns_file.touch(mode=0o444, exist_ok=False)
        try:
            _run(["unshare", f"--net={self.netns_file}", "true"])
            self._in_router("ip", "link", "set", "lo", "up")
            # forwarding between the pods' veths; the router has no other interface to forward to
            self._in_router("sysctl", "-qw", "net.ipv4.ip_forward=1")
            # a ClusterIP with no endpoint (no DNAT) is delivered here and refused, not "no route"
            self._in_router("ip", "route", "add", "local", str(SERVICE_CIDR), "dev", "lo")
            self.set_services([])
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        """Remove the router; every veth in it goes with it (and so do their ends in pods)."""
        if self.exists():
            delete_router(self.name)

    def attach_pod(self, pod: str, pod_ip: str, pod_netns: Path) -> None:
        """Join a pod's network namespace: eth0 with ``pod_ip``/32, routes to pods and Services via the router."""
        address = ipaddress.ip_address(pod_ip)
        if address not in POD_CIDR:
            raise SandboxError(
                f"pod {self.namespace}/{pod}: IP {pod_ip} is outside the pod range {POD_CIDR}",
                fix="the local cluster assigns pod IPs from 10.244.0.0/16; check the node's podCIDR",
            )
        outside = veth_name(pod)

        def in_pod(*args: str) -> str:
            # `ip -n` takes a name under /run/netns only; the sandbox's namespace is a bound file elsewhere
            return _run(["nsenter", f"--net={pod_netns}", "ip", *args])

        in_pod("link", "add", "eth0", "type", "veth", "peer", "name", outside, "netns", self.name)
        try:
            in_pod("addr", "add", f"{address}/32", "dev", "eth0")
            in_pod("link", "set", "eth0", "up")
            in_pod("route", "add", ROUTER_ADDRESS, "dev", "eth0", "scope", "link")
            for cidr in (POD_CIDR, SERVICE_CIDR):
                in_pod("route", "add", str(cidr), "via", ROUTER_ADDRESS, "dev", "eth0")
            self._in_router("ip", "addr", "add", f"{ROUTER_ADDRESS}/32", "dev", outside)
            self._in_router("ip", "link", "set", outside, "up")
            self._in_router("ip", "route", "add", f"{address}/32", "dev", outside)
        except SandboxError:
            self.detach_pod(pod)  # half a link is worse than none: the caller may try again
            raise

    def detach_pod(self, pod: str) -> None:
        """Remove a pod's veth (both ends go); a pod whose sandbox is gone is detached already."""
        outside = veth_name(pod)
        if self.exists() and outside in self.links():
            self._in_router("ip", "link", "delete", outside)

    def links(self) -> list[str]:
        out = self._in_router("ip", "-o", "link", "show")
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def set_services(self, services: Sequence[ServiceRoute]) -> None:
        """Make the router's Service DNAT exactly ``services`` (one atomic nftables transaction)."""
        result = subprocess.run(
            ["nsenter", f"--net={self.netns_file}", "nft", "-f", "-"],
            input=services_ruleset(services), capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise SandboxError(f"the Services of namespace {self.namespace} could not be set: {result.stderr.strip()}",
                               fix="check that nft is installed (Debian/Ubuntu: apt-get install nftables)")

    def _in_router(self, *argv: str) -> str:
        # nsenter, not `ip netns exec` or `ip -n`: those also mount a /sys of the namespace's own, which
        # root of a user namespace may not always do, and nothing here needs
        return _run(["nsenter", f"--net={self.netns_file}", *argv])


def stale_routers(keep: Iterable[str]) -> list[str]:
    """Names of the project's routers on this machine that belong to none of the Kubernetes namespaces ``keep``.

    Routers outlive the supervisor (they are named network namespaces); the next one
    deletes those of namespaces that are gone or no longer backed.
    """
    wanted = {router_name(namespace) for namespace in keep}
    if not NETNS_DIR.is_dir():
        return []
    return sorted(entry.name for entry in NETNS_DIR.iterdir()
                  if re.fullmatch(r"jhtutorial-[0-9a-f]{10}", entry.name) and entry.name not in wanted)


def delete_router(name: str) -> None:
    """Delete one of the project's routers by name (see :func:`stale_routers`)."""
    if not re.fullmatch(r"jhtutorial-[0-9a-f]{10}", name):
        raise SandboxError(f"{name!r} is not a router of the local cluster; not deleting it")
    # what `ip netns delete` does: unbind the namespace (it ends once no veth end or process holds it)
    subprocess.run(["umount", str(NETNS_DIR / name)], capture_output=True, check=False)
    (NETNS_DIR / name).unlink(missing_ok=True)


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}",
                           fix="pod networks need root, iproute2 and nftables")
    return result.stdout


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]
