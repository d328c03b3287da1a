"""A pod's /etc/hosts: its own name, and the names of the Services it may reach, as cluster DNS would answer.

There is no cluster DNS in the local cluster; a hosts file bound at /etc/hosts
in each sandbox gives the same answers for what a pod of the tutorial looks up:
the Services of its own namespace by every name Kubernetes DNS knows them by,
and the API server's ``kubernetes`` Service. Services of other namespaces are
left out, since a pod network reaches only its own namespace.

    >>> print(hosts_file("hub-0", "10.244.1.7", "tutorial", {"proxy-api": "10.96.3.4"}))
    127.0.0.1	localhost
    ::1	localhost ip6-localhost ip6-loopback
    10.244.1.7	hub-0
    10.96.0.1	kubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local
    10.96.3.4	proxy-api proxy-api.tutorial proxy-api.tutorial.svc proxy-api.tutorial.svc.cluster.local
    <BLANKLINE>
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from .apiserver_relay import KUBERNETES_CLUSTER_IP

CLUSTER_DOMAIN = "cluster.local"


def service_names(service: str, namespace: str) -> list[str]:
    """Every name cluster DNS answers for a Service, shortest first."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}"]


def hosts_file(pod: str, pod_ip: str, namespace: str, services: Mapping[str, str]) -> str:
    """The hosts file of ``pod``; ``services`` maps the names of its namespace's Services to their ClusterIPs.

    Headless Services (ClusterIP ``None``) and the ``kubernetes`` Service's own entry
    in ``services`` are skipped: the first have no address of their own, the second
    is always written, for the namespace ``default``.
    """
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{ipaddress.ip_address(pod_ip)}\t{pod}",
             f"{KUBERNETES_CLUSTER_IP}\t{' '.join(service_names('kubernetes', 'default'))}"]
    for name, cluster_ip in sorted(services.items()):
        if cluster_ip in ("", "None") or (name == "kubernetes" and namespace == "default"):
            continue
        lines.append(f"{ipaddress.ip_address(cluster_ip)}\t{' '.join(service_names(name, namespace))}")
    return "\n".join(lines) + "\n"
