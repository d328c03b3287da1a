"""Log in to the hub as a user, start their server, and follow the spawn stage by stage.

    >>> result = login("admin", "admin")        # doctest: +SKIP
    >>> print(result)                           # doctest: +SKIP
    login as admin in namespace jhtutorial: the server is up (6.1 s)
       0.9 s  the hub answers at http://127.0.0.1:40211 (kubectl: kubectl port-forward ... svc/proxy-public 8080:80)
       1.0 s  logged in as admin (POST /hub/login -> 302 /hub/spawn, session cookie set)
       1.3 s  PVC claim-admin created by KubeSpawner (Pending)
       ...
       6.1 s  http://127.0.0.1:40211/user/admin/api: a Jupyter server answered (version 2.21.1)

What a learner would do by hand: ``kubectl port-forward svc/proxy-public 8080:80``,
open http://localhost:8080 in a browser, log in as admin/admin, and watch
``kubectl get pods -n NS --watch`` while the server starts: a pod ``jupyter-admin``
appears, with its home on PVC ``claim-admin``, and the browser lands in JupyterLab.

Here the same happens over HTTP, and each stage is reported as it happens:

1. **the way in**: :func:`jhtutorial.hub_access` (a port-forward to proxy-public,
   or minikube's URL or a node port), once the hub and proxy pods are Ready;
2. **login**: ``GET /hub/login`` for the form and its ``_xsrf`` token, then
   ``POST /hub/login`` with the user name and password; the hub answers with a
   redirect and a session cookie;
3. **start**: ``GET /hub/spawn``, what the browser loads next; the hub asks
   KubeSpawner to create the PVC and the pod;
4. **follow**: two watches (the user's pods and PVCs, matched by KubeSpawner's
   ``hub.jupyter.org/username`` annotation) report created, Bound, scheduled,
   Running, Ready; the hub's progress API (``/hub/api/users/NAME/server/progress``,
   the progress bar of the spawn page) reports what the hub sees;
5. **answer**: ``/user/NAME/api`` must come from a Jupyter server, through nginx
   and configurable-http-proxy.

The path is the same on every cluster. On the local simulated cluster the pods'
programs run in sandboxes made of Linux namespaces
(:mod:`jhtutorial.localcluster.backing`): nginx, configurable-http-proxy,
JupyterHub with KubeSpawner, and the user's ``jupyterhub-singleuser`` are
real; the containers are not (no image, no limits). Where the proxy pod is not backed (nginx not installed,
a namespace not made by the tutorial), nothing can answer: the result says so
and why, without trying.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .access import Access, hub_access, require_deployed
from .connect import Connection, current_connection
from .errors import AccessError, LoginFailed, TutorialError, WaitTimeout
from .kubeapi import PODS, PVCS
from .localcluster.backing import BACKED_BY_ANNOTATION, SANDBOXED_BY
from .objects import pod_is_ready
from .readable import Readable
from .waits import wait_pods_ready
from .watching import Reflector

Obj = dict[str, Any]
USERNAME_ANNOTATION = "hub.jupyter.org/username"  # KubeSpawner puts the plain user name here
POD_SELECTOR = "component=singleuser-server"
PVC_SELECTOR = "component=singleuser-storage"
HUB_PODS = "app.kubernetes.io/instance=jhtutorial,app.kubernetes.io/component in (hub,proxy)"
HTTP_SECONDS = 30.0
PROBE_SECONDS = 3.0
PROGRESS_RETRY_SECONDS = 1.0  # between a broken progress stream and the next request for it


@dataclass(frozen=True)
class Stage:
    """One thing that happened, ``seconds`` after login() began."""

    seconds: float
    text: str
    ok: bool = True

    def __str__(self) -> str:
        return f"{self.seconds:6.1f} s  {'' if self.ok else 'PROBLEM: '}{self.text}"


@dataclass
class LoginResult(Readable):
    """What login() saw, stage by stage, and what it means."""

    user: str
    namespace: str
    url: str | None = None  # where the login went
    simulated: bool = False  # the local simulated cluster: programs run in sandboxes there
    sandboxed: bool = False  # ... the user's pod runs in a sandbox of its own (else it is purely simulated)
    not_run: str | None = None  # why nothing could log in (the proxy pod is purely simulated)
    logged_in: bool = False
    pod: str | None = None
    pvc: str | None = None
    pod_ip: str | None = None
    pod_running: bool = False
    pod_ready: bool = False
    pvc_bound: bool = False
    hub_said_ready: bool = False
    hub_failed: str | None = None
    route_missing: bool = False  # the hub counts the server as running, the proxy has no route to it
    server_answered: bool = False  # a Jupyter server answered at /user/NAME/api
    server_answer: str = ""  # what came back instead, in words
    stages: list[Stage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Did the lesson's login work: logged in, and the user's Jupyter server answered?"""
        return self.logged_in and self.server_answered

    @property
    def kubectl(self) -> str:
        return f"kubectl get pods,pvc -n {self.namespace} --watch"

    def headline(self) -> str:
        where = f"login as {self.user} in namespace {self.namespace}"
        if self.not_run:
            return f"{where}: not tried, nothing can answer: {self.not_run}"
        if self.server_answered:
            return f"{where}: the server is up"
        return f"{where}: the server did not come up"

    def lines(self) -> list[str]:
        out = [f"{self.headline()} ({self.seconds:.1f} s)"]
        out += [f"  {stage}" for stage in self.stages]
        out += [f"  {note}" for note in self.notes]
        out.append(f"  watch it yourself: {self.kubectl}")
        return out


