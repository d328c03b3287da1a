"""Pod networks made for real: pod IPs and Service ClusterIPs inside sandboxes, nothing in the machine's network.

No packet is sent from the machine's own network namespace: what it can reach is
read from its routes, links and addresses.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from jhtutorial.errors import SandboxError
from jhtutorial.localcluster.backing.network import (
    POD_CIDR,
    ROUTER_ADDRESS,
    SERVICE_CIDR,
    NamespaceNetwork,
    ServiceRoute,
    delete_router,
    services_ruleset,
    stale_routers,
    veth_name,
)
from jhtutorial.localcluster.backing.sandbox import RunAs, Sandbox, SandboxSpec, create

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="pod networks as the machine's root")

USER = RunAs(uid=1000, gid=1000)
# a client that prints the page's first line, or the errno of a failed connect
FETCH = (
    "import sys, urllib.request\n"
    "try:\n"
    "    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines()[0])\n"
    "except OSError as error:\n"
    "    reason = getattr(error, 'reason', error)\n"
    "    print('failed', getattr(reason, 'errno', reason))\n"
)


@dataclass
class Pod:
    namespace: str
    name: str
    ip: str
    box: Sandbox


@pytest.fixture
def cluster_network() -> Iterator[dict[str, Pod | NamespaceNetwork]]:
    """Two Kubernetes namespaces: web-0 and client-0 in one, stranger-0 in the other."""
    suffix = str(os.getpid())
    networks = {ns: NamespaceNetwork(f"{ns}-{suffix}") for ns in ("shop", "other")}
    boxes: list[Sandbox] = []
    try:
        for network in networks.values():
            network.create()
        pods = {}
        for namespace, name, ip in (("shop", "web-0", "10.244.1.17"), ("shop", "client-0", "10.244.2.18"),
                                    ("other", "stranger-0", "10.244.0.19")):
            box = create(SandboxSpec(key=f"{namespace}-{suffix}.{name}", hostname=name))
            boxes.append(box)
            networks[namespace].attach_pod(name, ip, box.net_namespace)
            pods[name] = Pod(namespace, name, ip, box)
        yield {**pods, **networks}
    finally:
        for box in boxes:
            box.teardown()
        for network in networks.values():
            network.delete()


def _serve(pod: Pod, port: int) -> subprocess.Popen[bytes]:
    page = f"served by {pod.name}"
    server = subprocess.Popen(
        [*pod.box.enter_command(USER), "python3", "-c",
         "import http.server, sys\n"
         "class Page(http.server.BaseHTTPRequestHandler):\n"
         "    def do_GET(self):\n"
         f"        self.send_response(200); self.end_headers(); self.wfile.write(b'{page}\\n')\n"
         "    def log_message(self, *args): pass\n"
         f"http.server.HTTPServer(('0.0.0.0', {port}), Page).serve_forever()\n"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listening = pod.box.run(["ss", "-Hltn", f"sport = :{port}"], USER).stdout
        if listening.strip():
            return server
        time.sleep(0.1)
    server.kill()
    raise AssertionError(f"{pod.name} did not listen on {port}")


def _fetch(pod: Pod, url: str) -> str:
    result = pod.box.run(["python3", "-c", FETCH, url], USER)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@needs_root
def test_pods_of_a_namespace_reach_each_other_and_its_services_others_do_not(cluster_network: dict) -> None:
    web, client, stranger = cluster_network["web-0"], cluster_network["client-0"], cluster_network["stranger-0"]
    shop: NamespaceNetwork = cluster_network["shop"]
    shop.set_services([
        ServiceRoute("10.96.7.7", 80, "TCP", ((web.ip, 8080),)),
        ServiceRoute("10.96.7.8", 80, "TCP", ()),  # a Service with no ready endpoint
    ])
    server = _serve(web, 8080)
    try:
        assert _fetch(client, f"http://{web.ip}:8080/") == "served by web-0"
        assert _fetch(client, "http://10.96.7.7/") == "served by web-0"
        assert _fetch(web, "http://10.96.7.7/") == "served by web-0"  # a pod reaching its own Service (hairpin)
        assert _fetch(client, "http://10.96.7.8/") == "failed 111"  # refused at once: no endpoint
        # another Kubernetes namespace: no route, told at once (ENETUNREACH), not after a timeout
        assert _fetch(stranger, f"http://{web.ip}:8080/") == "failed 101"
        # its own router knows no such Service: refused at once, and nothing reaches web-0
        assert _fetch(stranger, "http://10.96.7.7/") == "failed 111"
        # endpoints change: the Service follows
        shop.set_services([ServiceRoute("10.96.7.7", 80, "TCP", ())])
        assert _fetch(client, "http://10.96.7.7/") == "failed 111"
    finally:
        server.kill()
        server.wait()


@needs_root
def test_the_machine_has_no_address_link_or_route_into_pod_networks(cluster_network: dict) -> None:
    ours = {veth_name(name) for name in ("web-0", "client-0", "stranger-0")}
    host_links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert not any(f": {name}" in host_links for name in ours)
    assert all(name in cluster_network["shop"].links() for name in (veth_name("web-0"), veth_name("client-0")))
    for line in subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout.splitlines():
        address = ipaddress.ip_interface(line.split()[3]).ip
        assert address not in POD_CIDR and address not in SERVICE_CIDR, line
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True).stdout
    assert "10.244." not in routes and "10.96." not in routes and ROUTER_ADDRESS not in routes
    # where the machine would send a packet for a pod IP: never through one of the project's links
    route = subprocess.run(["ip", "route", "get", cluster_network["web-0"].ip], capture_output=True, text=True).stdout
    assert not any(f"dev {name}" in route for name in ours), route
    # inside, a pod has no default route: only its namespace's pods and the Services, via the router
    pod_routes = cluster_network["web-0"].box.run(["ip", "-4", "route"], USER).stdout.split("\n")
    assert sorted(r.strip() for r in pod_routes if r.strip()) == sorted([
        f"10.244.0.0/16 via {ROUTER_ADDRESS} dev eth0", f"10.96.0.0/16 via {ROUTER_ADDRESS} dev eth0",
        f"{ROUTER_ADDRESS} dev eth0 scope link",
    ])


@needs_root
def test_teardown_removes_every_link_and_namespace() -> None:
    network = NamespaceNetwork(f"gone-{os.getpid()}")
    network.create()
    box = create(SandboxSpec(key=f"gone-{os.getpid()}.web-0", hostname="web-0"))
    network.attach_pod("web-0", "10.244.3.3", box.net_namespace)
    assert veth_name("web-0") in network.links()
    # a second pod with the same IP: its route cannot be added, and it is left with no link at all
    twin = create(SandboxSpec(key=f"gone-{os.getpid()}.twin-0", hostname="twin-0"))
    with pytest.raises(SandboxError, match="failed"):
        network.attach_pod("twin-0", "10.244.3.3", twin.net_namespace)
    assert veth_name("twin-0") not in network.links()
    assert "eth0" not in twin.run(["ip", "-o", "link"], USER).stdout
    twin.teardown()
    box.teardown()
    # the pod's namespace went, and its veth with it: the kernel frees a dead namespace's devices in a
    # deferred clean-up, a moment later on a busy machine (detach_pod, for a live pod, removes it at once)
    deadline = time.monotonic() + 15
    while network.links() != ["lo"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert network.links() == ["lo"]
    network.delete()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert network.name not in netns
    assert not network.netns_file.exists()


@needs_root
def test_routers_of_namespaces_no_longer_backed_are_found_and_deleted() -> None:
    kept, gone = NamespaceNetwork(f"kept-{os.getpid()}"), NamespaceNetwork(f"gone-{os.getpid()}")
    try:
        kept.create()
        gone.create()
        stale = stale_routers(keep=[kept.namespace])
        assert gone.name in stale and kept.name not in stale
        delete_router(gone.name)
        assert not gone.exists() and kept.exists()
        with pytest.raises(SandboxError, match="not a router of the local cluster"):
            delete_router("some-other-netns")
    finally:
        kept.delete()
        gone.delete()


def test_service_rules_reject_what_is_out_of_range() -> None:
    with pytest.raises(SandboxError, match="outside the Service range"):
        services_ruleset([ServiceRoute("192.168.1.1", 80, "TCP", ())])
    with pytest.raises(SandboxError, match="outside the pod range"):
        services_ruleset([ServiceRoute("10.96.0.1", 443, "TCP", (("127.0.0.1", 6443),))])
    two = services_ruleset([ServiceRoute("10.96.0.9", 80, "TCP", (("10.244.0.2", 8000), ("10.244.1.2", 8000)))])
    assert "numgen random mod 2 map { 0 : 10.244.0.2 . 8000, 1 : 10.244.1.2 . 8000 }" in two
    assert "ip saddr . ip daddr { 10.244.0.2 . 10.244.0.2, 10.244.1.2 . 10.244.1.2 } masquerade" in two
