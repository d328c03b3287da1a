"""The list-then-watch reflector, against the real API server: order, restarts, 410 Gone, outages, stop()."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient, Configuration

from jhtutorial.errors import Forbidden
from jhtutorial.kubeapi import CONFIGMAPS, SECRETS, Resource
from jhtutorial.tally import Tally
from jhtutorial.watching import Event, Reflector, object_key
from kubehelpers import GarbledWatchProxy, kubeconfig_file, service_account_kubeconfig



class Follower:
    """Runs a reflector in a thread and lets the test wait (on a Condition, not a sleep loop) for events."""

    def __init__(self, reflector: Reflector, tally: Tally | None = None) -> None:
        self.reflector = reflector
        self.tally = tally if tally is not None else Tally()  # what the reflector reported doing
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self.reflector.events():
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            self.error = err
        finally:
            with self._changed:
                self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 20) -> None:
        with self._changed:
            ok = self._changed.wait_for(lambda: predicate(self.events) or self.error is not None, timeout)
        assert self.error is None, self.error
        assert ok, f"not seen within {timeout} s; events: {[(e.type, name(e)) for e in self.events]}"

    def seen(self, event_type: str, cm_name: str) -> Callable[[list[Event]], bool]:
        return lambda events: any(e.type == event_type and name(e) == cm_name for e in events)

    def stop(self) -> None:
        self.reflector.stop()
        self._thread.join(10)
        assert not self._thread.is_alive()


def name(event: Event) -> str | None:
    return event.object.get("metadata", {}).get("name")


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def follow(api_client: client.ApiClient, namespace: str) -> Iterator[Callable[..., Follower]]:
    followers: list[Follower] = []

    def start(**kwargs: object) -> Follower:
        tally = Tally()
        follower = Follower(Reflector(api_client, CONFIGMAPS, namespace, tally=tally, **kwargs),  # type: ignore[arg-type]
                            tally)
        followers.append(follower)
        return follower

    yield start
    for follower in followers:
        follower.stop()


def configmap(cm_name: str, label: str = "x", **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=cm_name, labels={"test": label}), data=data)


def test_list_then_watch_reports_every_change_in_order(core, namespace, follow) -> None:
    core.create_namespaced_config_map(namespace, configmap("before"))
    watcher = follow(label_selector="test=x")
    watcher.wait_for(lambda events: any(e.type == "SYNCED" for e in events))
    assert [(e.type, name(e)) for e in watcher.events] == [("ADDED", "before"), ("SYNCED", None)]

    core.create_namespaced_config_map(namespace, configmap("after"))
    core.patch_namespaced_config_map("after", namespace, {"data": {"k": "v2"}})
    core.delete_namespaced_config_map("before", namespace)
    core.create_namespaced_config_map(namespace, configmap("other-label", label="y"))  # filtered out by the selector
    watcher.wait_for(watcher.seen("DELETED", "before"))
    assert [(e.type, name(e)) for e in watcher.events[2:]] == [
        ("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "before"),
    ]
    assert watcher.events[3].object["data"] == {"k": "v2"}
    assert set(watcher.reflector.cache) == {f"{namespace}/after"}
    assert watcher.tally == {"list": 1, "watch": 1, "event": 4}  # what the hook heard: ADDED, ADDED, MODIFIED, DELETED
    assert watcher.reflector.requests == 2  # one list, one watch: nothing polls
    assert not hasattr(watcher.reflector, "stats")  # no counters of its own: only the hook it was given
    for obj in [e.object for e in watcher.events if e.type != "SYNCED"]:
        assert obj["kind"] == "ConfigMap" and object_key(obj).startswith(namespace)


def test_a_stream_the_server_closes_is_resumed_without_losing_changes(core, namespace, follow) -> None:
    watcher = follow(label_selector="test=resume", watch_seconds=1)  # the server ends each watch after 1 s
    watcher.wait_for(lambda events: any(e.type == "SYNCED" for e in events))
    for i in range(4):
        core.create_namespaced_config_map(namespace, configmap(f"resume-{i}", label="resume"))
        time.sleep(0.7)  # spread the changes over several watch requests
    watcher.wait_for(watcher.seen("ADDED", "resume-3"))
    added = [name(e) for e in watcher.events if e.type == "ADDED"]
    assert added == [f"resume-{i}" for i in range(4)]  # each once, in order
    tally = watcher.tally
    assert tally["watch"] >= 3, tally
    assert tally["list"] == 1 and tally["expired"] == 0, tally  # resumed from resourceVersion, never relisted
    assert watcher.reflector.requests == tally["list"] + tally["watch"]


def test_bookmarks_move_the_resource_version_past_changes_the_selector_filters_out(core, namespace, api_client) -> None:
    """A watch that sees none of the changes still learns how far history went (BOOKMARK lines),
    so a reconnect resumes from a recent position instead of risking 410 Gone.

    Bookmarks are best effort: the API server sends one shortly before a watch's
    timeoutSeconds runs out, and only once it has processed some change of the
    kind. Unrelated ConfigMaps keep coming here so that it has.
    """
    tally = Tally()
    reflector = Reflector(api_client, CONFIGMAPS, namespace, label_selector="test=quiet", watch_seconds=5,
                          yield_bookmarks=True, tally=tally)
    stop = threading.Event()
    written: list[int] = []

    def churn() -> None:
        while not stop.wait(0.3):
            made = core.create_namespaced_config_map(namespace, {"metadata": {
                "generateName": "unrelated-", "labels": {"test": "elsewhere"}}})
            written.append(int(made.metadata.resource_version))

    writer = threading.Thread(target=churn)
    writer.start()
    seen = []
    try:
        for event in reflector.events(timeout=30):
            seen.append(event.type)
            if event.type == "BOOKMARK":
                break
    finally:
        stop.set()
        writer.join()
    assert seen[0] == "SYNCED" and seen[-1] == "BOOKMARK", seen
    assert set(seen) == {"SYNCED", "BOOKMARK"}  # none of the unrelated ConfigMaps came through ...
    assert tally["bookmark"] >= 1
    assert reflector.cache == {}
    assert int(reflector.resource_version) >= written[0]  # ... yet the position moved past them


def test_stop_from_another_thread_ends_a_blocked_watch_at_once(api_client, namespace) -> None:
    reflector = Reflector(api_client, CONFIGMAPS, namespace, label_selector="test=never")
    synced = threading.Event()
    finished = threading.Event()

    def run() -> None:
        for event in reflector.events():
            if event.type == "SYNCED":
                synced.set()
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    assert synced.wait(10)
    time.sleep(0.2)  # let it block inside the watch read
    start = time.monotonic()
    reflector.stop()
    assert finished.wait(2)
    assert time.monotonic() - start < 1
    reflector.stop()  # twice is fine


def test_forbidden_is_raised_not_retried(api_client, namespace, tmp_path: Path) -> None:
    kubeconfig = service_account_kubeconfig(
        api_client, namespace, "no-secrets", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        tmp_path / "kc",
    )
    limited = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        reflector = Reflector(limited, SECRETS, namespace)
        start = time.monotonic()
        with pytest.raises(Forbidden, match="secrets"):
            list(reflector.events(timeout=10))
        assert time.monotonic() - start < 2
        assert reflector.requests == 1
    finally:
        limited.close()


def test_an_api_server_restart_loses_no_update(core, namespace, follow, local_cluster, api_client) -> None:
    """Stop kube-apiserver under a running watch, start it again, change things at once: all arrive."""
    if local_cluster is None:
        pytest.skip("needs the local cluster, which can stop and start its API server")
    core.create_namespaced_config_map(namespace, configmap("keep", label="outage", v="1"))
    core.create_namespaced_config_map(namespace, configmap("drop", label="outage"))
    watcher = follow(label_selector="test=outage")
    watcher.wait_for(lambda events: any(e.type == "SYNCED" for e in events))
    version_before_restart = watcher.reflector.resource_version

    local_cluster.stop_component("kube-apiserver")
    try:
        local_cluster.start_components()
    finally:
        assert local_cluster.component_pids().get("kube-apiserver"), "kube-apiserver did not come back"
    # Changes made the moment the server is back, while the reflector may still be reconnecting.
    core.create_namespaced_config_map(namespace, configmap("new", label="outage"))
    core.patch_namespaced_config_map("keep", namespace, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("drop", namespace)

    watcher.wait_for(lambda events: {f"{namespace}/keep", f"{namespace}/new"} == set(watcher.reflector.cache)
                     and watcher.reflector.cache[f"{namespace}/keep"].get("data") == {"v": "2"})
    after = watcher.events[2:]  # past the first ADDED x2 ... SYNCED
    seen = {(e.type, name(e)) for e in after}
    assert ("ADDED", "new") in seen and ("DELETED", "drop") in seen
    assert any(e.type == "MODIFIED" and name(e) == "keep" and e.object.get("data") == {"v": "2"} for e in after)
    assert watcher.tally["reconnect"] >= 1, watcher.tally  # the outage was noticed and ridden out

    # The restarted server's watch cache begins at the moment it started: a position from
    # long before (resourceVersion 1) is answered with 410 Gone, and the reflector relists.
    counted = Tally()
    resumed = Reflector(api_client, CONFIGMAPS, namespace, label_selector="test=outage", resource_version="1",
                        tally=counted)
    events = list(resumed.events(timeout=3))
    assert counted["expired"] == 1, counted
    assert counted["list"] == 1
    assert sorted((e.type, name(e)) for e in events) == [("ADDED", "keep"), ("ADDED", "new"), ("SYNCED", None)]
    assert set(resumed.cache) == set(watcher.reflector.cache)
    # and the position from just before the restart converges to the same objects, 410 or not
    from_before = Reflector(api_client, CONFIGMAPS, namespace, label_selector="test=outage",
                            resource_version=version_before_restart)
    list(from_before.events(timeout=2))
    assert {f"{namespace}/new"} <= set(from_before.cache)


def test_resource_path_of_cluster_scoped_and_grouped_kinds() -> None:
    nodes = Resource("v1", "Node", "nodes", namespaced=False)
    assert nodes.path("ignored") == "/api/v1/nodes"
    deployments = Resource("apps/v1", "Deployment", "deployments")
    assert deployments.path("ns", "hub", "status") == "/apis/apps/v1/namespaces/ns/deployments/hub/status"
    assert deployments.path() == "/apis/apps/v1/deployments"



# --- a malformed line in the stream ------------------------------------------------------------


def test_a_malformed_line_is_logged_and_the_objects_listed_again(
    api_client: client.ApiClient, namespace: str, core: client.CoreV1Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jhtutorial.watching")
    with GarbledWatchProxy(api_client) as proxy:
        proxied = ApiClient(Configuration(host=proxy.url))
        follower = Follower(Reflector(proxied, CONFIGMAPS, namespace, watch_seconds=60, tally=(tally := Tally())), tally)
        try:
            # the first watch starts with the garbage: the reflector lists again (a second SYNCED) and goes on
            follower.wait_for(lambda events: sum(e.type == "SYNCED" for e in events) >= 2)
            assert proxy.injected == 1 and tally["malformed"] == 1 and tally["list"] == 2
            core.create_namespaced_config_map(namespace, configmap("after-the-garbage"))
            follower.wait_for(follower.seen("ADDED", "after-the-garbage"))
        finally:
            follower.stop()
            proxied.close()
    (warning,) = [r for r in caplog.records if r.name == "jhtutorial.watching"]
    assert "not a JSON watch event" in warning.getMessage() and "listing again" in warning.getMessage()
    assert f"configmaps in namespace {namespace}" in warning.getMessage()


def test_a_wait_and_the_live_view_go_on_after_a_malformed_line(
    api_client: client.ApiClient, namespace: str, core: client.CoreV1Api, tmp_path: Path
) -> None:
    from jhtutorial.connect import connect
    from jhtutorial.liveview import LiveView
    from jhtutorial.waits import wait_deleted

    with GarbledWatchProxy(api_client) as proxy:
        kubeconfig = kubeconfig_file(tmp_path / "through-the-proxy", proxy.url, {"token": "unused"}, ca=None)
        conn = connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
        try:
            core.create_namespaced_config_map(namespace, configmap("doomed"))
            deleter = threading.Timer(1.0, core.delete_namespaced_config_map, ("doomed", namespace))
            deleter.start()
            waited = wait_deleted(CONFIGMAPS, "doomed", conn=conn, timeout=30)
            deleter.join()
            assert proxy.injected == 1 and "doomed" in waited.what

            proxy.armed.set()  # the next watch, the view's, gets garbage too
            with LiveView(conn, events=False, age_refresh=None) as view:
                core.create_namespaced_pod(namespace, {
                    "metadata": {"name": "after-the-garbage"},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
                deadline = time.monotonic() + 30
                while "after-the-garbage" not in [r.name for r in view.rows()] and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert proxy.injected == 2
                assert "after-the-garbage" in [r.name for r in view.rows()]
                assert view.running and "stopped" not in view.snapshot()
            core.delete_namespaced_pod("after-the-garbage", namespace, grace_period_seconds=0)
        finally:
            conn.close()
