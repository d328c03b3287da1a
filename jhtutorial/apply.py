"""Apply one step's manifests: server-side apply, all or nothing, safe to run again.

    >>> result = apply("rbac")                                  # doctest: +SKIP
    >>> print(result)                                           # doctest: +SKIP
    step 01 (rbac) applied to namespace jhtutorial
      ServiceAccount/hub      created
      ServiceAccount/proxy    created
      Role/hub                created
      RoleBinding/hub         created
      the same by hand (in the folder holding manifests/): kubectl apply --server-side -n jhtutorial -f manifests/rbac.yaml

How it works, and why:

- **server-side apply** (``PATCH`` with ``application/apply-patch+yaml`` and a
  field manager): the API server merges the file into the live object and
  records which fields jhtutorial owns, so a re-run changes nothing and never
  fails with AlreadyExists;
- **a dry run first** (``dryRun=All``) of every object of the step, in file
  order: missing permissions, an invalid field or a missing namespace show up
  before anything is written, so a failed step leaves nothing half-applied.
  One check cannot be made in advance: a RoleBinding whose Role is created by
  the same step. A dry run stores nothing, so the Role does not exist yet, and
  a learner without the ``bind`` verb (a namespace ``admin``) may only grant a
  Role the API server can read, to check that they hold every permission in
  it. Such a RoleBinding is checked by its real apply, right after its Role's;
- **undone on a refusal**: if the server still refuses an object during the
  real apply (that RoleBinding, or a change made by someone else in between),
  the objects this call created are deleted again, the last first, and the
  error says so. Objects that already existed and were only changed are left
  as they are (the error names them; running the step again converges);
- **steps in order**: each earlier step's objects must exist (a Deployment
  whose ConfigMap is missing would only fail later, and less clearly);
- **field ownership**: the API server records which field manager set each field. The helper applies as
  ``jhtutorial`` and takes over fields someone else changed since (like ``--force-conflicts``), so a re-run
  always converges. ``manager="kubectl", force_conflicts=False`` applies as ``kubectl apply --server-side``
  does: a field another manager changed (``kubectl edit``, ``kubectl patch``) stops the step with a
  conflict naming that manager and field, and nothing is applied;
- **the proxy token** in secret-hub.yaml is a placeholder: the first apply puts
  a fresh random token in its place; later applies keep the token the cluster
  already has. The token is never printed or returned.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from . import manifests
from .connect import Connection, current_connection
from .errors import ApplyRejected, Forbidden, KubeApiError, StepError, StepOutOfOrder, TutorialError
from .kubeapi import KubeApi, Resource, raise_for_status
from .readable import Readable
from .steps import Step, by_hand, get_step, steps_before, steps_named, up_command

Obj = dict[str, Any]
FIELD_MANAGER = "jhtutorial"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # JSON is valid YAML, so a JSON body is fine
HIDDEN = "(hidden)"
# kubectl's client-side apply keeps the whole last applied object here, a
# Secret's values included: never hand it back.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class AppliedObject:
    """One object after the apply: what happened to it and the server's copy of it."""

    kind: str
    name: str
    namespace: str | None
    action: str  # "created", "configured" or "unchanged"
    object: Obj = field(repr=False, compare=False)  # Secret values are hidden

    def __repr__(self) -> str:
        return f"<{self.kind}/{self.name} {self.action}>"


@dataclass
class ApplyResult(Readable):
    """What ``apply`` did: the objects and the kubectl command a learner would type."""

    step: Step
    namespace: str
    objects: list[AppliedObject]
    kubectl: str

    @property
    def changed(self) -> bool:
        return any(o.action != "unchanged" for o in self.objects)

    def changes(self) -> list[str]:
        """What the apply did to each object, without the command: for a notebook that showed the
        command just above (each apply prints its kubectl line once)."""
        out = [f"step {self.step.number:02d} ({self.step.slug}) applied to namespace {self.namespace}"]
        width = max((len(f"{o.kind}/{o.name}") for o in self.objects), default=0)
        out += [f"  {f'{o.kind}/{o.name}':<{width}}  {o.action}" for o in self.objects]
        return out

    def lines(self) -> list[str]:
        return [*self.changes(), f"  {by_hand(self.kubectl)}"]

    def __repr__(self) -> str:
        actions = ", ".join(f"{o.kind}/{o.name} {o.action}" for o in self.objects)
        return f"ApplyResult({self.step.key} in {self.namespace}: {actions})"


