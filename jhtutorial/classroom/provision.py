"""A room of learners on one cluster: a namespace, rights, a quota and a kubeconfig file for each.

    $ jhtutorial classroom up --learners 3 --output handout/      # learner-1 .. learner-3 (the default prefix)
    $ KUBECONFIG=handout/learner-1.kubeconfig jhtutorial up       # what learner 1 runs
    $ jhtutorial classroom down                                   # namespaces and handout files gone

What each learner gets, in their namespace only (the kubectl equivalents):

    kubectl create namespace learner-1 && kubectl label namespace learner-1 jhtutorial/classroom=learner
    kubectl create serviceaccount learner -n learner-1
    kubectl create rolebinding learner-admin --clusterrole=admin --serviceaccount=learner-1:learner -n learner-1
    kubectl create quota classroom ... ; a LimitRange (see sizing.py)
    kubectl create token learner -n learner-1 --duration=12h --bound-object-kind=Secret --bound-object-name=...

The built-in ``admin`` ClusterRole, bound by a RoleBinding, gives every right inside the namespace and none
outside it; Kubernetes' escalation prevention keeps a learner from binding anything stronger (``cluster-admin``)
even there, and ``admin`` may read but not change the quota, the LimitRange or the namespace's labels.

The label ``jhtutorial/classroom=<prefix>`` marks the room: ``down`` deletes exactly the namespaces that carry
it. On the local simulated cluster each namespace is also marked for backing (``jhtutorial/backed=true``; with
``--simulated``, ``false``): every learner's hub, proxy and user servers then run in sandboxes of their own, as
far as this machine's memory allows (``sizing``: `up` refuses more than fit); where sandboxes cannot be made a
learner's pods stay purely simulated (the rule: :mod:`jhtutorial.localcluster.backing.policy`).

Each token is bound to a Secret in the learner's namespace: renewing a learner's credentials replaces that
Secret, which withdraws the old token at once; deleting the namespace withdraws it too.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..connect import Connection, validate_namespace
from ..credentials import token_claims
from ..errors import ClassroomError, InvalidNamespace, KubeApiError
from ..kubeapi import NAMESPACES, PODS, RESOURCE_QUOTAS, ROLE_BINDINGS, SECRETS, SERVICE_ACCOUNTS, KubeApi, Resource
# the room's label (value: its prefix)
from ..localcluster.backing import BACKED_BY_ANNOTATION, BACKED_LABEL, CLASSROOM_LABEL, POD_SECURITY_LABELS
from ..localcluster.backing.policy import backed_labels
from ..readable import Readable
from ..tokens import request_token
from ..watching import Reflector
from . import sizing
from .backed import ClusterBacking, cluster_backing

Obj = dict[str, Any]

KUBECONFIG_ANNOTATION = "jhtutorial/classroom-kubeconfig"  # where `up` wrote the learner's file
DEFAULT_PREFIX = "learner"
DEFAULT_OUTPUT = Path("classroom")
DEFAULT_EXPIRES = 12 * 3600
MIN_EXPIRES = 600  # the API server refuses TokenRequests for less than 10 minutes
LEARNER_ACCOUNT = "learner"
CREDENTIAL_SECRET = "learner-credentials"  # the learner's token is bound to it: replacing it withdraws the token
ROLE_BINDING = "learner-admin"
FIELD_MANAGER = "jhtutorial-classroom"
APPLY = "application/apply-patch+yaml"
PARALLEL = 8  # learners provisioned at once: the API server, not this process, is the limit
# a token is renewed when less than this is left of it
RENEW_BEFORE = 600

LIMIT_RANGE = Resource("v1", "LimitRange", "limitranges")
TOKEN_REVIEWS = Resource("authentication.k8s.io/v1", "TokenReview", "tokenreviews", namespaced=False)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Learner:
    """One learner's namespace and credentials, as `up` left them."""

    namespace: str
    kubeconfig: Path
    namespace_state: str = "kept"  # "created" or "kept"
    credentials: str = "kept"  # "new", "renewed" or "kept"
    expires: str = ""  # when the token in the file expires, UTC


