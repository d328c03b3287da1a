"""The local cluster's supervisor: pods on the simulated nodes, backed by their real programs in sandboxes.

One supervisor per local cluster, for all namespaces; ``jhtutorial cluster up``
starts it (or a new one in place of a dead one), ``cluster status`` reports it,
``cluster down`` stops it and every process it started. It follows namespaces,
Services and pods with the package's Reflector (list, then watch) and, for
each pod that

- is scheduled on one of the simulated nodes,
- lives in a namespace marked for backing (label ``jhtutorial/backed=true``, set
  by ``jhtutorial up``, notebook 00 and ``jhtutorial classroom up``; the rule:
  :mod:`.policy`),
- has only containers whose images have a program here (:mod:`.programs`),

runs it in a sandbox of its own (:mod:`.sandboxed_pod`): its own network
with its pod IP and the Services' ClusterIPs (:mod:`.pod_networks`), its
volumes at their mount paths, its containers' commands unchanged, as their
users. Every other pod stays purely simulated. When a namespace loses the
mark, its pods are handed back to kwok. Where sandboxes cannot be made it says
why (in its status, which ``cluster status`` and the live view show) and backs
no pod: they stay purely simulated.

An API server that stops answering (a restart, an outage) ends nothing: the
watches resume, what could not be done is tried again with a back-off, and the
programs keep running.

    $ python -m jhtutorial.localcluster.backing.supervisor --kubeconfig K --folder F

Every program runs under a keeper (:mod:`.keeper`) and in a sandbox whose
processes end with it, so nothing it started outlives the supervisor, even one
killed with SIGKILL.

It writes what it does to ``F/supervisor.log`` (via its starter) and its
current state to ``F/status.json``; each backed pod has a folder under
``F/pods/NAMESPACE/``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from collections.abc import Callable
from typing import Any

import yaml

from ...errors import ClusterUnreachable, TutorialError
from ...kubeapi import NAMESPACES, PODS, SERVICES
from ...watching import Reflector
from ..paths import HOSTPATH_ROOT, private_dir
from . import BACKED_BY_ANNOTATION, KWOK_STATUS_ANNOTATION, NOT_BACKED_ANNOTATION
from .credentials import TokenLifetime
from .images import environment_problem
from .kwok_objects import BACKING_ANNOTATIONS, withdraw
from .policy import namespace_backed
from .pod_networks import PodNetworks, remove_recorded_routers, routes_for
from .programs import missing_programs, program_for
from .retry import Backoff
from .sandbox import remove_all, unavailable_reasons
from .sandboxed_pod import SandboxedPod, sandbox_prefix
from . import user_namespace

Obj = dict[str, Any]
RETRY_SECONDS = 1.0


class Supervisor:
    def __init__(self, kubeconfig: Path, folder: Path, tokens: TokenLifetime = TokenLifetime()) -> None:
        from kubernetes import config as kube_config
        from kubernetes.client import ApiClient

        from ...kubeapi import KubeApi

        self.folder = folder
        self.api = ApiClient(configuration=_configuration(kube_config, kubeconfig))
        self.kube = KubeApi(self.api)
        loaded = yaml.safe_load(kubeconfig.read_text())
        self.cluster_entry = dict(loaded["clusters"][0]["cluster"])
        self.namespaces: dict[str, Obj] = {}
        self.services: dict[str, Obj] = {}
        self.pods: dict[str, Obj] = {}
        self.backings: dict[str, SandboxedPod] = {}
        self.waiting: dict[str, str] = {}  # pod key -> why it is not started yet
        self.skipped: dict[str, str] = {}  # pod key -> why it stays purely simulated
        self.missing = missing_programs()
        self.events: queue.Queue[tuple[str, str, Obj]] = queue.Queue()
        self._stop = threading.Event()
        self._reflectors = [Reflector(self.api, NAMESPACES), Reflector(self.api, SERVICES), Reflector(self.api, PODS)]
        self._stopping: list[threading.Thread] = []
        self._api = Backoff()  # while the API server does not answer, retries come less and less often
        self._unannotated: dict[str, tuple[Obj, dict[str, str | None]]] = {}  # pod key -> annotations to write
        self.started = time.time()
        self.tokens = tokens  # how long each pod's ServiceAccount token lives, and when it is renewed
        self.sandbox_problems: list[str] = []
        self.networks: PodNetworks | None = None  # None: sandboxes cannot be made here (sandbox_problems says why)
        self._prepare_sandboxes()

    def _prepare_sandboxes(self) -> None:
        """Check that sandboxes can be made here (else say why and back nothing); remove what a killed
        supervisor of this cluster left."""
        hidden = {self.folder.parent.absolute(), Path.home().absolute(), HOSTPATH_ROOT}
        # a folder inside another hidden one is hidden with it (and is not there to mount over inside)
        self.hidden = tuple(sorted(h for h in hidden if not any(h != o and h.is_relative_to(o) for o in hidden)))
        self.sandbox_problems = [str(reason) for reason in unavailable_reasons()]
        problem = environment_problem(self.hidden)
        if problem:
            self.sandbox_problems.append(problem)
        for line in self.sandbox_problems:
            self.log(f"pod sandboxes cannot be made, so no pod is backed: {line}")
        if self.sandbox_problems:
            return
        self.key_prefix = sandbox_prefix(self.folder)
        for key in remove_all(self.key_prefix):
            self.log(f"removed sandbox {key}, left by a supervisor that was killed")
        for name in remove_recorded_routers(self.folder):
            self.log(f"removed pod network {name}, left by a supervisor that was killed")
        server = urllib.parse.urlsplit(self.cluster_entry["server"])
        self.networks = PodNetworks(self.folder, int(server.port or 443))

    # --- main loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Follow the cluster until stopped; whatever ends this (a stop, an error), every process it started ends."""
        try:
            self._run()
        finally:
            self._shutdown()

    def _run(self) -> None:
        for line in self.missing.values():
            self.log(f"cannot back pods that need it: {line}")
        if self.kube.get_or_none("/apis/kwok.x-k8s.io/v1alpha1") is None:
            # nothing could reach a backed pod (no kubectl port-forward, no kubectl logs): back none
            self.log("this cluster has no kwok PortForward/Logs resources (made before they were enabled): no pod is "
                     "backed; `jhtutorial cluster down` then `jhtutorial cluster up` recreates it with them")
            self._write_status()
            self._stop.wait()
            return
        # Namespaces and Services first: a pod's /etc/hosts names the Services of its namespace when its sandbox
        # is made, and whether it is backed depends on its namespace.
        for reflector in self._reflectors:
            synced = threading.Event()
            threading.Thread(target=self._follow, args=(reflector, synced), daemon=True,
                             name=f"jhtutorial-supervisor-{reflector.resource.plural}").start()
            synced.wait(30)
            self._drain()
        self._write_status()
        while not self._stop.is_set():
            try:
                event = self.events.get(timeout=RETRY_SECONDS)
            except queue.Empty:
                event = None
            try:
                if event is not None:
                    self._handle_logged(*event)
                if self.events.empty():
                    self._retry_waiting()
                    self._sync_pod_networks()
                    self._write_status()  # the pods' own threads change readiness and restarts
            except Exception as err:  # noqa: BLE001 - an outage or one bad object must not end the supervisor
                self.log(f"error in the supervisor's loop: {type(err).__name__}: {err}")

    def stop(self) -> None:
        self._stop.set()

    def _drain(self) -> None:
        """Handle what is queued now (the first lists), before the next kind is followed."""
        while not self.events.empty():
            self._handle_logged(*self.events.get())

    def _handle_logged(self, kind: str, event_type: str, obj: Obj) -> None:
        try:
            self._handle(kind, event_type, obj)
        except Exception as err:  # noqa: BLE001 - one bad object must not end the supervisor
            self.log(f"error handling {kind} {_key(obj)}: {type(err).__name__}: {err}")

    def _follow(self, reflector: Reflector, synced: threading.Event) -> None:
        kind = reflector.resource.kind
        while not self._stop.is_set():
            try:
                for event in reflector.events():
                    if event.type == "SYNCED":
                        synced.set()
                    elif event.type in ("ADDED", "MODIFIED", "DELETED"):
                        self.events.put((kind, event.type, event.object))
            except TutorialError as err:
                self.log(f"watching {reflector.resource.plural} failed: {err.problem}; again in 2 s")
                self._stop.wait(2)

    def _handle(self, kind: str, event_type: str, obj: Obj) -> None:
        if event_type == "SYNCED":
            return
        key = _key(obj)
        if kind == "Namespace":
            name = obj["metadata"]["name"]
            if event_type == "DELETED":
                self.namespaces.pop(name, None)
            else:
                self.namespaces[name] = obj
            if not namespace_backed(self.namespaces.get(name)):
                for pod_key in [k for k in self.backings if k.startswith(name + "/")]:
                    self.waiting.pop(pod_key, None)
                    backing = self.backings[pod_key]
                    # kwok simulates the pod again once our annotations and kwok objects are gone
                    self._stop_backing(pod_key, "its namespace is no longer marked for backing",
                                       then=backing.withdraw if event_type != "DELETED" else None)
            else:
                for pod in [p for k, p in self.pods.items() if k.startswith(name + "/")]:
                    self._reconcile(pod)
        elif kind == "Service":
            if event_type == "DELETED":
                self.services.pop(key, None)
            else:
                self.services[key] = obj
        elif kind == "Pod":
            if event_type == "DELETED":
                self.pods.pop(key, None)
                self._stop_backing(key, "the pod was deleted")
            else:
                self.pods[key] = obj
                self._reconcile(obj)

    def _reconcile(self, pod: Obj) -> None:
        key = _key(pod)
        meta, spec = pod["metadata"], pod.get("spec") or {}
        backing = self.backings.get(key)
        if backing is not None and backing.uid != meta.get("uid"):
            self._stop_backing(key, "a new pod took the name")
            backing = None
        if meta.get("deletionTimestamp"):
            self.waiting.pop(key, None)
            ours = (meta.get("annotations") or {}).get(KWOK_STATUS_ANNOTATION) == "custom"
            self._stop_backing(key, "the pod is being deleted", then=(lambda: self._finish_deletion(pod)) if ours else None)
            return
        if backing is not None:
            backing.observe(pod)
            if not backing.started:
                self._start_backing(backing)
            return
        if not namespace_backed(self.namespaces.get(meta["namespace"])):
            self._leave_to_kwok(pod)  # marked by a supervisor before the namespace lost its mark
            return  # not a namespace of this machine's user: purely simulated
        images = [c.get("image", "") for c in spec.get("containers") or []]
        programs = [program_for(image) for image in images]
        if not images or any(p is None for p in programs):
            self._leave_to_kwok(pod)
            return  # an image this tutorial does not use: purely simulated, as before
        if self.missing:
            self.missing = missing_programs()  # installed since? (`make system-deps` while the cluster runs)
        missing = [self.missing[p.name] for p in programs if p is not None and p.name in self.missing]
        if self.sandbox_problems:
            missing = [f"pod sandboxes cannot be made on this machine: {'; '.join(self.sandbox_problems)}"]
        if missing:
            if self.skipped.get(key) != "; ".join(missing):
                self.skipped[key] = "; ".join(missing)
                self.log(f"{key}: stays purely simulated: {'; '.join(missing)}")
                self._annotate(pod, {NOT_BACKED_ANNOTATION: "; ".join(missing)})
            self._leave_to_kwok(pod)
            return
        folder = self.folder / "pods" / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
        assert self.networks is not None  # made unless there are sandbox_problems
        backing = SandboxedPod(pod, folder, self.kube, self.cluster_entry, self.networks, self.key_prefix,
                               self.hidden, self.log, tokens=self.tokens)
        self.backings[key] = backing
        backing.reserve()
        self._start_backing(backing)

    def _start_backing(self, backing: SandboxedPod) -> None:
        """Start the programs once the pod is scheduled and everything it mounts exists."""
        key = f"{backing.namespace}/{backing.name}"
        if not (backing.pod.get("spec") or {}).get("nodeName"):
            return
        try:
            backing.prepare()
        except TutorialError as err:
            # not there yet (a Secret, a bound PVC), the API server not answering, or a problem with the pod:
            # tried again (RETRY_SECONDS; with a growing back-off while the API server does not answer)
            if isinstance(err, ClusterUnreachable):
                self._api.failed()
            if self.waiting.get(key) != err.problem:
                self.log(f"{key}: waiting: {err.problem}")
            self.waiting[key] = err.problem
            return
        self._api.succeeded()
        self.waiting.pop(key, None)
        backing.start()
        self.log(f"{key}: backed in sandbox {backing.key} (pod IP {backing.pod_ip})")

    def _leave_to_kwok(self, pod: Obj) -> None:
        """A pod the policy handed over but that is not backed: kwok simulates it, as every other pod."""
        annotations = pod["metadata"].get("annotations") or {}
        if BACKED_BY_ANNOTATION in annotations:
            withdraw(self.kube, pod["metadata"]["namespace"], pod["metadata"]["name"], kwok_objects_only=True)
        ours = [name for name in BACKING_ANNOTATIONS if name in annotations]
        if annotations.get(KWOK_STATUS_ANNOTATION) == "custom" or ours:
            self._annotate(pod, dict.fromkeys(ours, None))

    def _finish_deletion(self, pod: Obj) -> None:
        """What a kubelet does once a pod's containers are stopped (kwok leaves our pods to us): remove it."""
        meta = pod["metadata"]
        try:
            self.kube.call("DELETE", PODS.path(meta["namespace"], meta["name"]),
                           body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                 "preconditions": {"uid": meta["uid"]}})
        except TutorialError as err:
            if getattr(err, "status", None) not in (404, 409):
                self.log(f"{_key(pod)}: could not remove the deleted pod: {err.problem}")

    def _retry_waiting(self) -> None:
        if not self._api.due():
            return
        for key, (pod, wanted) in list(self._unannotated.items()):
            self._unannotated.pop(key, None)
            self._annotate(pod, wanted)
        for key in list(self.waiting):
            pod = self.pods.get(key)
            if pod is None:
                self.waiting.pop(key, None)
            else:
                self._reconcile(pod)

    def _stop_backing(self, key: str, why: str, then: Callable[[], None] | None = None) -> None:
        """Stop a pod's processes in a thread of its own (a program may take seconds to exit, and the
        other pods' events must not wait for it), then run ``then`` (remove the pod, as a kubelet does)."""
        backing = self.backings.pop(key, None)

        def stop() -> None:
            if backing is not None:
                backing.stop()
                self.log(f"{key}: processes stopped ({why})")
            backoff = Backoff()
            while then is not None:
                try:
                    then()
                    return
                except ClusterUnreachable as err:  # an outage: wait it out, then finish what a kubelet would
                    if self._stop.is_set():
                        return  # the next supervisor finds the pod as it is and finishes
                    if backoff.failed() == 1:
                        self.log(f"{key}: {err.problem.splitlines()[0]}; trying again until the API server answers")
                    self._stop.wait(max(0.0, backoff.next_try - time.monotonic()))
                except TutorialError as err:
                    self.log(f"{key}: {err.problem}")
                    return

        thread = threading.Thread(target=stop, name=f"jhtutorial-stop-{key}", daemon=True)
        self._stopping = [t for t in self._stopping if t.is_alive()] + [thread]
        thread.start()

    def _shutdown(self) -> None:
        self._stop.set()
        for key in list(self.backings):
            self._stop_backing(key, "the supervisor stops")
        for thread in self._stopping:
            thread.join(30)
        for reflector in self._reflectors:
            reflector.stop()
        if self.networks is not None:
            self.networks.close()
        self._write_status(stopped=True)

    # --- Services ------------------------------------------------------------------------------

    def _sync_pod_networks(self) -> None:
        """kube-proxy's job for sandboxed pods: each Service's ClusterIP to its ready pods, and every pod's
        /etc/hosts naming the Services of its namespace."""
        if self.networks is None:
            return
        for namespace in self.networks.namespaces():
            services = [s for k, s in self.services.items() if k.startswith(namespace + "/")]
            pods = [b for k, b in list(self.backings.items()) if k.startswith(namespace + "/")]
            self.networks.set_services(namespace, routes_for(services, [(b.pod, b.pod_ip, b.ready) for b in pods]))
            addresses = {s["metadata"]["name"]: str((s.get("spec") or {}).get("clusterIP") or "") for s in services}
            for backing in pods:
                backing.update_hosts(addresses)

    # --- reporting ------------------------------------------------------------------------------

    def log(self, line: str) -> None:
        print(time.strftime("%Y-%m-%d %H:%M:%S"), line, flush=True)

    def _annotate(self, pod: Obj, annotations: dict[str, str | None]) -> None:
        try:
            self.kube.call("PATCH", PODS.path(pod["metadata"]["namespace"], pod["metadata"]["name"]),
                           body={"metadata": {"annotations": annotations}},
                           content_type="application/merge-patch+json")
        except ClusterUnreachable:
            merged = {**self._unannotated.get(_key(pod), (pod, {}))[1], **annotations}
            self._unannotated[_key(pod)] = (pod, merged)  # written once the API server answers again
            self._api.failed()
        except TutorialError as err:
            if getattr(err, "status", None) != 404:
                self.log(f"{_key(pod)}: could not annotate: {err.problem}")

    def _write_status(self, stopped: bool = False) -> None:
        status = {
            "pid": os.getpid(),
            "started": self.started,
            "stopped": stopped,
            "missing": self.missing,
            "sandbox_problems": self.sandbox_problems,
            "backed_namespaces": sorted(n for n, ns in self.namespaces.items()
                                        if namespace_backed(ns)),
            "pods": {key: backing.report() for key, backing in self.backings.items()},
            "waiting": self.waiting,
            "skipped": self.skipped,
        }
        tmp = self.folder / "status.json.tmp"
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, self.folder / "status.json")


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))