def apply(step: int | str | Step, *, conn: Connection | None = None, check_order: bool = True,
          manager: str = FIELD_MANAGER, force_conflicts: bool = True) -> ApplyResult:
    """Apply a step's manifest files to the connection's namespace.

    Args:
        step: a number, name or key from the registry: ``1``, ``"rbac"``, ``"01-rbac"``.
        conn: a connection from :func:`connect` (default: the last one made).
        check_order: refuse to run before the earlier steps (StepOutOfOrder); on by default.
        manager: the field manager the API server records (``kubectl`` for what ``kubectl apply`` does).
        force_conflicts: take over fields another manager set (``--force-conflicts``); without it a
            conflict raises ApplyRejected naming the manager and the field, and nothing is applied.

    Raises: ManifestError (a broken file), StepOutOfOrder, NoDefaultStorageClass,
    Forbidden (missing permissions), ApplyRejected (the server refused an
    object), ClusterUnreachable. After a Forbidden or ApplyRejected nothing of
    the step is left that this call created (see the module's notes).

    Example::

        apply("rbac")          # kubectl apply --server-side -n NS -f manifests/rbac.yaml
        apply(2, conn=conn)
        apply("rbac", manager="kubectl", force_conflicts=False)   # kubectl apply --server-side -f ...
    """
    step = get_step(step)
    conn = conn or current_connection()
    if not step.files:
        raise StepError(
            f"step {step.key} has no manifests to apply",
            fix=f"its notebook walks through it; the command line equivalent is: {step.kubectl(conn.namespace)}",
        )
    kube = KubeApi(conn.api)
    planned = _plan(step, conn)  # parses the files: a broken file stops us before any request
    if check_order:
        _check_order(step, conn)
    if any(obj["kind"] == "PersistentVolumeClaim" and not obj.get("spec", {}).get("storageClassName")
           for _, obj in planned):
        conn.require_default_storage_class()

    secret_values: list[str] = []
    prepared = [(source, _prepare(kube, conn, obj, secret_values)) for source, obj in planned]
    how = _How(manager, force_conflicts)
    try:
        # Everything is tried first without being stored, so a refusal leaves nothing behind.
        dry = _dry_run(kube, conn, prepared, how)
        applied: list[AppliedObject] = []
        for (source, (obj, resource)), before in zip(prepared, dry, strict=True):
            try:
                after = _send(kube, conn, obj, resource, how, dry_run=False)
            except KubeApiError as err:
                raise _refusal(err, conn, source, obj, dry_run=False,
                               undone=_roll_back(kube, conn, applied, prepared)) from None
            applied.append(_result(obj, before, after))
    except TutorialError as err:
        _scrub(err, secret_values)
        raise
    return ApplyResult(step, conn.namespace, applied, step.kubectl(conn.namespace))


# --- preparing the objects -------------------------------------------------------------------


def _plan(step: Step, conn: Connection) -> list[tuple[str, Obj]]:
    """(file, object) for each object of the step, with the namespace checked."""
    planned = []
    for name in step.files:
        for obj in manifests.load_manifest(name):
            declared = (obj.get("metadata") or {}).get("namespace")
            if declared and declared != conn.namespace:
                raise ApplyRejected(
                    f"{manifests.manifest_path(name)}: {obj['kind']}/{obj['metadata']['name']} names namespace "
                    f"{declared!r}, but this tutorial applies into {conn.namespace!r}",
                    fix="remove metadata.namespace from the file: the tutorial's manifests are namespace-free "
                    "so the same files work in any namespace",
                )
            planned.append((name, obj))
    return planned


def _check_order(step: Step, conn: Connection) -> None:
    """Every earlier step's objects must exist; the error names every step that is missing something."""
    gaps = [(earlier, missing) for earlier in steps_before(step) if (missing := earlier.missing(conn))]
    if not gaps:
        return
    details = "; ".join(f"{earlier.key}: {', '.join(missing)}" for earlier, missing in gaps)
    calls = ", ".join(f"jhtutorial.apply({earlier.slug!r})" for earlier, _ in gaps)
    raise StepOutOfOrder(
        f"step {step.key} needs {steps_named([earlier.key for earlier, _ in gaps])} first; missing in namespace "
        f"{conn.namespace}: {details}",
        fix=f"apply {'it' if len(gaps) == 1 else 'them in order'}: {calls} "
        f"(or from a terminal: `{up_command(gaps[-1][0].number, conn.namespace)}`)",
    )


def _prepare(kube: KubeApi, conn: Connection, obj: Obj, secret_values: list[str]) -> tuple[Obj, Resource]:
    body = copy.deepcopy(obj)
    resource = kube.resource_for(body["apiVersion"], body["kind"])
    if resource.namespaced:
        body["metadata"]["namespace"] = conn.namespace
    if body["kind"] == "Secret":
        _fill_generated_values(kube, conn, body, resource, secret_values)
    return body, resource


