"""The live pod view: fed by watches in background threads, batched, stoppable, deterministic when frozen.

Pods are created and deleted through the real API server; the scheduler
places them and the simulated kubelet (kwok) runs them, so the view sees the
same sequence of changes (ADDED Pending, scheduled, Running) and the same
``Scheduled`` events a real cluster produces.
"""

from __future__ import annotations

import dataclasses
import html
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from jhtutorial.connect import Connection, connect
from jhtutorial.liveview import (
    SIMULATED_CAPTION,
    LiveView,
    PodRow,
    _age,
    _text_table,
    live_view,
    running_views,
    stable_name,
)
from jhtutorial.tally import Tally
from tests.kubehelpers import service_account_kubeconfig

PAUSE = "registry.k8s.io/pause:3.10"


def _view_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("jhtutorial-liveview")]


# --- pure functions, on objects shaped as the API returns them ---------------------------------------


def test_stable_name_replaces_only_what_kubernetes_generates() -> None:
    deployment_pod = {"metadata": {"name": "hub-5d9f7c7b8-x2x9q", "generateName": "hub-5d9f7c7b8-",
                                   "labels": {"pod-template-hash": "5d9f7c7b8"},
                                   "ownerReferences": [{"kind": "ReplicaSet", "name": "hub-5d9f7c7b8"}]}}
    assert stable_name(deployment_pod) == "hub-<hash>-<id>"
    assert stable_name({"metadata": {"name": "job-abcde", "generateName": "job-"}}) == "job-<id>"
    assert stable_name({"metadata": {"name": "jupyter-admin"}}) == "jupyter-admin"


def test_age_is_written_like_kubectl() -> None:
    from datetime import datetime, timezone

    now = datetime(2026, 1, 2, 12, 0, 0, tzinfo=timezone.utc)
    assert _age("2026-01-02T11:59:18Z", now) == "42s"
    assert _age("2026-01-02T11:56:50Z", now) == "3m10s"
    assert _age("2026-01-02T07:00:00Z", now) == "5h"
    assert _age("2025-12-30T12:00:00Z", now) == "3d"
    assert _age(None, now) == "-"


def test_text_table_has_no_volatile_columns() -> None:
    row = PodRow(name="hub-5d9f7c7b8-x2x9q", stable_name="hub-<hash>-<id>", phase="Running", ready="1/1",
                 restarts=0, age="42s", node="kwok-node-2", event_reason="Scheduled",
                 event_text="Scheduled: Successfully assigned ns/hub-5d9f7c7b8-x2x9q to kwok-node-2")
    text = _text_table([row], simulated=True, error=None)
    assert text.splitlines()[0] == f"pods: 1 ({SIMULATED_CAPTION})"
    assert "hub-<hash>-<id>" in text and "Scheduled" in text
    for volatile in ("42s", "kwok-node-2", "x2x9q", "Successfully assigned"):
        assert volatile not in text
    assert _text_table([], simulated=False, error=None) == "pods: 0\nno pods"


# --- against the cluster -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conn(kubeconfig: Path, namespace: str) -> Iterator[Connection]:
    connection = connect(namespace=namespace, kubeconfig=kubeconfig)
    yield connection
    connection.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def view(conn: Connection) -> Iterator[LiveView]:
    started = LiveView(conn, interval=0.3)
    yield started
    started.stop()


class _Watcher:
    """Records each change of the widget's value, and lets a test wait for a condition on the view."""

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.changes: list[tuple[float, str]] = []  # (time, thread name)
        self.condition = threading.Condition()
        view.widget.observe(self._changed, names="value")

    def _changed(self, _change: dict) -> None:
        with self.condition:
            self.changes.append((time.monotonic(), threading.current_thread().name))
            self.condition.notify_all()

    def wait_for_widget(self, predicate: Callable[[str], bool], timeout: float = 10) -> str:
        """Wait until the drawn table (the widget's value, which lags the rows by a batch) satisfies it."""
        with self.condition:
            assert self.condition.wait_for(lambda: predicate(self.view.widget.value), timeout=timeout), \
                f"the widget never showed it: {self.view.widget.value}"
        return self.view.widget.value

    def wait_for(self, predicate: Callable[[list[PodRow]], bool], timeout: float = 30) -> list[PodRow]:
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                rows = self.view.rows()
                if predicate(rows):
                    return rows
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"the view never showed the expected state; last rows: {rows}"
                self.condition.wait(remaining)


