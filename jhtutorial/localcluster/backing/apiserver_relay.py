"""The `kubernetes` Service inside pod networks: the one way from a sandbox to the API server.

On a real cluster a pod reaches the API server at the `kubernetes` Service's
ClusterIP (10.96.0.1:443). Here the API server listens on the machine's
loopback, which inside a sandbox is the sandbox's own, and the Service's
endpoint is an address of the machine that pods must not reach. So the backing
relays: a listening socket on ClusterIP:443 *inside each namespace's router*
(the router's local route for the Service range makes the address bindable),
and for each connection accepted there, a connection from the machine's own
network namespace to 127.0.0.1:API_PORT, nothing else. Bytes are copied both ways
unchanged: TLS runs end to end between the pod's client and the API server, and
RBAC sees the pod's own token.

The API server's certificate names ``kubernetes.default.svc`` (and its longer
forms); clusters made since it was given 10.96.0.1 as well (``kubeApiserverCertSANs``)
also accept ``KUBERNETES_SERVICE_HOST=10.96.0.1``, as any cluster's pods are told.
Older ones need the name (a hosts entry for it).

    >>> relay = ApiServerRelay(api_port=6443)                   # doctest: +SKIP
    >>> relay.serve(NamespaceNetwork("tutorial").netns_file)    # doctest: +SKIP
    >>> relay.close()                                           # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import os
import selectors
import socket
import threading
from pathlib import Path

from ...errors import SandboxError

KUBERNETES_CLUSTER_IP = "10.96.0.1"
KUBERNETES_PORT = 443
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(netns_file: Path) -> socket.socket:
    """A TCP socket of another network namespace (a pod's, a router's); the caller's thread stays home.

    A socket belongs to the network namespace its creator was in when it was made;
    after that it can be used from anywhere, so only the creation happens inside: in a
    thread of its own that enters the namespace and ends there. Going back is not
    needed, and root of a user namespace (an owner who is not root, see
    user_namespace.py) may not enter the machine's network namespace again anyway.
    Its connections and bindings are that namespace's: 127.0.0.1 is the pod's own loopback.
    """
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        try:
            with open(netns_file, "rb") as target:
                if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
                    raise SandboxError(f"cannot enter network namespace {netns_file}: "
                                       f"{os.strerror(ctypes.get_errno())}",
                                       fix="the relay runs as root (of the machine or of the supervisor's user "
                                           "namespace), beside the routers it serves")
            made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        except BaseException as error:  # handed to the caller's thread
            failed.append(error)

    maker = threading.Thread(target=make, name=f"socket in {netns_file.name}")
    maker.start()
    maker.join()
    if failed:
        raise failed[0]
    return made[0]


def listening_socket_in(netns_file: Path, address: str, port: int) -> socket.socket:
    """A TCP socket listening on ``address:port`` in another network namespace."""
    listener = socket_in(netns_file)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    return listener


class ApiServerRelay:
    """Relays ClusterIP:443 in each served router to the API server at 127.0.0.1:``api_port``."""

    def __init__(self, api_port: int, cluster_ip: str = KUBERNETES_CLUSTER_IP, port: int = KUBERNETES_PORT) -> None:
        self.api_port = api_port
        self.cluster_ip = cluster_ip
        self.port = port
        self._listeners: dict[Path, socket.socket] = {}
        self._lock = threading.Lock()

    def serve(self, router_netns: Path) -> None:
        """Start answering on ClusterIP:port inside this router (idempotent)."""
        with self._lock:
            if router_netns in self._listeners:
                return
            listener = listening_socket_in(router_netns, self.cluster_ip, self.port)
            self._listeners[router_netns] = listener
        threading.Thread(target=self._accept, args=(listener,), name=f"apiserver-relay {router_netns.name}",
                         daemon=True).start()

    def stop_serving(self, router_netns: Path) -> None:
        """Stop answering in this router; connections already open end with their sandboxes."""
        with self._lock:
            listener = self._listeners.pop(router_netns, None)
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def close(self) -> None:
        for netns in list(self._listeners):
            self.stop_serving(netns)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop_serving
            threading.Thread(target=self._relay, args=(client,), name="apiserver-relay connection",
                             daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.api_port), timeout=10)
        except OSError:
            client.close()  # the pod's client sees the connection close, as when an API server is down
            return
        upstream.settimeout(None)
        _copy_both_ways(client, upstream)


def _copy_both_ways(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes between two sockets until both directions have ended; pass half-closes on."""
    peer = {a: b, b: a}
    open_reads = {a, b}
    with selectors.DefaultSelector() as selector:
        for sock in open_reads:
            selector.register(sock, selectors.EVENT_READ)
        try:
            while open_reads:
                for key, _ in selector.select():
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        peer[source].sendall(data)
                        continue
                    selector.unregister(source)
                    open_reads.discard(source)
                    try:
                        peer[source].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
        except OSError:
            pass  # one side reset: end both
        finally:
            a.close()
            b.close()
