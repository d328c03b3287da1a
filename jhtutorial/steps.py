"""The tutorial's steps: one registry that the notebooks, the CLI and the tests all read.

Each step of the 2018 tutorial maps to its manifest files, the kubectl command
a learner would type, and what "done" means for it:

    >>> [step.key for step in STEPS][:4]
    ['01-rbac', '02-configmaps', '03-secret', '04-pvc']
    >>> get_step("pvc").kubectl("jhub")
    'kubectl apply --server-side -n jhub -f manifests/pvc-hub.yaml'
    >>> print(get_step(6).check(conn))                          # doctest: +SKIP
    step 06 (deployments) is done
      Deployment hub: 1/1 replicas available
      Deployment proxy: 1/1 replicas available

A step counts as *present* when every object of its files exists, and as
*done* when its check passes (a Bound PVC, Services with cluster IPs,
available Deployments). Applying a step needs the earlier steps present.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import manifests
from .connect import Connection, current_connection
from .errors import UnknownStep
from .kubeapi import (
    CONFIGMAPS,
    DEPLOYMENTS,
    PODS,
    PVCS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    KubeApi,
    Resource,
)
from .readable import Readable
from .waits import (
    Verdict,
    WaitResult,
    claim_binding_mode,
    deployment_available,
    pvc_bound,
    service_ip_assigned,
    wait_deployment_available,
    wait_pvc_bound,
)

Obj = dict[str, Any]
# finds the live object for an object of a manifest (None: it does not exist)
Fetch = Callable[[Obj], "Obj | None"]
MANIFEST_FOLDER = "manifests"  # how a learner's shell, at the repository root, names the folder
# where such a command works: `jhtutorial lab` opens its terminals in the working copy, which holds manifests/
WHERE_TO_TYPE = "in the folder holding manifests/ (the working copy `jhtutorial lab` opened; its terminals start there)"


# What the clean-up looks for, by the label PART_OF alone, in the order it deletes: the Deployments first (their
# ReplicaSets and pods go with them), so no hub is left to start a user pod; then the pods and PVCs (the user
# servers and homes the hub made, and the hub's database volume); then the rest of what the files define.
CLEANUP_RESOURCES: tuple[Resource, ...] = (
    DEPLOYMENTS, PODS, PVCS, SERVICES, SECRETS, CONFIGMAPS, ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS,
)


def cleanup_commands(namespace: str, *, delete_namespace: bool = False) -> list[str]:
    """The clean-up by hand, in the order clean_up() and notebook 08 follow, selecting on the tutorial's label
    only (another hub's user pods and PVCs carry KubeSpawner's labels and the same names, never this one)."""
    first, *rest = CLEANUP_RESOURCES
    commands = [
        f"kubectl delete -n {namespace} {first.plural} -l {manifests.PART_OF} --cascade=foreground",
        f"kubectl delete -n {namespace} {','.join(r.plural for r in rest)} -l {manifests.PART_OF}",
    ]
    if delete_namespace:
        commands.append(f"kubectl delete namespace {namespace}")
    return commands


def and_join(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def steps_named(keys: list[str]) -> str:
    """``step 01-rbac`` or ``steps 01-rbac, 02-configmaps and 03-secret``."""
    return ("step " if len(keys) == 1 else "steps ") + and_join(keys)


def up_command(through: int, namespace: str) -> str:
    """The command that applies every step up to ``through`` in order, waiting for each."""
    return f"jhtutorial up --through {through} -n {namespace}"


def by_hand(command: str) -> str:
    """The "the same by hand" line for a command: where to type it when it names files in manifests/."""
    where = " (in the folder holding manifests/)" if f"{MANIFEST_FOLDER}/" in command else ""
    return f"the same by hand{where}: {command}"


@dataclass
class StepStatus(Readable):
    """The state of one step in the cluster: done or not, and one line per object."""

    step: Step
    done: bool
    details: list[str] = field(default_factory=list)  # one line per object: "Deployment hub: 1/1 available"
    missing: list[str] = field(default_factory=list)  # "Kind/name" of objects that do not exist

    def __bool__(self) -> bool:
        return self.done

    def lines(self) -> list[str]:
        head = f"step {self.step.number:02d} ({self.step.slug}) is {'done' if self.done else 'NOT done'}"
        return [head, *(f"  {line}" for line in self.details)]

    def __repr__(self) -> str:
        return f"StepStatus({self.step.key}, done={self.done}, missing={self.missing})"


@dataclass(frozen=True)
class Step:
    """One step of the tutorial."""

    number: int
    slug: str
    title: str
    files: tuple[str, ...]
    done_when: str  # what "done" means, in a learner's words
    check_objects: Callable[[Connection, list[Obj]], list[tuple[str, Verdict]]] | None = field(
        default=None, repr=False
    )
    wait_objects: Callable[[Connection, list[Obj], float], list[WaitResult]] | None = field(default=None, repr=False)
    command: str | None = None  # the learner's command when it is not a plain `kubectl apply`

    @property
    def key(self) -> str:
        return f"{self.number:02d}-{self.slug}"

    def kubectl(self, namespace: str) -> str:
        """The command a learner would type in a terminal for this step."""
        if self.command is not None:
            return self.command.format(namespace=namespace)
        files = " ".join(f"-f {MANIFEST_FOLDER}/{name}" for name in self.files)
        return f"kubectl apply --server-side -n {namespace} {files}"

    def objects(self) -> list[Obj]:
        """The step's objects as the manifest files define them (read fresh each time)."""
        return [obj for name in self.files for obj in manifests.load_manifest(name)]

    def missing(self, conn: Connection | None = None, *, fetch: Fetch | None = None) -> list[str]:
        """``Kind/name`` of each object of this step that does not exist in the namespace."""
        conn = conn or current_connection()
        fetch = fetch or _getter(conn)
        return [_label(obj) for obj in self.objects() if fetch(obj) is None]

    def check(self, conn: Connection | None = None, *, fetch: Fetch | None = None,
              objects: list[Obj] | None = None) -> StepStatus:
        """Is the step done? Reads the objects once; does not wait.

        ``fetch`` finds the live object for a manifest's object (None: it does not exist); by default one GET
        each in ``conn.namespace``. A caller that already holds the objects (a watch's cache, one list for a
        whole classroom) passes its own lookup, and the verdicts stay the ones defined here; such a caller,
        checking many namespaces, also passes ``objects`` (this step's :meth:`objects`, read once)."""
        conn = conn or current_connection()
        fetch = fetch or _getter(conn)
        status = StepStatus(self, done=True)
        found: list[Obj] = []
        for obj in self.objects() if objects is None else objects:
            live = fetch(obj)
            if live is None:
                status.done = False
                status.missing.append(_label(obj))
                status.details.append(f"{_label(obj, ' ')}: missing")
            else:
                found.append(live)
        if self.check_objects is not None:
            for label, verdict in self.check_objects(conn, found):
                status.done = status.done and verdict.done
                status.details.append(f"{label}: {verdict.summary}")
        else:
            status.details.extend(f"{_label(obj, ' ')}: exists" for obj in found)
        if not self.files:
            status.done = False
            status.details.append("this step has no manifests; its notebook shows what to do")
        return status

    def wait(self, conn: Connection | None = None, *, timeout: float = 180) -> list[WaitResult]:
        """Wait (on a watch) until the step is done; returns one result per awaited object."""
        conn = conn or current_connection()
        if self.wait_objects is None:
            return []
        return self.wait_objects(conn, self.objects(), timeout)


