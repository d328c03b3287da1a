"""Services as a learner reads them in notebooks 05 and 06: what each selects, its endpoints, and the two
exercises that break a Service on purpose (delete it and bring it back; change its selector).

    >>> hub = nb.service(conn, "hub")            # doctest: +SKIP   (kubectl get service hub -o wide)
    >>> hub.type, hub.component, hub.matching_pods, hub.endpoints     # doctest: +SKIP
    ('ClusterIP', 'hub', ['hub-d8df7c9cf-6j6xw'], ['10.244.0.4'])
    >>> print(nb.set_selector(conn, "hub", component="hubb"))          # doctest: +SKIP
    $ kubectl patch service hub -n alice -p '{"spec":{"selector":{"app.kubernetes.io/component":"hubb"}}}'
    service/hub patched: it selects 0 pod(s) with component=hubb
    $ kubectl get endpointslices -n alice -l kubernetes.io/service-name=hub
    NAME        ADDRESSTYPE   PORTS     ENDPOINTS
    hub-pdmwt   IPv4          <unset>   <unset>
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..apply import apply
from ..connect import Connection
from ..kubeapi import ENDPOINT_SLICES, PODS, SERVICES
from ..objects import name_of
from ..waits import ready_endpoints, wait_deleted, wait_service_endpoints, wait_service_without_endpoints
from .reads import COMPONENT, PART_OF, items, kube
from .tables import get, table

Obj = dict[str, Any]


@dataclass(frozen=True)
class ServiceView:
    """One Service with what it selects now: ``kubectl get service NAME -o wide``, its pods and endpoints."""

    name: str
    uid: str
    type: str
    cluster_ip: str
    port: int
    target_port: str | int
    selector: str  # "key=value,..." as kubectl -o wide prints it
    matching_pods: list[str]  # names of the pods its selector matches
    endpoints: list[str]  # addresses of its ready endpoints

    @property
    def component(self) -> str:
        """The ``app.kubernetes.io/component`` its selector asks for: hub or proxy."""
        return dict(part.split("=", 1) for part in self.selector.split(",") if part).get(COMPONENT, "")


def _view(conn: Connection, service: Obj) -> ServiceView:
    spec = service.get("spec") or {}
    selector = ",".join(f"{key}={value}" for key, value in sorted((spec.get("selector") or {}).items()))
    first_port = (spec.get("ports") or [{}])[0]
    slices = items(conn, ENDPOINT_SLICES, selector=f"kubernetes.io/service-name={name_of(service)}")
    return ServiceView(
        name=name_of(service), uid=service["metadata"]["uid"], type=spec.get("type", "ClusterIP"),
        cluster_ip=spec.get("clusterIP", ""), port=first_port.get("port", 0),
        target_port=first_port.get("targetPort", first_port.get("port", 0)), selector=selector,
        # a Service without a selector selects nothing (its EndpointSlices are kept by hand)
        matching_pods=[name_of(pod) for pod in items(conn, PODS, selector=selector)] if selector else [],
        endpoints=ready_endpoints(slices),
    )


def services(conn: Connection) -> list[ServiceView]:
    """The workbook's Services, sorted by name, each with the pods it selects and its ready endpoints."""
    return [_view(conn, service) for service in items(conn, SERVICES, selector=PART_OF)]


def service(conn: Connection, name: str) -> ServiceView | None:
    """One Service (``kubectl get service NAME``), or None when it does not exist."""
    found = kube(conn).get_or_none(SERVICES.path(conn.namespace, name))
    return None if found is None else _view(conn, found)


def service_addresses(conn: Connection) -> str:
    """How a program reaches each Service: by its bare name in the namespace, by its full DNS name anywhere."""
    rows = [(f"http://{s.name}:{s.port}", f"http://{s.name}.{conn.namespace}.svc.cluster.local:{s.port}")
            for s in services(conn)]
    return table(rows, ["IN THIS NAMESPACE", "FROM ANY NAMESPACE"])


def service_selectors(conn: Connection) -> str:
    """A summary: which pods each Service selects (the component label; name and instance are the same for
    all four), the port it forwards to, and how many pods and ready endpoints it has now."""
    rows = [(s.name, f"component={s.component}", s.target_port, len(s.matching_pods), len(s.endpoints))
            for s in services(conn)]
    return table(rows, ["SERVICE", "SELECTS PODS WITH", "TARGET PORT", "MATCHING PODS", "ENDPOINTS"])


def set_selector(conn: Connection, name: str, *, component: str, timeout: float = 60) -> str:
    """``kubectl patch service NAME -p '{"spec":{"selector":{"app.kubernetes.io/component":COMPONENT}}}'``,
    then wait until the Service's endpoints follow (none when no pod matches), and return what happened:
    the command, the pods now selected and ``kubectl get endpointslices`` for the Service."""
    patch = {"spec": {"selector": {COMPONENT: component}}}
    kube(conn).call("PATCH", SERVICES.path(conn.namespace, name), body=patch,
                    content_type="application/merge-patch+json")
    view = service(conn, name)
    assert view is not None, f"Service {name} vanished while it was patched"
    if view.matching_pods:
        wait_service_endpoints(name, conn=conn, timeout=timeout)
    else:
        wait_service_without_endpoints(name, conn=conn, timeout=timeout)
    slices = f"kubernetes.io/service-name={name}"
    return "\n".join([
        f"$ kubectl patch service {name} -n {conn.namespace} -p '{json.dumps(patch, separators=(',', ':'))}'",
        f"service/{name} patched: it selects {len(view.matching_pods)} pod(s) with component={component}",
        f"$ kubectl get endpointslices -n {conn.namespace} -l {slices}",
        get(conn, "endpointslices", selector=slices),
    ])


def recreate_service(conn: Connection, name: str, *, since: ServiceView, timeout: float = 60) -> None:
    """The exercise of notebook 05, for a headless run: ``kubectl delete service NAME``, then apply its file
    again. Does nothing (and says so) when the Service was made again since ``since`` was read."""
    now = service(conn, name)
    if now is not None and now.uid != since.uid:
        print(f"Service {name} was deleted and made again since (a new UID): nothing to do")
        return
    slices = f"kubernetes.io/service-name={name}"
    if now is not None:
        owned = [name_of(s) for s in items(conn, ENDPOINT_SLICES, selector=slices)]
        kube(conn).call("DELETE", SERVICES.path(conn.namespace, name))
        wait_deleted(SERVICES, name, conn=conn, timeout=timeout)
        for endpoint_slice in owned:  # they go with it: the garbage collector removes what an owner leaves
            wait_deleted(ENDPOINT_SLICES, endpoint_slice, conn=conn, timeout=timeout)
        print(f"$ kubectl delete service {name} -n {conn.namespace}\nservice \"{name}\" deleted")
    print(f"$ kubectl get endpointslices -n {conn.namespace} -l {slices}\n"
          f"{get(conn, 'endpointslices', selector=slices)}\n")
    print("\n".join(apply("services", conn=conn).changes()))
    after = service(conn, name)
    assert after is not None, f"Service {name} is missing after the apply"
    if after.matching_pods:  # run again after notebook 06: wait for the new Service's endpoints
        wait_service_endpoints(name, conn=conn, timeout=timeout)
    print(f"\ncluster IP before: {since.cluster_ip}, now: {after.cluster_ip}"
          f" ({'a new one' if after.cluster_ip != since.cluster_ip else 'by chance the same'})")