@dataclass
class Classroom(Readable):
    """What ``classroom up`` made or found."""

    prefix: str
    output: Path
    learners: list[Learner] = field(default_factory=list)
    requests: int = 0  # API requests sent
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        made = sum(1 for learner in self.learners if learner.namespace_state == "created")
        out = [f"classroom '{self.prefix}': {len(self.learners)} learner(s), {made} new "
               f"({self.seconds:.1f} s, {self.requests} API requests)"]
        width = max([len(learner.namespace) for learner in self.learners] + [9])
        out.append(f"  {'NAMESPACE':<{width}}  {'STATE':<9}  {'TOKEN':<8}  EXPIRES               KUBECONFIG")
        for learner in self.learners:
            out.append(f"  {learner.namespace:<{width}}  {learner.namespace_state:<9}  {learner.credentials:<8}  "
                       f"{learner.expires:<20}  {learner.kubeconfig}")
        out.extend(f"  note: {note}" for note in self.notes)
        return out


def parse_duration(text: str) -> int:
    """``90m``, ``12h``, ``2d``, ``3600s`` (or plain seconds) -> seconds; at least 10 minutes."""
    match = _DURATION.match(text) if not text.strip().isdigit() else re.match(r"^\s*(\d+)\s*$", text)
    if match is None:
        raise ClassroomError(f"{text!r} is not a duration",
                             fix="write a number and a unit: 90m, 12h, 2d (s, m, h or d)")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2) if match.lastindex == 2 else "s"]
    if seconds < MIN_EXPIRES:
        raise ClassroomError(f"credentials valid for {text.strip()} are too short: Kubernetes issues tokens for "
                             f"at least {MIN_EXPIRES // 60} minutes", fix="use --expires 10m or longer")
    return seconds


def learner_namespaces(prefix: str, learners: int | None, names: list[str] | None) -> list[str]:
    """The room's namespaces: the names given, else ``prefix-1`` .. ``prefix-N``."""
    _check_prefix(prefix)
    if names:
        if learners is not None and learners != len(names):
            raise ClassroomError(f"--learners {learners} does not match the {len(names)} names given",
                                 fix="give either --learners N or --names a,b,c (or both, agreeing)")
        wanted = names
    else:
        if learners is None or learners < 1:
            raise ClassroomError("how many learners?", fix="give --learners N (1 or more) or --names a,b,c")
        wanted = [f"{prefix}-{number}" for number in range(1, learners + 1)]
    for name in wanted:
        validate_namespace(name)
    if len(set(wanted)) != len(wanted):
        raise ClassroomError("a name is given twice", fix="give each learner a different name")
    return wanted


def classroom_up(conn: Connection, *, learners: int | None = None, prefix: str = DEFAULT_PREFIX,
                 names: list[str] | None = None, output: Path | str = DEFAULT_OUTPUT,
                 expires: int = DEFAULT_EXPIRES, progress: Callable[[str], None] | None = None,
                 simulated: bool = False) -> Classroom:
    """Make (or complete) the room: see the module's description. Existing learners are kept; a kubeconfig
    file that is missing, expired or withdrawn is written anew; nothing of another room is touched.
    ``simulated``: on the local cluster, keep the new learners' pods purely simulated (no process runs for
    them); else, with pod sandboxes, refuse (before making anything) more backed learners than this machine's
    memory holds. A learner made before keeps what they were made with.

    Example::

        room = classroom_up(connect(), learners=3, output="handout")  # handout/learner-1.kubeconfig ...
    """
    started = time.monotonic()
    wanted = learner_namespaces(prefix, learners, names)
    output = Path(output).expanduser().resolve()
    kube = KubeApi(conn.api)
    existing = _check_not_taken(kube, wanted, prefix)
    backing = cluster_backing(conn)
    room = Classroom(prefix=prefix, output=output)
    marks = {ns: _marks(conn, existing.get(ns), simulated) for ns in wanted}
    backed = [ns for ns in wanted if backing.backs({"metadata": {"labels": marks[ns]}})]
    newly_backed = [ns for ns in backed if not backing.backs(existing.get(ns) or {})]
    if newly_backed:
        room.notes.append(sizing.check_backed_learners(len(newly_backed), waiting=_waiting_backed(kube, backing)))
    if simulated and backed:
        room.notes.append(f"{len(backed)} learner(s) made earlier stay backed (--simulated applies to new ones): "
                          f"`jhtutorial classroom down --prefix {prefix}`, then `up --simulated`, to change that")
    output.mkdir(parents=True, exist_ok=True, mode=0o700)
    need = sizing.tutorial_needs()
    lock = threading.Lock()

    def one(namespace: str) -> Learner:
        learner = _provision(kube, conn, namespace, existing.get(namespace), prefix, marks[namespace], output,
                             expires, need)
        if progress is not None:
            with lock:
                progress(f"  {namespace}: namespace {learner.namespace_state}, credentials {learner.credentials}")
        return learner

    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(wanted))) as pool:
        room.learners = list(pool.map(one, wanted))
    _wait_quotas_counted(kube, prefix, set(wanted))
    if any(learner.expires and _shorter(learner, expires) for learner in room.learners):
        room.notes.append("the API server issued shorter-lived tokens than asked for "
                          "(its --service-account-max-token-expiration): see EXPIRES")
    why = backing.why_simulated(simulated_asked=not backed)
    if why:
        room.notes.append(f"local simulated cluster: {why}")
    elif backing.local:
        room.notes.append("local simulated cluster: each learner's hub, proxy and user servers run in sandboxes of "
                          "their own, reached only through the API server with the learner's own kubeconfig")
    room.requests = kube.requests
    room.seconds = time.monotonic() - started
    return room