def login(
    user: str = "admin",
    password: str = "admin",
    *,
    conn: Connection | None = None,
    url: str | None = None,
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoginResult:
    """Log in to the hub, start the user's server and report each stage.

    Args:
        user, password: the tutorial's hub accepts any user name with the password ``admin``.
        conn: a connection (default: the last one made).
        url: a hub URL to use instead of finding one (e.g. a port-forward you opened).
        timeout: seconds for the server to answer (default 60 on the local simulated cluster,
            300 elsewhere: first image pulls are slow).
        progress: called with each stage's line as it happens (the CLI prints them).

    Raises StepOutOfOrder (the tutorial is not deployed; names the step),
    LoginFailed (wrong password, or the server did not start: ``err.result``
    holds the stages), AccessError. On the local cluster, when the proxy pod is
    purely simulated, returns a result whose ``not_run`` says why.

    Example::

        result = login()          # then: kubectl get pods -n NS  -> jupyter-admin
        assert result.ok
    """
    import requests

    conn = conn or current_connection()
    require_deployed(conn, through="deployments")
    simulated = conn.cluster_kind == "local"
    limit = timeout if timeout is not None else (60.0 if simulated else 300.0)

    result = LoginResult(user=user, namespace=conn.namespace, simulated=simulated)
    clock = _Clock(result, progress)
    watcher = _SpawnWatcher(conn, user, clock, result)
    access: Access | None = None
    reader: _ProgressReader | None = None
    session = requests.Session()
    session.trust_env = False  # the hub is on this machine or the cluster's own address: no HTTP proxy between
    try:
        if url:
            base = url.rstrip("/")
            clock.stage(f"using the hub at {base}")
        else:
            _wait_hub_and_proxy(conn, clock, limit)
            access = hub_access(conn)
            if access.url is None:
                result.not_run = "; ".join(access.notes)
                clock.stage(f"nothing can answer: {result.not_run}", ok=False)
                return result
            base = access.url
            clock.stage(f"the hub answers at {base} ({access.how}: {access.kubectl})")
        result.url = base
        watcher.start()  # before the start request, so no stage is missed

        _log_in(session, base, user, password, clock)
        result.logged_in = True
        _request_start(session, base, user, clock)
        reader = _ProgressReader(session, base, user, clock, result, watcher.changed)
        reader.start()

        deadline = time.monotonic() + limit
        with watcher.changed:
            while not (result.hub_failed or result.hub_said_ready):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    clock.stage(f"the hub did not report {user}'s server ready within {limit:.0f} s", ok=False)
                    break
                watcher.changed.wait(min(remaining, 1.0))
        _check_server(session, base, user, result, clock)
    except (LoginFailed, AccessError) as err:
        err.result = result  # type: ignore[attr-defined]  # the stages so far, for the notebook and the CLI
        raise
    finally:
        if reader is not None:
            reader.close()
        if access is not None:
            access.close()
        watcher.stop()
        session.close()
        result.seconds = clock.now()
    _explain(result)
    if not result.ok:
        err = LoginFailed(
            result.headline() + "\n" + "\n".join(f"    {stage}" for stage in result.stages),
            fix=_failure_fix(result),
        )
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result


def follow_login(
    url: str,
    user: str = "admin",
    *,
    conn: Connection | None = None,
    timeout: float = 120.0,
    progress: Callable[[str], None] | None = None,
) -> LoginResult:
    """Follow a login made in a browser: the user's PVC and pod appear and become Ready, then the
    server answers through ``url`` (the proxy). Returns what was seen; ``server_answered`` is False
    when nobody logged in (or the server did not start) within ``timeout`` seconds.

    Example (notebook 07: the learner logs in at access.url while this runs)::

        seen = follow_login(access.url, "admin", timeout=300, progress=print)
    """
    import requests

    conn = conn or current_connection()
    result = LoginResult(user=user, namespace=conn.namespace, url=url.rstrip("/"),
                         simulated=conn.cluster_kind == "local")
    clock = _Clock(result, progress)
    watcher = _SpawnWatcher(conn, user, clock, result)
    session = requests.Session()
    session.trust_env = False
    try:
        watcher.start()
        watcher.adopt_running()
        clock.stage(f"waiting for {user} to log in at {result.url} (and the hub to start the server)")
        deadline = time.monotonic() + timeout
        with watcher.changed:
            while not result.pod_ready and time.monotonic() < deadline:
                watcher.changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        # The hub adds the proxy's route once the server answers it, a moment after the pod is Ready:
        # ask through the proxy until it answers or the time is up.
        while result.pod_ready and time.monotonic() < deadline:
            answered, text = _probe(session, f"{result.url}/user/{user}/api", user)
            if answered:
                result.logged_in = result.server_answered = True
                result.server_answer = text
                clock.stage(f"{result.url}/user/{user}/api: {text}")
                break
            time.sleep(0.5)  # the route appears without an event this side could watch
        if not result.server_answered and result.pod is None:
            # nobody has logged in yet: that is the learner's pace, not a fault of the hub
            result.server_answer = f"nobody logged in as {user} within {timeout:.0f} s"
            clock.stage(result.server_answer)
        elif not result.server_answered:
            result.server_answer = f"no server of {user} answered within {timeout:.0f} s"
            clock.stage(result.server_answer, ok=False)
    finally:
        watcher.stop()
        session.close()
        result.seconds = clock.now()
    _explain(result)
    return result


def _wait_hub_and_proxy(conn: Connection, clock: _Clock, limit: float) -> None:
    """The hub and proxy pods Ready first: a port-forward needs a Ready pod, the login a running hub."""
    try:
        waited = wait_pods_ready(HUB_PODS, count=2, conn=conn, timeout=limit)
    except WaitTimeout as err:
        raise LoginFailed(
            f"the hub and proxy pods are not both Ready in namespace {conn.namespace}: {err.problem}",
            fix=f"`kubectl logs -n {conn.namespace} deploy/hub` shows why the hub is not up (a mistake in "
            f"hub-config shows there as a Python traceback); `kubectl logs -n {conn.namespace} deploy/proxy --all-containers` "
            "for the proxy",
        ) from None
    clock.stage(f"hub and proxy pods Ready (waited {waited.seconds:.1f} s)")


# --- the HTTP side --------------------------------------------------------------------------


def _log_in(session: Any, base: str, user: str, password: str, clock: _Clock) -> None:
    import requests

    try:
        form = session.get(f"{base}/hub/login", timeout=HTTP_SECONDS)
    except requests.RequestException as err:
        raise AccessError(f"the hub does not answer at {base}/hub/login: {err}",
                          fix="check the URL (jhtutorial.hub_access()) and that the hub pod is Ready") from None
    if form.status_code != 200:
        raise AccessError(f"{base}/hub/login answered HTTP {form.status_code}, not the hub's login page",
                          fix="is this the hub's URL? `jhtutorial url` finds it")
    match = re.search(r'name="_xsrf"\s+value="([^"]+)"', form.text)
    # The form carries the token JupyterHub checks against its _xsrf cookie (tornado's XSRF protection).
    xsrf = match.group(1) if match else session.cookies.get("_xsrf", "")
    answer = session.post(f"{base}/hub/login", data={"username": user, "password": password, "_xsrf": xsrf},
                          allow_redirects=False, timeout=HTTP_SECONDS)
    if answer.status_code in (301, 302, 303) and any(c.name.startswith("jupyterhub-") for c in session.cookies):
        clock.stage(f"logged in as {user} (POST /hub/login -> {answer.status_code} "
                    f"{_path(answer.headers.get('Location', ''))}, session cookie set)")
        return
    said = re.search(r"<p[^>]*login_error[^>]*>\s*([^<]+)", answer.text or "")
    message = said.group(1).strip() if said else _first_line(answer.text)
    raise LoginFailed(
        f"the hub refused the login as {user!r}: HTTP {answer.status_code} {message!r}",
        fix="the tutorial's hub-config accepts any user name with the password 'admin' "
        "(DummyAuthenticator.password); user 'admin' is the admin",
    )


def _request_start(session: Any, base: str, user: str, clock: _Clock) -> None:
    # What the browser loads right after the login redirect: the hub starts the server
    # (no options form in this config) and sends the browser on to the pending page.
    clock.stage(f"requesting {user}'s server (GET /hub/spawn, the page a browser opens after the login)")
    answer = session.get(f"{base}/hub/spawn", allow_redirects=False, timeout=HTTP_SECONDS + 15)
    where = _path(answer.headers.get("Location", ""))
    if answer.status_code in (301, 302, 303):
        clock.stage(f"the hub answered the start request: {answer.status_code} -> {where}")
        return
    page = re.search(r'<div class="error">(.*?)</div>', answer.text or "", re.S)
    said = " ".join(re.sub(r"<[^>]+>", " ", page.group(1)).split())[:200] if page else _first_line(answer.text)
    clock.stage(f"the hub answered the start request with HTTP {answer.status_code}: {said}", ok=False)
    raise LoginFailed(f"the hub did not start {user}'s server: HTTP {answer.status_code} {said!r}",
                      fix="a 403 from the API server means the hub's Role lacks a permission (rbac.yaml, step 01): "
                      "`kubectl describe role hub`; otherwise `kubectl logs deploy/hub` has the hub's side")


class _ProgressReader:
    """Reads the hub's spawn progress (server-sent events) in a thread."""

    def __init__(self, session: Any, base: str, user: str, clock: _Clock, result: LoginResult,
                 changed: threading.Condition) -> None:
        self.session, self.base, self.user, self.clock, self.result = session, base, user, clock, result
        self.changed = changed
        self._response: Any = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jhtutorial-login-progress", daemon=True)
        self._last = ""  # the last message shown: a repeated event is shown once

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.raw.shutdown()  # wakes the blocked read at once (urllib3 >= 2.3)
            with contextlib.suppress(Exception):
                response.close()
        self._thread.join(10)

    def _run(self) -> None:
        """Follow the stream; one that breaks before the hub said ready or failed (the way in or the API server
        restarted meanwhile) is asked for again, as a browser's EventSource does on the spawn-pending page."""
        broken = False
        while not self._closed.is_set():
            why = self._follow()
            if why is None or self.result.hub_said_ready or self.result.hub_failed:
                return
            if not broken:
                broken = True
                self.clock.stage(f"the hub's progress stream broke ({why}); asking for it again until it answers")
            self._closed.wait(PROGRESS_RETRY_SECONDS)

    def _follow(self) -> str | None:
        """Read the stream to its end; None when there is nothing more to ask, else why it broke."""
        import requests

        url = f"{self.base}/hub/api/users/{self.user}/server/progress"
        try:
            self._response = self.session.get(url, stream=True, timeout=(5, None),
                                              headers={"Accept": "text/event-stream"})
            if self._closed.is_set():
                return None
            if self._response.status_code != 200:
                self.clock.stage(f"hub progress API: HTTP {self._response.status_code} "
                                 f"{_first_line(self._response.text)}")
                return None
            for raw in self._response.iter_lines():
                if self._closed.is_set():
                    return None
                line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                if not line.startswith("data:"):
                    continue
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    continue
                self._handle(event)
        except (requests.RequestException, OSError, ValueError, AttributeError) as err:
            return None if self._closed.is_set() else _reason(err)  # closed by close(), or the way in broke
        return "it ended without a last event"

    def _handle(self, event: Obj) -> None:
        message = progress_message(event)
        pct = event.get("progress")
        prefix = f"hub progress {pct}%" if pct is not None else "hub progress"
        with self.changed:
            if message and message == self._last and not event.get("failed") and not event.get("ready"):
                return  # the same event again (the scheduler retried): one line is enough
            self._last = message
            if event.get("failed"):
                self.result.hub_failed = message or "failed"
                self.clock.stage(f"{prefix}: {message}", ok=False)
            elif event.get("ready"):
                self.result.hub_said_ready = True
                self.clock.stage(f"{prefix}: {message}")
            else:
                self.clock.stage(f"{prefix}: {message}")
            self.changed.notify_all()


# KubeSpawner passes each Kubernetes event on as "<its time> [<type>] <message>"; the stage line already says
# when (seconds since the login), so the raw timestamp goes
_EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?\s+")


def progress_message(event: Obj) -> str:
    """The message of one event of the hub's progress stream, without KubeSpawner's raw timestamp.

    >>> progress_message({"message": "2026-11-25T20:58:03.740411Z [Warning] 0/3 nodes are available"})
    '[Warning] 0/3 nodes are available'
    >>> progress_message({"progress": 0, "message": "Server requested"})
    'Server requested'
    """
    return _EVENT_TIME.sub("", str(event.get("message") or "").strip())


def _check_server(session: Any, base: str, user: str, result: LoginResult, clock: _Clock) -> None:
    """Ask the user's server for /api through the proxy, which a Jupyter server answers with its version."""
    # Only through the proxy, never to a pod IP directly: on the simulated cluster pod IPs are
    # made up, and this machine sends no traffic beyond loopback.
    target = f"{base}/user/{user}/api"
    answered, text = _probe(session, target, user)
    result.server_answered, result.server_answer = answered, text
    clock.stage(f"{target}: {text}", ok=answered)
    if not answered and result.hub_said_ready and "the hub answered instead" in text:
        result.route_missing = True
        clock.stage(f"the hub counts {user}'s server as running, but the proxy has no route to it: the proxy pod was "
                    "replaced after the server started, and configurable-http-proxy keeps its routes in memory only; "
                    "the hub puts them back when it starts, or at its next check (every 5 minutes)", ok=False)


def _probe(session: Any, url: str, user: str) -> tuple[bool, str]:
    import requests

    try:
        answer = session.get(url, timeout=PROBE_SECONDS, allow_redirects=False)
    except requests.RequestException as err:
        return False, f"no answer ({_reason(err)})"
    try:
        version = answer.json().get("version") if answer.status_code == 200 else None
    except ValueError:
        version = None
    if version:
        return True, f"a Jupyter server answered (version {version})"
    where = _path(answer.headers.get("Location", ""))
    if answer.status_code in (301, 302, 303, 307, 308) and where.startswith("/hub/"):
        # The proxy has a route for /user/NAME/ only while the server runs: without one the request reached
        # the hub, which sends the browser back to itself (to wait for the server, or to start it).
        return False, (f"HTTP {answer.status_code} -> {where}: no server of {user} is running, so the hub "
                       "answered instead and redirected the request")
    server = answer.headers.get("Server") or "unknown"
    return False, (f"HTTP {answer.status_code} from a server calling itself {server!r}: not a Jupyter server "
                   "(no version in the answer)")


# --- the Kubernetes side ----------------------------------------------------------------------


class _Clock:
    """Stamps stages with the seconds since login() began, and passes them on."""

    def __init__(self, result: LoginResult, progress: Callable[[str], None] | None) -> None:
        self.started = time.monotonic()
        self.result = result
        self.progress = progress
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.started

    def stage(self, text: str, ok: bool = True) -> None:
        stage = Stage(round(self.now(), 1), text, ok)
        with self.lock:
            self.result.stages.append(stage)
        if self.progress is not None:
            self.progress(str(stage))


class _SpawnWatcher:
    """Two watches, the user's pods and PVCs, in threads: each change becomes a stage."""

    def __init__(self, conn: Connection, user: str, clock: _Clock, result: LoginResult) -> None:
        self.conn, self.user, self.clock, self.result = conn, user, clock, result
        self.changed = threading.Condition()
        self._reflectors = [Reflector(conn.api, PODS, conn.namespace, label_selector=POD_SELECTOR),
                            Reflector(conn.api, PVCS, conn.namespace, label_selector=PVC_SELECTOR)]
        self._threads = [threading.Thread(target=self._follow, args=(r,), daemon=True,
                                          name=f"jhtutorial-login-watch-{r.resource.plural}")
                         for r in self._reflectors]
        self._seen: dict[str, set[str]] = {}
        self._synced = threading.Event()
        self._synced_count = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._synced.wait(15)  # both lists done: what existed before the login is known

    def stop(self) -> None:
        for reflector in self._reflectors:
            reflector.stop()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(10)

    def _follow(self, reflector: Reflector) -> None:
        first = True
        try:
            for event in reflector.events():
                if event.type == "SYNCED":
                    if first:
                        for obj in reflector.cache.values():
                            if self._mine(obj):
                                self._existing(obj)
                        first = False
                        with self.changed:
                            self._synced_count += 1
                            if self._synced_count == len(self._reflectors):
                                self._synced.set()
                    continue
                if first or not self._mine(event.object):
                    continue
                with self.changed:
                    if event.object.get("kind") == "Pod":
                        self._pod(event.type, event.object)
                    else:
                        self._pvc(event.type, event.object)
                    self.changed.notify_all()
        except TutorialError as err:
            self.clock.stage(f"watching {reflector.resource.plural} failed: {err.problem}", ok=False)
            self._synced.set()

    def _mine(self, obj: Obj) -> bool:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        return annotations.get(USERNAME_ANNOTATION) == self.user

    def adopt_running(self) -> None:
        """Count a pod of the user that was already Running and Ready when the watch began (a learner who
        logged in before the following cell ran): for follow_login, not for a new start."""
        with self.changed:
            for obj in self._reflectors[0].cache.values():
                status = obj.get("status") or {}
                if not self._mine(obj) or (obj.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                if pod_is_ready(obj):
                    self.result.pod, self.result.pod_running, self.result.pod_ready = (
                        obj["metadata"]["name"], True, True)
                    self.result.pod_ip = status.get("podIP")
                else:  # still starting: its next changes are news
                    self._seen.get(str(obj["metadata"].get("uid")), set()).difference_update({"running", "ready"})

    def _existing(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        # what this object already went through is no news: only its later changes are stages
        self._seen[str(meta.get("uid"))] = {"created", "scheduled", "running", "ready", "bound", "earlier"}
        if obj.get("kind") == "Pod":
            status = obj.get("status") or {}
            ready = pod_is_ready(obj)
            # the user's server from an earlier start: the hub keeps it if it still runs, else KubeSpawner
            # replaces it (and the new pod's stages follow)
            self.result.pod, self.result.pod_ip = meta.get("name"), status.get("podIP")
            self.result.pod_running, self.result.pod_ready = status.get("phase") == "Running", ready
            self.clock.stage(f"pod {meta.get('name')} already exists ({status.get('phase')}"
                             f"{', Ready' if ready else ''}), from an earlier start: the hub keeps a server that "
                             "still runs, KubeSpawner replaces one that does not")
        else:
            phase = (obj.get("status") or {}).get("phase")
            self.result.pvc, self.result.pvc_bound = meta.get("name"), phase == "Bound"
            self.clock.stage(f"PVC {meta.get('name')} already exists ({phase}), kept from an earlier server: "
                             "the new pod mounts it again")

    def _first(self, obj: Obj, what: str) -> bool:
        seen = self._seen.setdefault(str((obj.get("metadata") or {}).get("uid")), set())
        if what in seen:
            return False
        seen.add(what)
        return True

    def _pod(self, kind: str, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            if self._first(pod, "deleted"):
                earlier = "the earlier " if "earlier" in self._seen.get(str(pod["metadata"].get("uid")), set()) else ""
                self.clock.stage(f"{earlier}pod {name} deleted")
                self.result.pod_running = self.result.pod_ready = False  # until its replacement says otherwise
            return
        status, spec = pod.get("status") or {}, pod.get("spec") or {}
        if self._first(pod, "created"):
            self.result.pod = name
            self.clock.stage(f"pod {name} created by KubeSpawner")
        if spec.get("nodeName") and self._first(pod, "scheduled"):
            self.clock.stage(f"pod {name} scheduled on node {spec['nodeName']}")
        backed = ((pod.get("metadata") or {}).get("annotations") or {}).get(BACKED_BY_ANNOTATION)
        if backed and backed.startswith(SANDBOXED_BY):
            self.result.sandboxed = True  # a pod network of its own: its pod IP is real there
        if status.get("phase") == "Running" and self._first(pod, "running"):
            self.result.pod, self.result.pod_running, self.result.pod_ip = name, True, status.get("podIP")
            self.clock.stage(f"pod {name} Running, pod IP {status.get('podIP')}"
                             + (" (simulated; never contacted)" if self.result.simulated and not self.result.sandboxed
                                else ""))
        if backed and self._first(pod, "backed"):
            self.clock.stage(f"pod {name} backed by {backed}")
        ready = pod_is_ready(pod)
        if ready and self._first(pod, "ready"):
            self.result.pod_ready = True
            self.clock.stage(f"pod {name} Ready")

    def _pvc(self, kind: str, pvc: Obj) -> None:
        name = pvc["metadata"]["name"]
        if kind == "DELETED":
            if self._first(pvc, "deleted"):
                self.clock.stage(f"PVC {name} deleted")
            return
        phase = (pvc.get("status") or {}).get("phase", "Pending")
        if self._first(pvc, "created"):
            self.result.pvc = name
            self.clock.stage(f"PVC {name} created by KubeSpawner ({phase})")
        if phase == "Bound" and self._first(pvc, "bound"):
            self.result.pvc, self.result.pvc_bound = name, True
            self.clock.stage(f"PVC {name} Bound to volume {(pvc.get('spec') or {}).get('volumeName')}")


def _explain(result: LoginResult) -> None:
    claim = result.pvc or f"claim-{result.user}"  # KubeSpawner's name for the user's claim
    if result.server_answered:
        result.notes.append(f"{result.user}'s server answers through the proxy: open {result.url}"
                            f"/user/{result.user}/lab in a browser (while the port-forward runs)")
        if result.sandboxed:
            result.notes.append("on the local simulated cluster it runs in a sandbox of its own, not a container: "
                                "JupyterLab from this machine's Python as uid 1000 in its own network and process "
                                f"namespaces, the machine's files read-only as its image, {claim}'s volume at "
                                "/home/jovyan; no resource limits")
    if result.hub_failed:
        result.notes.append(f"JupyterHub gave up on the server: {result.hub_failed}")


def _failure_fix(result: LoginResult) -> str:
    if result.route_missing:
        return (f"`kubectl rollout restart deployment/hub -n {result.namespace}`: the new hub gives the proxy its "
                "routes back as it starts (or wait up to 5 minutes for its next check)")
    if result.hub_failed:
        return "the hub's message above says why; `kubectl logs -n " + result.namespace + " deploy/hub` has the rest"
    if result.simulated:
        return (f"`kubectl logs -n {result.namespace} jupyter-{result.user}` shows the server's own log, "
                f"`kubectl logs -n {result.namespace} deploy/hub` the hub's; `jhtutorial cluster status` lists the "
                "pods that run their programs here")
    return ("a first start pulls a large image: try again with a longer timeout, and watch "
            f"`kubectl get pods -n {result.namespace} --watch` and `kubectl describe pod jupyter-{result.user}`")


def _path(location: str) -> str:
    return re.sub(r"^https?://[^/]+", "", location) or "(no Location)"


def _first_line(text: str | None) -> str:
    text = re.sub(r"<[^>]+>", " ", text or "")
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else ""


def _reason(err: BaseException) -> str:
    text = str(err)
    match = re.search(r"\[Errno [^\]]+\] [^')\"]+|timed out|Read timed out|Connection refused", text)
    return match.group(0) if match else text[:200]


def stop_server(user: str = "admin", password: str = "admin", *, conn: Connection | None = None,
                url: str, timeout: float = 60.0) -> str:
    """Stop a user's server as its owner would from the hub's Home page ("Stop My Server"): log in, then
    ``DELETE /hub/api/users/NAME/server``; wait until KubeSpawner has deleted the pod. Returns what happened.

    The hub deletes the pod ``jupyter-NAME`` and keeps the PVC ``claim-NAME``: the home folder outlives the
    server, and the next login mounts it again."""
    import requests

    from .waits import wait_deleted

    conn = conn or current_connection()
    base = url.rstrip("/")
    result = LoginResult(user=user, namespace=conn.namespace, url=base)
    session = requests.Session()
    session.trust_env = False
    try:
        _log_in(session, base, user, password, _Clock(result, None))
        # a browser's API call with the session cookie carries the _xsrf cookie's value back (tornado's check)
        answer = session.delete(f"{base}/hub/api/users/{user}/server", timeout=HTTP_SECONDS,
                                headers={"X-XSRFToken": session.cookies.get("_xsrf", ""), "Referer": f"{base}/hub/home"})
    finally:
        session.close()
    if answer.status_code not in (202, 204):
        raise LoginFailed(f"the hub did not stop {user}'s server: HTTP {answer.status_code} "
                          f"{_first_line(answer.text)!r}",
                          fix=f"stop it in the browser: {base}/hub/home, \"Stop My Server\"")
    wait_deleted(PODS, f"jupyter-{user}", conn=conn, timeout=timeout)
    return f"stopped {user}'s server (DELETE /hub/api/users/{user}/server -> {answer.status_code}); pod jupyter-{user} is gone"