def _pod(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": "lv"}},
            "spec": {"containers": [{"name": "main", "image": PAUSE}], "terminationGracePeriodSeconds": 0}}


def test_pods_created_and_deleted_show_up_and_disappear(view: LiveView, core: client.CoreV1Api,
                                                        conn: Connection) -> None:
    watcher = _Watcher(view)
    view.start()
    for name in ("lv-a", "lv-b"):
        core.create_namespaced_pod(conn.namespace, _pod(name))
    rows = watcher.wait_for(lambda rows: {r.name for r in rows if r.phase == "Running"} >= {"lv-a", "lv-b"})
    by_name = {r.name: r for r in rows}
    assert by_name["lv-a"].ready == "1/1" and by_name["lv-a"].restarts == 0
    assert by_name["lv-a"].node.startswith("kwok-node-")  # placed by the real scheduler
    # the scheduler's own event arrives on the second watch
    rows = watcher.wait_for(lambda rows: all(r.event_reason == "Scheduled" for r in rows if r.name == "lv-a"))
    assert "Successfully assigned" in next(r.event_text for r in rows if r.name == "lv-a")

    core.delete_namespaced_pod("lv-a", conn.namespace, grace_period_seconds=0)
    watcher.wait_for(lambda rows: "lv-a" not in {r.name for r in rows})
    watcher.wait_for_widget(lambda value: ">lv-b<" in value and ">lv-a<" not in value)
    core.delete_namespaced_pod("lv-b", conn.namespace, grace_period_seconds=0)
    watcher.wait_for(lambda rows: not rows)


def test_the_widget_changes_from_a_background_thread(view: LiveView, core: client.CoreV1Api,
                                                     conn: Connection) -> None:
    view.start()
    watcher = _Watcher(view)  # from here on, only the drawing thread may change the widget
    core.create_namespaced_pod(conn.namespace, _pod("lv-thread"))
    watcher.wait_for(lambda rows: any(r.name == "lv-thread" for r in rows))
    watcher.wait_for_widget(lambda value: "lv-thread" in value)
    threads = {name for _, name in watcher.changes}
    assert threads and all(name.startswith("jhtutorial-liveview-draw") for name in threads), threads
    assert threading.current_thread().name not in threads
    core.delete_namespaced_pod("lv-thread", conn.namespace, grace_period_seconds=0)