def _fill_generated_values(kube: KubeApi, conn: Connection, secret: Obj, resource: Resource,
                           secret_values: list[str]) -> None:
    """Replace placeholders by random tokens, keeping any token the cluster already holds.

    Everything goes into ``data`` (base64): server-side apply tracks ``data``
    fields, while ``stringData`` is write-only and would leave jhtutorial owning
    nothing, so a later apply could not keep the value stable.
    """
    data: dict[str, str] = dict(secret.get("data") or {})
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = _encode(str(value))
    placeholder = _encode(manifests.PROXY_TOKEN_PLACEHOLDER)
    wanted = [key for key, value in data.items() if value == placeholder]
    if wanted:
        live = kube.get_or_none(resource.path(conn.namespace, secret["metadata"]["name"])) or {}
        live_data = live.get("data") or {}
        for key in wanted:
            kept = live_data.get(key)
            # a value someone applied by hand straight from the file is the placeholder, not a token
            data[key] = kept if kept and kept != placeholder else _encode(secrets.token_hex(32))
    for value in data.values():
        secret_values.append(value)
        secret_values.append(base64.b64decode(value).decode("utf-8", "replace"))
    secret["data"] = data


def _encode(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- talking to the server ----------------------------------------------------------------------


@dataclass(frozen=True)
class _How:
    """Who applies (the field manager the server records) and whether they take over others' fields."""

    manager: str
    force_conflicts: bool


def _dry_run(kube: KubeApi, conn: Connection, prepared: list[tuple[str, tuple[Obj, Resource]]],
             how: _How) -> list[tuple[int, Obj] | None]:
    """Dry-run every object in order; None for a RoleBinding that can only be checked once its Role exists."""
    answers: list[tuple[int, Obj] | None] = []
    new_roles: set[tuple[str, str]] = set()  # (kind, name) of roles of this step that do not exist yet
    for source, (obj, resource) in prepared:
        try:
            status, live = _send(kube, conn, obj, resource, how, dry_run=True)
        except KubeApiError as err:
            if err.status == 404 and _role_ref(obj) in new_roles:
                # The API server looked for the Role to see whether you hold all of its permissions,
                # and the dry run above did not store it: the real apply checks this binding.
                answers.append(None)
                continue
            raise _refusal(err, conn, source, obj, dry_run=True) from None
        if obj["kind"] in ("Role", "ClusterRole") and status == 201:
            new_roles.add((obj["kind"], obj["metadata"]["name"]))
        answers.append((status, live))
    return answers


def _role_ref(obj: Obj) -> tuple[str, str] | None:
    """(kind, name) of the role a RoleBinding or ClusterRoleBinding grants."""
    if obj.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
        return None
    ref = obj.get("roleRef") or {}
    return str(ref.get("kind")), str(ref.get("name"))


def _send(kube: KubeApi, conn: Connection, obj: Obj, resource: Resource, how: _How, *,
          dry_run: bool) -> tuple[int, Obj]:
    """One server-side apply; raises the KubeApiError (or Forbidden) the server answered."""
    name = obj["metadata"]["name"]
    query: dict[str, Any] = {"fieldManager": how.manager, "force": how.force_conflicts}
    if dry_run:
        query["dryRun"] = "All"
    response = kube.open("PATCH", resource.path(conn.namespace, name), query=query, body=obj,
                         content_type=APPLY_CONTENT_TYPE)
    try:
        data = response.data
    finally:
        response.release_conn()
    raise_for_status(response.status, data, what=f"apply {obj['kind']}/{name}", token=kube.token)
    return response.status, json.loads(data)


def _refusal(err: KubeApiError, conn: Connection, source: str, obj: Obj, *, dry_run: bool,
             undone: str = "") -> TutorialError:
    """The error a learner sees for a refused object: the real cause, and what became of the rest."""
    what = f"{obj['kind']}/{obj['metadata']['name']}"
    after = "; nothing was applied" if dry_run else undone
    if isinstance(err, Forbidden):
        return Forbidden(
            f"not allowed to apply {what} (from {source}) in namespace {conn.namespace}: {err.problem}{after}",
            fix=_forbidden_fix(err, conn),
            status=403,
            reason=err.reason,
        )
    ref = _role_ref(obj)
    if err.status == 404 and ref is not None and "namespaces" not in err.problem:
        # The server's words ("rolebindings ... not found") name the binding, but the binding is not what
        # is missing: without the `bind` verb, the server must read the role to check that you hold every
        # permission it grants, and it could not find that role.
        kind, name = ref
        return ApplyRejected(
            f"{what} (from {source}) grants {kind}/{name}, which does not exist in namespace {conn.namespace}: "
            f"the API server must read that {kind} to check that you hold every permission it grants "
            f"(you lack the `bind` verb that would skip the check), and answered HTTP 404 "
            f"({err.problem}){after}",
            fix=f"create {kind}/{name} first (apply the file that defines it, or the whole step again), "
            f"then the binding; `kubectl get {kind.lower()} {name} -n {conn.namespace}` shows whether it exists",
        )
    return ApplyRejected(
        f"the API server refused {what} from {source} (HTTP {err.status} {err.reason}): {err.problem}{after}",
        fix=_rejection_fix(err, conn),
    )


def _forbidden_fix(err: Forbidden, conn: Connection) -> str:
    if "attempting to grant RBAC permissions not currently held" in err.problem:
        return ("RBAC lets you grant only permissions you hold yourself (or roles you may `bind`): ask your "
                f"instructor or a cluster admin for those rights in namespace {conn.namespace}")
    return (f"ask your instructor or a cluster admin for a Role in namespace {conn.namespace} that allows this "
            "(`kubectl auth can-i --list -n NS` shows what you may do), or work in a namespace you own: "
            "the notebooks' `namespace` parameter, `--namespace` on the command line")


def _roll_back(kube: KubeApi, conn: Connection, applied: list[AppliedObject],
               prepared: list[tuple[str, tuple[Obj, Resource]]]) -> str:
    """Delete what this call created, the last first; say what happened, for the error message."""
    if not applied:
        return "; nothing was applied"
    resources = {(obj["kind"], obj["metadata"]["name"]): resource for _, (obj, resource) in prepared}
    created = [a for a in applied if a.action == "created"]
    kept = [f"{a.kind}/{a.name}" for a in applied if a.action != "created"]
    deleted, failed = [], []
    for item in reversed(created):
        try:
            kube.call("DELETE", resources[(item.kind, item.name)].path(conn.namespace, item.name))
            deleted.append(f"{item.kind}/{item.name}")
        except KubeApiError as err:
            if err.status == 404:
                deleted.append(f"{item.kind}/{item.name}")
            else:
                failed.append(f"{item.kind}/{item.name} ({err.problem})")
    parts = []
    if deleted:
        parts.append(f"this call had created {', '.join(reversed(deleted))} and deleted them again")
    if failed:
        parts.append(f"could not delete again what this call created: {'; '.join(failed)}")
    if kept:
        parts.append(f"already there and changed by this call, left as they are: {', '.join(kept)} "
                     "(running the step again converges)")
    return "; " + "; ".join(parts)


def _rejection_fix(err: KubeApiError, conn: Connection) -> str:
    if err.status == 409 and "conflict" in err.problem.lower():
        return ("another field manager changed a field the file sets (the message names both). If the file is "
                "right, apply with --force-conflicts (jhtutorial.apply(..., force_conflicts=True)) to take the "
                "field back; if the change is right, copy it into the file first")
    if err.status == 404 and "namespaces" in err.problem:
        return (f"the namespace {conn.namespace!r} does not exist: check the namespace you gave, or create it "
                "(notebook 00, or `jhtutorial up`, creates it)")
    if err.status == 422:
        return "the message names the field; correct it in the manifest file and apply again"
    return "`kubectl apply --server-side --dry-run=server -f FILE` shows the same answer"


def _result(obj: Obj, before: tuple[int, Obj] | None, after: tuple[int, Obj]) -> AppliedObject:
    status, live = after
    if status == 201:
        action = "created"
    elif before is not None and (before[1].get("metadata") or {}).get("resourceVersion") == (
        live.get("metadata") or {}
    ).get("resourceVersion"):
        # the dry run showed the stored version; an apply that changed nothing keeps it
        action = "unchanged"
    else:
        action = "configured"
    return AppliedObject(
        kind=obj["kind"],
        name=obj["metadata"]["name"],
        namespace=(live.get("metadata") or {}).get("namespace"),
        action=action,
        object=_redact(live),
    )


def _redact(live: Obj) -> Obj:
    shown = copy.deepcopy(live)
    (shown.get("metadata") or {}).pop("managedFields", None)
    if shown.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if shown.get(key):
                shown[key] = {name: HIDDEN for name in shown[key]}
        (shown.get("metadata", {}).get("annotations") or {}).pop(LAST_APPLIED, None)
    return shown


def _scrub(err: TutorialError, values: list[str]) -> None:
    """Make sure no secret value travels in an error message."""
    for value in values:
        if value and len(value) >= 8:
            err.problem = err.problem.replace(value, HIDDEN)
            if err.fix:
                err.fix = err.fix.replace(value, HIDDEN)
    err.args = (err.problem,)