def _configuration(kube_config: Any, kubeconfig: Path) -> Any:
    from kubernetes.client import Configuration

    configuration = Configuration()
    kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return configuration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Back the local cluster's pods with their programs, in sandboxes.")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--token-seconds", type=int, default=TokenLifetime.seconds,
                        help="lifetime asked for each pod's ServiceAccount token (at least 600)")
    parser.add_argument("--token-renew-after", type=float, default=TokenLifetime.renew_after,
                        help="renew a pod's token once this fraction of its lifetime has passed (the kubelet's 0.8)")
    args = parser.parse_args(argv)
    private_dir(args.folder)
    if user_namespace.inside():
        user_namespace.settle_in()  # before any thread starts or anything is bound in /run (user_namespace.py)
    supervisor = Supervisor(args.kubeconfig, args.folder,
                            tokens=TokenLifetime(args.token_seconds, args.token_renew_after))
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    signal.signal(signal.SIGINT, lambda *_: supervisor.stop())
    supervisor.log(f"supervisor started (pid {os.getpid()})")
    try:
        supervisor.run()  # stops every process it started, however it ends
    except BaseException as err:
        supervisor.log(f"supervisor failed: {type(err).__name__}: {err}; every backing process ended")
        raise
    supervisor.log("supervisor stopped; every backing process ended")
    return 0


if __name__ == "__main__":
    sys.exit(main())