def classroom_down(conn: Connection, *, prefix: str = DEFAULT_PREFIX, wait: bool = True,
                   timeout: float = 120.0) -> list[str]:
    """Delete every namespace of the room (those labelled ``jhtutorial/classroom=<prefix>``) and the kubeconfig
    files ``up`` wrote for them; nothing else. Returns what was removed, ``Namespace/x`` and file paths."""
    _check_prefix(prefix)
    kube = KubeApi(conn.api)
    namespaces = room_namespaces(kube, prefix)
    removed: list[str] = []
    for namespace in namespaces:
        name = namespace["metadata"]["name"]
        path = (namespace["metadata"].get("annotations") or {}).get(KUBECONFIG_ANNOTATION)
        try:
            kube.call("DELETE", NAMESPACES.path(name=name))
            removed.append(f"Namespace/{name}")
        except KubeApiError as err:
            if err.status != 404:
                raise
        if path and _is_learner_file(Path(path), name):
            Path(path).unlink()
            removed.append(path)
    if wait and namespaces:
        _wait_gone(kube, prefix, timeout)
    return removed


def room_namespaces(kube: KubeApi, prefix: str | None = None) -> list[Obj]:
    """The room's namespaces (every room's when ``prefix`` is None), sorted by name."""
    selector = f"{CLASSROOM_LABEL}={prefix}" if prefix else CLASSROOM_LABEL
    items = kube.get(NAMESPACES.path(), labelSelector=selector).get("items", [])
    return sorted(items, key=lambda namespace: natural_key(namespace["metadata"]["name"]))


# --- one learner ----------------------------------------------------------------------------------


