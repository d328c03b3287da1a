"""Services on this machine's loopback: what kube-proxy does for a Service, for backed pods only.

A program in a pod reaches another pod through a Service name (``http://hub:8081``).
Here every Service port that a backed program names gets one port on 127.0.0.1
for as long as the supervisor runs; each connection to it goes to a backed pod
that the Service selects, at the loopback port where that pod's program listens.
When the hub pod is replaced, ``hub:8081`` keeps its local port and reaches the
new hub, as the Service's name and IP do in a cluster. Nothing here ever
connects to a Service IP or a pod IP.

    >>> services = LocalServices(resolve)           # doctest: +SKIP
    >>> services.address("jhub", "hub", 8081)
    '127.0.0.1:40513'
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

# (namespace, service, port) -> ("127.0.0.1", local port of a backed pod), or None when none is up
Resolver = Callable[[str, str, int], "tuple[str, int] | None"]


class LocalServices:
    """One asyncio loop in a thread, one listening socket per Service port in use."""

    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve
        self._ports: dict[tuple[str, str, int], int] = {}
        self._servers: dict[tuple[str, str, int], asyncio.base_events.Server] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jhtutorial-local-services", daemon=True)
        self._thread.start()

    def address(self, namespace: str, service: str, port: int) -> str:
        """The loopback address that stands for SERVICE:PORT in NAMESPACE (opened on first use)."""
        key = (namespace, service, port)
        with self._lock:
            if key not in self._ports:
                # bound to port 0: the kernel's choice is the port, with no moment for another program to take it
                future = asyncio.run_coroutine_threadsafe(self._listen(key), self._loop)
                server = future.result(10)
                self._servers[key] = server
                self._ports[key] = int(server.sockets[0].getsockname()[1])
            return f"127.0.0.1:{self._ports[key]}"

    def table(self) -> dict[str, str]:
        """``namespace/service:port`` -> local address, for the supervisor's report."""
        with self._lock:
            return {f"{ns}/{name}:{port}": f"127.0.0.1:{local}" for (ns, name, port), local in self._ports.items()}

    def forget_namespace(self, namespace: str) -> None:
        """Close the ports of a namespace that is gone."""
        with self._lock:
            keys = [key for key in self._ports if key[0] == namespace]
            for key in keys:
                self._ports.pop(key)
                server = self._servers.pop(key)
                self._loop.call_soon_threadsafe(server.close)

    def close(self) -> None:
        with self._lock:
            for server in self._servers.values():
                self._loop.call_soon_threadsafe(server.close)
            self._servers.clear()
            self._ports.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _listen(self, key: tuple[str, str, int]) -> asyncio.base_events.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            target = self._resolve(*key)
            if target is None:
                writer.close()  # no backed pod behind the Service: refused, as with no endpoints
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_copy(reader, upstream_writer), _copy(upstream_reader, writer))
            for stream in (writer, upstream_writer):
                with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                    stream.close()

        return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # pass the half-close on; the other direction may still be talking
    except (ConnectionError, OSError, RuntimeError):
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()