def test_a_view_shows_the_existing_pods_as_soon_as_it_is_started(conn: Connection, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(conn.namespace, _pod("lv-early"))
    view = live_view(conn)  # what a notebook cell displays right away
    try:
        assert ">lv-early<" in view.widget.value
        assert "lv-early" in view._repr_mimebundle_()["text/plain"]
    finally:
        view.stop()
        core.delete_namespaced_pod("lv-early", conn.namespace, grace_period_seconds=0)


def test_stop_leaves_no_thread_and_freezes_the_table(view: LiveView, core: client.CoreV1Api,
                                                     conn: Connection) -> None:
    view.start()
    assert len(_view_threads()) == 3  # pods, events, drawing
    assert view.running and view in running_views()
    view.stop()
    assert _view_threads() == []
    assert not view.running and view not in running_views()
    frozen = view.widget.value
    assert "(stopped)" in frozen
    core.create_namespaced_pod(conn.namespace, _pod("lv-after-stop"))
    time.sleep(1.0)  # long enough for a running view to have redrawn three times
    assert view.widget.value == frozen
    view.stop()  # a second stop is harmless
    core.delete_namespaced_pod("lv-after-stop", conn.namespace, grace_period_seconds=0)


def test_bursts_are_batched_into_few_redraws(core: client.CoreV1Api, conn: Connection) -> None:
    tally = Tally()  # the view reports each pod event and redraw to it
    view = LiveView(conn, interval=0.3, tally=tally)
    try:
        _bursts_are_batched(view, tally, core, conn)
    finally:
        view.stop()
    assert not hasattr(view, "stats")  # no counters of its own: only the hook it was given


def _bursts_are_batched(view: LiveView, tally: Tally, core: client.CoreV1Api, conn: Connection) -> None:
    watcher = _Watcher(view)
    view.start()
    watcher.wait_for(lambda rows: tally["render"] >= 1 or not rows, timeout=10)
    before_events, before_renders = tally["pod_event"], tally["render"]
    names = [f"lv-burst-{i}" for i in range(15)]
    for name in names:
        core.create_namespaced_pod(conn.namespace, _pod(name, {"app": "lv-burst"}))
    watcher.wait_for(lambda rows: sum(1 for r in rows if r.name in names and r.phase == "Running") == len(names))
    events = tally["pod_event"] - before_events
    renders = tally["render"] - before_renders
    assert events >= 3 * len(names)  # each pod: added, scheduled, running (and more)
    assert renders * 4 <= events, f"{renders} redraws for {events} pod changes: not batched"
    times = [t for t, name in watcher.changes if name.startswith("jhtutorial-liveview-draw")]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(gap >= view.interval * 0.9 for gap in gaps), f"redraws closer than the interval: {gaps}"
    core.delete_collection_namespaced_pod(conn.namespace, label_selector="app=lv-burst", grace_period_seconds=0)


def test_snapshot_is_the_same_in_two_namespaces_and_says_the_pods_are_simulated(
    conn: Connection, kubeconfig: Path, api_client: client.ApiClient, other_namespace: str
) -> None:
    """Two installs of one Deployment: different pod names, nodes, IPs, ages; one snapshot."""
    apps = client.AppsV1Api(api_client)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": PAUSE}]}}},
    }
    snapshots = []
    for namespace in (conn.namespace, other_namespace):
        apps.create_namespaced_deployment(namespace, deployment)
        other = connect(namespace=namespace, kubeconfig=kubeconfig)
        with LiveView(other) as view:
            _Watcher(view).wait_for(lambda rows: len(rows) == 2 and all(
                r.phase == "Running" and r.event_reason == "Scheduled" for r in rows))
        snapshots.append(view.snapshot())
        assert view.rows()[0].name != "web-<hash>-<id>"  # the live rows keep the real names
        other.close()
    assert snapshots[0] == snapshots[1]
    text = snapshots[0]
    assert SIMULATED_CAPTION in text.splitlines()[0]
    assert text.count("web-<hash>-<id>") == 2
    assert not re.search(r"\d+\.\d+\.\d+\.\d+|kwok-node|\b\d+s\b|[0-9a-f]{8}-[0-9a-f]{4}", text), text
    apps.delete_namespaced_deployment("web", conn.namespace, propagation_policy="Foreground")


def test_representations_for_papermill_nbval_and_static_pages(view: LiveView) -> None:
    view.start()
    view.stop()
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"] == view.snapshot()
    drawn = bundle["text/html"]
    assert "<table" in drawn or "no pods" in drawn
    assert html.escape(SIMULATED_CAPTION) in drawn
    assert not re.search(r"\b\d+s\b|kwok-node", drawn)
    assert "widget" in " ".join(bundle)  # a live kernel renders the widget itself