# --- what "done" means, per step -------------------------------------------------------------


def _check_secret(conn: Connection, found: list[Obj]) -> list[tuple[str, Verdict]]:
    results = []
    for secret in found:
        values = (secret.get("data") or {}).values()
        placeholder = _b64(manifests.PROXY_TOKEN_PLACEHOLDER)
        if not values or any(not v for v in values):
            verdict = Verdict(False, "has an empty value")
        elif placeholder in values:
            verdict = Verdict(False, "still holds the placeholder, not a token: apply step 03 with jhtutorial.apply")
        else:
            verdict = Verdict(True, f"{len(list(values))} key(s) set (values not shown)")
        results.append((_label(secret, " "), verdict))
    return results


def _check_pvcs(conn: Connection, found: list[Obj]) -> list[tuple[str, Verdict]]:
    results = []
    for pvc in found:
        mode = claim_binding_mode(conn, pvc)
        results.append((_label(pvc, " "), pvc_bound(pvc, mode)))
    return results


def _check_services(conn: Connection, found: list[Obj]) -> list[tuple[str, Verdict]]:
    return [(_label(service, " "), service_ip_assigned(service)) for service in found]


def _check_deployments(conn: Connection, found: list[Obj]) -> list[tuple[str, Verdict]]:
    return [(_label(deployment, " "), deployment_available(deployment)) for deployment in found]


