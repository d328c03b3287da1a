"""A do-nothing proxy for a JupyterHub run on this machine (imported by that hub process only).

In the cluster, configurable-http-proxy routes ``/user/NAME/`` to each user's
pod and everything else to the hub. A hub run locally for a simulated cluster
has nowhere to route to (the pods have no containers), so when
configurable-http-proxy is not installed it gets this class instead: it keeps
the routing table in memory, and requests go to the hub's own port.

    c.JupyterHub.proxy_class = "jhtutorial._hubproxy.RoutesInMemory"
"""

from __future__ import annotations

from typing import Any

from jupyterhub.proxy import Proxy


class RoutesInMemory(Proxy):
    """The routing table as a dict: what the hub adds, it can list and delete again."""

    should_start = False  # nothing to start or stop: there is no proxy process

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.routes: dict[str, dict[str, Any]] = {}

    async def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec: str) -> None:
        self.routes.pop(routespec, None)

    async def get_all_routes(self) -> dict[str, dict[str, Any]]:
        return dict(self.routes)