def test_the_view_says_what_keeps_pods_from_running(view: LiveView) -> None:
    # what the supervisor writes on pods (jhtutorial/not-backed, jhtutorial/backed-by), drawn from the rows
    why = "pod sandboxes cannot be made on this machine: pod sandboxes are made by root only"
    rows = [PodRow(name="hub-1", stable_name="hub-<hash>-<id>", phase="Running", ready="1/1", restarts=0, age="1s",
                   node="n", event_reason="", event_text="", runs_as="simulated", not_backed=why),
            PodRow(name="proxy-1", stable_name="proxy-<hash>-<id>", phase="Running", ready="1/1", restarts=0,
                   age="1s", node="n", event_reason="", event_text="", runs_as="simulated", not_backed=why)]
    drawn = view._html(rows, live=False)
    assert drawn.count(html.escape(f"not run here: {why}")) == 1  # once, however many pods it keeps
    in_sandboxes = [dataclasses.replace(row, runs_as="sandbox", not_backed="") for row in rows]
    assert "not run here" not in view._html(in_sandboxes, live=False)


def test_the_widget_table_keeps_names_on_one_line_and_scrolls_when_narrow(view: LiveView) -> None:
    # Seen in JupyterLab at 1280 px with the file browser open: names and nodes broke at their
    # hyphens ("proxy-68bcddb54c-" / "9fp6g"), rows 28 px per line (the widget's line height).
    row = PodRow(name="proxy-68bcddb54c-9fp6g", stable_name="proxy-<hash>-<id>", phase="Running", ready="2/2",
                 restarts=0, age="42s", node="kwok-node-1", event_reason="Scheduled",
                 event_text="Scheduled: Successfully assigned ns/proxy-68bcddb54c-9fp6g to kwok-node-1")
    live = view._html([row], live=True)
    cells = re.findall(r"<td style='([^']*)'>([^<]*)</td>", live)
    assert [value for _, value in cells][0] == "proxy-68bcddb54c-9fp6g"
    assert all("white-space:nowrap" in style for style, _ in cells[:-1])
    assert "white-space:nowrap" not in cells[-1][0]  # only the event text wraps
    assert "line-height" in live
    assert view.widget.layout.overflow == "auto"  # a narrow notebook scrolls the table instead of cutting it off
    # the deterministic HTML kept by papermill and nbviewer is unchanged
    stable = view._html([row], live=False, stable=True)
    assert "nowrap" not in stable and "line-height" not in stable
    assert "<table style='font-family:monospace'>" in stable


def test_a_second_view_of_the_namespace_replaces_the_first(conn: Connection) -> None:
    first = live_view(conn)
    second = live_view(conn)
    try:
        assert not first.running and second.running
        assert [v for v in running_views() if v.namespace == conn.namespace] == [second]
        assert len(_view_threads()) == 3
    finally:
        second.stop()
    assert _view_threads() == []


def test_a_view_that_may_not_read_events_still_shows_pods(
    api_client: client.ApiClient, namespace: str, tmp_path: Path, core: client.CoreV1Api
) -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    kubeconfig = service_account_kubeconfig(api_client, namespace, "lv-pods-only", rules, tmp_path / "kc")
    limited = connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
    core.create_namespaced_pod(namespace, _pod("lv-limited"))
    try:
        with LiveView(limited) as view:
            watcher = _Watcher(view)
            watcher.wait_for(lambda rows: any(r.name == "lv-limited" for r in rows))
            watcher.wait_for_widget(lambda value: "events not shown" in value)
        assert "forbidden" in view.widget.value.lower()
        assert all(r.event_reason == "" for r in view.rows())
    finally:
        limited.close()
        core.delete_namespaced_pod("lv-limited", namespace, grace_period_seconds=0)
    assert _view_threads() == []


def test_a_view_that_may_not_list_pods_says_so(api_client: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    kubeconfig = service_account_kubeconfig(api_client, namespace, "lv-nothing", [], tmp_path / "kc")
    limited = connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        with LiveView(limited) as view:
            watcher = _Watcher(view)
            watcher.wait_for_widget(lambda value: "pod watch stopped" in value)
        assert "forbidden" in view.snapshot().lower()
    finally:
        limited.close()
    assert _view_threads() == []