def _wait_pvcs(conn: Connection, objects: list[Obj], timeout: float) -> list[WaitResult]:
    return [wait_pvc_bound(o["metadata"]["name"], conn=conn, timeout=timeout) for o in objects
            if o.get("kind") == "PersistentVolumeClaim"]


def _wait_deployments(conn: Connection, objects: list[Obj], timeout: float) -> list[WaitResult]:
    return [wait_deployment_available(o["metadata"]["name"], conn=conn, timeout=timeout) for o in objects
            if o.get("kind") == "Deployment"]


# The registry. Numbers follow the original tutorial's order (prereqs, then 1-5,
# then 6-8 and the clean-up), counted from 01.
STEPS: tuple[Step, ...] = (
    Step(1, "rbac", "Identities and permissions (ServiceAccounts, Role, RoleBinding)",
         ("rbac.yaml",), "the ServiceAccounts, the Role and the RoleBinding exist"),
    Step(2, "configmaps", "Configuration (ConfigMaps)",
         ("cm-hub-config.yaml", "cm-ingress.yaml", "cm-nginx.yaml"), "the three ConfigMaps exist"),
    Step(3, "secret", "The proxy's auth token (Secret)",
         ("secret-hub.yaml",), "the Secret exists and holds a generated token, not the placeholder",
         check_objects=_check_secret,
         command=("sed \"s/" + manifests.PROXY_TOKEN_PLACEHOLDER + "/$(openssl rand -hex 32)/\" "
                  f"{MANIFEST_FOLDER}/secret-hub.yaml | kubectl apply --server-side -n {{namespace}} -f -")),
    Step(4, "pvc", "Storage for the hub's database (PersistentVolumeClaim)",
         ("pvc-hub.yaml",), "the PVC is Bound (or Pending on a WaitForFirstConsumer StorageClass, as on "
                            "kind and k3d, where it binds when the hub pod starts)",
         check_objects=_check_pvcs, wait_objects=_wait_pvcs),
    Step(5, "services", "Services (hub, proxy-api, proxy-http, proxy-public)",
         ("svc-hub.yaml", "svc-proxy-api.yaml", "svc-proxy-http.yaml", "svc-proxy-public.yaml"),
         "every Service has its cluster IP (and proxy-public its node port); endpoints come with the pods "
         "in step 06",
         check_objects=_check_services),
    Step(6, "deployments", "The hub and the proxy (Deployments)",
         ("deploy-hub.yaml", "deploy-proxy.yaml"), "the hub and proxy Deployments are available",
         check_objects=_check_deployments, wait_objects=_wait_deployments),
    Step(7, "login-and-spawn", "Log in and start a user server",
         (), "a user logged in and their pod jupyter-<user> is Ready",
         command="kubectl get pods -n {namespace} --watch"),
    Step(8, "cleanup", "Clean up",
         (), "the tutorial's objects, the user pods and their PVCs are gone",
         command=" && ".join(cleanup_commands("{namespace}"))),
)


def get_step(key: int | str | Step) -> Step:
    """Find a step by number (``4``, ``"04"``), slug (``"pvc"``) or key (``"04-pvc"``)."""
    if isinstance(key, Step):
        return key
    text = str(key).strip().lower()
    for step in STEPS:
        if text in (step.slug, step.key) or (text.isdigit() and int(text) == step.number):
            return step
    raise UnknownStep(
        f"there is no step {key!r}",
        fix="use a number or a name: " + ", ".join(step.key for step in STEPS),
    )


def steps_before(step: Step) -> list[Step]:
    return [s for s in STEPS if s.number < step.number and s.files]


# --- helpers --------------------------------------------------------------------------------


def _label(obj: Obj, separator: str = "/") -> str:
    return f"{obj.get('kind')}{separator}{(obj.get('metadata') or {}).get('name')}"


def _getter(conn: Connection) -> Fetch:
    """The default lookup: one GET per object in the connection's namespace."""
    kube = KubeApi(conn.api)

    def fetch(obj: Obj) -> Obj | None:
        resource = kube.resource_for(obj["apiVersion"], obj["kind"])
        return kube.get_or_none(resource.path(conn.namespace, obj["metadata"]["name"]))

    return fetch


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