def _provision(kube: KubeApi, conn: Connection, namespace: str, existing: Obj | None, prefix: str,
               marks: dict[str, str], output: Path, expires: int, need: sizing.Needs) -> Learner:
    path = output / f"{namespace}.kubeconfig"
    learner = Learner(namespace=namespace, kubeconfig=path)
    labels = {CLASSROOM_LABEL: prefix}
    # a learner's own pods: no host paths, privileged mode, host network or root (Pod Security restricted); on
    # the local cluster, whether they are backed
    namespace_labels = {**labels, **marks}
    existing_labels = ((existing or {}).get("metadata") or {}).get("labels") or {}
    if existing is None:
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": namespace_labels,
                             "annotations": {KUBECONFIG_ANNOTATION: str(path)}}}
        try:
            kube.call("POST", NAMESPACES.path(), body=body)
            learner.namespace_state = "created"
        except KubeApiError as err:
            if err.status != 409:  # 409: a concurrent `up` made it a moment ago
                raise
    elif (existing.get("metadata", {}).get("annotations") or {}).get(KUBECONFIG_ANNOTATION) != str(path) or \
            any(existing_labels.get(key) != value for key, value in marks.items()):
        # the room is handed out from another folder now (`down` must find this file), was made before its
        # namespaces enforced Pod Security or were marked backed (or kept simulated)
        _send(kube, {"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": namespace, "labels": marks,
                                  "annotations": {KUBECONFIG_ANNOTATION: str(path)}}},
              NAMESPACES, None)
    for obj, resource in (
        ({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": LEARNER_ACCOUNT, "labels": labels}},
         SERVICE_ACCOUNTS),
        ({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
          "metadata": {"name": ROLE_BINDING, "labels": labels},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
          "subjects": [{"kind": "ServiceAccount", "name": LEARNER_ACCOUNT, "namespace": namespace}]},
         ROLE_BINDINGS),
        (sizing.resource_quota(namespace, labels, need), RESOURCE_QUOTAS),
        (sizing.limit_range(namespace, labels, need), LIMIT_RANGE),
    ):
        _send(kube, obj, resource, namespace)
    token, expiry = _current_token(kube, path, namespace)
    if token is None:
        learner.credentials = "renewed" if path.exists() else "new"
        token, expiry = _new_token(kube, namespace, labels, expires)
        _write_kubeconfig(path, conn, namespace, token)
    learner.expires = expiry
    return learner


def _marks(conn: Connection, existing: Obj | None, simulated: bool) -> dict[str, str]:
    """A learner namespace's labels besides the room's: Pod Security ``restricted``, and on the local cluster
    whether it is backed (as the learner was made, else as asked now)."""
    if conn.cluster_kind != "local":
        return dict(POD_SECURITY_LABELS)
    made = (((existing or {}).get("metadata") or {}).get("labels") or {}).get(BACKED_LABEL)
    return backed_labels(made == "true" if made in ("true", "false") else not simulated)


def _waiting_backed(kube: KubeApi, backing: ClusterBacking) -> int:
    """Learners (of every room) made backed whose pods do not run yet: the memory they will take is not taken."""
    backed = {ns["metadata"]["name"] for ns in kube.get(NAMESPACES.path(), labelSelector=CLASSROOM_LABEL)["items"]
              if backing.backs(ns)}
    running = {pod["metadata"]["namespace"] for pod in kube.get(PODS.path()).get("items", [])
               if BACKED_BY_ANNOTATION in (pod["metadata"].get("annotations") or {})}
    return len(backed - running)


def _send(kube: KubeApi, obj: Obj, resource: Resource, namespace: str | None) -> Obj:
    """Server-side apply, so a second `up` converges instead of failing on what exists."""
    return kube.call("PATCH", resource.path(namespace, obj["metadata"]["name"]), body=obj, content_type=APPLY,
                     query={"fieldManager": FIELD_MANAGER, "force": True})


def _current_token(kube: KubeApi, path: Path, namespace: str) -> tuple[str | None, str]:
    """The token of the learner's existing file, if the API server still accepts it for long enough."""
    token = _file_token(path, namespace)
    claims = token_claims(token) if token else None
    if token is None or claims is None or claims.expires is None or claims.expires < time.time() + RENEW_BEFORE:
        return None, ""
    review = kube.call("POST", TOKEN_REVIEWS.path(), body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    if not (review.get("status") or {}).get("authenticated"):
        return None, ""  # withdrawn: its Secret or ServiceAccount was deleted
    return token, claims.expires_text


def _new_token(kube: KubeApi, namespace: str, labels: dict[str, str], expires: int) -> tuple[str, str]:
    """A fresh token bound to a fresh Secret: replacing the Secret withdraws every earlier token."""
    try:
        kube.call("DELETE", SECRETS.path(namespace, CREDENTIAL_SECRET))
    except KubeApiError as err:
        if err.status != 404:
            raise
    secret = kube.call("POST", SECRETS.path(namespace), body={
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": CREDENTIAL_SECRET, "labels": labels,
                     "annotations": {"description": "the learner's kubeconfig token is bound to this Secret: "
                                                    "deleting it withdraws the token"}}})
    token = request_token(kube, namespace, LEARNER_ACCOUNT, seconds=expires,
                          bound_to=("Secret", CREDENTIAL_SECRET, secret["metadata"]["uid"]))
    stamp = datetime.strptime(token.expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return token.value, stamp.strftime("%Y-%m-%d %H:%M UTC")


# --- kubeconfig files -----------------------------------------------------------------------------


def _write_kubeconfig(path: Path, conn: Connection, namespace: str, token: str) -> None:
    """The learner's kubeconfig: the cluster's address and CA, the token, their namespace; mode 600."""
    configuration = conn.api.configuration
    cluster: Obj = {"server": configuration.host}
    if configuration.ssl_ca_cert:
        cluster["certificate-authority-data"] = base64.b64encode(Path(configuration.ssl_ca_cert).read_bytes()).decode()
    elif not configuration.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    name = f"classroom-{namespace}"
    document = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # also when the file was there with wider rights
        handle.write(yaml.safe_dump(document, sort_keys=False))
    temporary.replace(path)


def _file_token(path: Path, namespace: str) -> str | None:
    """The token in a learner file `up` wrote for this namespace, else None."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    contexts = [c.get("context") or {} for c in data.get("contexts") or [] if isinstance(c, dict)]
    if [c.get("namespace") for c in contexts] != [namespace]:
        return None
    users = [u.get("user") or {} for u in data.get("users") or [] if isinstance(u, dict)]
    return users[0].get("token") if len(users) == 1 else None


def _is_learner_file(path: Path, namespace: str) -> bool:
    """Only a file `up` wrote for this very namespace is removed by `down`."""
    return path.is_file() and _file_token(path, namespace) is not None


# --- helpers --------------------------------------------------------------------------------------


def _check_prefix(prefix: str) -> None:
    try:
        validate_namespace(f"{prefix}-1")
    except InvalidNamespace as err:
        raise ClassroomError(f"{prefix!r} cannot start a namespace name: {err.problem}", fix=err.fix) from None


def _check_not_taken(kube: KubeApi, wanted: list[str], prefix: str) -> dict[str, Obj]:
    """The room's namespaces that exist already (one list for all); refuse namespaces that exist outside this
    room: `down` would delete them later, or a learner would get rights over someone else's objects."""
    names = set(wanted)
    existing = {ns["metadata"]["name"]: ns for ns in kube.get(NAMESPACES.path()).get("items", [])
                if ns["metadata"]["name"] in names}
    for namespace in wanted:
        found = existing.get(namespace)
        if found is None:
            continue
        owner = (found["metadata"].get("labels") or {}).get(CLASSROOM_LABEL)
        if owner != prefix:
            whose = f"room '{owner}'" if owner else "no classroom"
            raise ClassroomError(
                f"namespace {namespace} already exists and belongs to {whose}: it is not made a learner's",
                fix="choose another --prefix or other --names (nothing was created)")
        if (found.get("status") or {}).get("phase") == "Terminating":
            raise ClassroomError(f"namespace {namespace} is still being deleted (an earlier `classroom down`)",
                                 fix=f"wait until `kubectl get namespace {namespace}` finds nothing, then run again")
    return existing


def _wait_gone(kube: KubeApi, prefix: str, timeout: float) -> None:
    reflector = Reflector(kube.api_client, NAMESPACES, label_selector=f"{CLASSROOM_LABEL}={prefix}")
    for event in reflector.events(timeout=timeout):
        if event.type in ("SYNCED", "DELETED") and not reflector.cache:
            return
    left = ", ".join(sorted(obj["metadata"]["name"] for obj in reflector.cache.values()))
    raise ClassroomError(f"after {timeout:.0f} s these namespaces are still being deleted: {left}",
                         fix="`kubectl get namespace NAME -o yaml` shows what holds them (finalizers); "
                             "run `jhtutorial classroom down` again to wait longer")


def _wait_quotas_counted(kube: KubeApi, prefix: str, namespaces: set[str], timeout: float = 30.0) -> None:
    """Return once the quota controller has counted every learner's quota: until then the API server refuses
    each new pod, claim and Service with "status unknown for quota", which would greet a learner who starts
    at once."""
    reflector = Reflector(kube.api_client, RESOURCE_QUOTAS, label_selector=f"{CLASSROOM_LABEL}={prefix}")

    def counted() -> bool:
        done = {quota["metadata"]["namespace"] for quota in reflector.cache.values()
                if (quota.get("status") or {}).get("hard")}
        return namespaces <= done

    synced = False
    for event in reflector.events(timeout=timeout):
        synced = synced or event.type == "SYNCED"
        if synced and counted():
            reflector.stop()
            return
    raise ClassroomError(f"the quota controller has not counted the learners' quotas after {timeout:.0f} s",
                         fix="is kube-controller-manager running? (`jhtutorial cluster status` for the local "
                             "cluster); run `jhtutorial classroom up` again once it is")


def _shorter(learner: Learner, asked: int) -> bool:
    try:
        expiry = datetime.strptime(learner.expires, "%Y-%m-%d %H:%M UTC").replace(tzinfo=timezone.utc)
    except ValueError:
        return False
    return learner.credentials != "kept" and expiry.timestamp() < time.time() + asked - 120


def natural_key(name: str) -> tuple:
    """Sorts learner-2 before learner-10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))
