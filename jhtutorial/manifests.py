"""The tutorial's manifests: find them, read them, and check them before anything is applied.

Every file in ``manifests/`` is plain Kubernetes YAML that ``kubectl apply -f``
accepts as it is. Loading one here parses it, and refuses it with the file
name, the line and the reason when the YAML is broken, a key is repeated, a
field every object needs is missing, or the kind is one the cluster does not
serve. Nothing is sent to the cluster except, when an ``api_client`` is given,
the read-only discovery requests ``kubectl api-resources`` also makes.

    >>> from jhtutorial.manifests import load_manifest, load_all
    >>> [obj["kind"] for obj in load_manifest("rbac.yaml")]
    ['ServiceAccount', 'ServiceAccount', 'Role', 'RoleBinding']
    >>> list(load_all())[:3]
    ['rbac.yaml', 'cm-hub-config.yaml', 'cm-ingress.yaml']

The same checks by hand (the second one asks the API server, stores nothing):

    $ kubectl apply --dry-run=client -f manifests/rbac.yaml
    $ kubectl apply --dry-run=server -f manifests/rbac.yaml
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ManifestError
from .shipped import shipped_folder

Manifest = dict[str, Any]

#: The files of the tutorial, in the order the steps apply them (the 2018 order).
MANIFEST_FILES: tuple[str, ...] = (
    "rbac.yaml",
    "cm-hub-config.yaml",
    "cm-ingress.yaml",
    "cm-nginx.yaml",
    "secret-hub.yaml",
    "pvc-hub.yaml",
    "svc-hub.yaml",
    "svc-proxy-api.yaml",
    "svc-proxy-http.yaml",
    "svc-proxy-public.yaml",
    "deploy-hub.yaml",
    "deploy-proxy.yaml",
)

#: The label selector that finds everything the tutorial made and nothing else: every object of the files
#: carries the label, and the hub config gives it to the user pods and PVCs KubeSpawner creates.
PART_OF = "app.kubernetes.io/part-of=jhtutorial"

#: The value of ``proxy.token`` in secret-hub.yaml. It is not a token: whoever
#: creates the Secret replaces it with a fresh random one per install.
PROXY_TOKEN_PLACEHOLDER = "REPLACE_ME_WITH_OPENSSL_RAND_HEX_32"

#: (apiVersion, kind) of every object the tutorial's files contain. Used to
#: check kinds when no cluster is at hand; with a cluster, its discovery
#: documents are the authority.
KNOWN_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("v1", "ConfigMap"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("apps/v1", "Deployment"),
    }
)

_API_VERSION = re.compile(r"^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$")
#: Names another folder of manifests: `jhtutorial lab` sets it to the learner's working copy.
MANIFEST_DIR_ENV = "JHTUTORIAL_MANIFEST_DIR"


def find_manifest_dir() -> Path:
    """Where the manifests are: ``$JHTUTORIAL_MANIFEST_DIR`` (``jhtutorial lab`` points it at the
    learner's working copy), else the ones the package ships (see :mod:`jhtutorial.shipped`).

        >>> find_manifest_dir().joinpath("rbac.yaml").is_file()
        True
    """
    override = os.environ.get(MANIFEST_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return shipped_folder("manifests")


MANIFEST_DIR: Path = find_manifest_dir()


def manifest_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The file meant by a tutorial file name (``"rbac.yaml"`` or ``"rbac"``) or by a path.

        >>> manifest_path("pvc-hub").name
        'pvc-hub.yaml'
    """
    raw = os.fspath(name_or_path)
    as_path = Path(raw).expanduser()
    if as_path.is_absolute() or os.sep in raw or "/" in raw or as_path.exists():
        return as_path
    if not as_path.suffix:
        as_path = as_path.with_suffix(".yaml")
    return MANIFEST_DIR / as_path


def load_manifest(name_or_path: str | os.PathLike[str], api_client: Any = None) -> list[Manifest]:
    """Parse one manifest file into its objects (one dict per YAML document, empty ones skipped).

    Raises :class:`~jhtutorial.errors.ManifestError` naming the file, the line
    and the reason for: a missing file, a YAML syntax error, a key given twice
    in one mapping, a document that is not a Kubernetes object, and a kind
    that is not known. Kinds are checked against the API server's discovery
    when ``api_client`` (a ``kubernetes.client.ApiClient``) is given, else
    against :data:`KNOWN_KINDS`.

        >>> objs = load_manifest("svc-proxy-public.yaml")
        >>> objs[0]["spec"]["type"]
        'NodePort'
        >>> load_manifest("deploy-hub.yaml", api_client=api)  # doctest: +SKIP
    """
    return _load(manifest_path(name_or_path), _KindCheck(api_client))


def load_all(api_client: Any = None) -> dict[str, list[Manifest]]:
    """Load and check every tutorial file; nothing is returned unless all of them pass.

    The result maps each file name to its objects, in the order the steps
    apply them, so a caller can apply everything or one file at a time.

        >>> manifests = load_all()
        >>> sum(len(objs) for objs in manifests.values())
        15
    """
    check = _KindCheck(api_client)
    return {name: _load(MANIFEST_DIR / name, check) for name in MANIFEST_FILES}


# --- parsing ---------------------------------------------------------------------


def _load(path: Path, check: _KindCheck) -> list[Manifest]:
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            shown,
            0,
            "no such file",
            fix=f"the tutorial's files are in {MANIFEST_DIR}: {', '.join(MANIFEST_FILES)}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(shown, 0, f"cannot read the file ({exc})") from None

    objects: list[Manifest] = []
    for node, data in _documents(text, shown):
        if data is None:
            continue
        _check_object(node, data, shown, check)
        objects.append(data)
    return objects


def _documents(text: str, shown: str) -> list[tuple[yaml.Node, Any]]:
    """Each YAML document as (node, value): nodes keep line numbers for later messages."""
    loader = yaml.SafeLoader(text)
    out: list[tuple[yaml.Node, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            _reject_duplicate_keys(node, shown)
            out.append((node, loader.construct_document(node)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = "; ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        where = f" (column {column})" if column else ""
        raise ManifestError(
            shown,
            line,
            f"YAML syntax error: {reason}{where}",
            fix="fix the indentation or quoting on that line (or just above it), then load the file again",
        ) from None
    except yaml.YAMLError as exc:  # e.g. a character YAML does not allow, which has no line mark
        raise ManifestError(shown, 0, f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    return out


def _reject_duplicate_keys(node: yaml.Node, shown: str) -> None:
    # PyYAML keeps the last of two equal keys without a word; kubectl refuses
    # such a file. Refusing it here too keeps the two views of a file equal.
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise ManifestError(
                        shown,
                        line,
                        f"key {key.value!r} appears twice in one mapping (first on line {seen[key.value]})",
                        fix="keep one of the two; YAML keys must be unique",
                    )
                seen[key.value] = line
            _reject_duplicate_keys(value, shown)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, shown)


def _value_line(node: yaml.Node, *keys: str) -> int:
    """The line of the value at ``keys`` inside ``node``, or of the deepest part that exists."""
    line = node.start_mark.line + 1
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                node = value_node
                line = value_node.start_mark.line + 1
                break
        else:
            break
    return line


def _check_object(node: yaml.Node, data: Any, shown: str, check: _KindCheck) -> None:
    line = node.start_mark.line + 1
    if not isinstance(data, dict):
        raise ManifestError(
            shown,
            line,
            f"a document must be one Kubernetes object (a mapping), not a {type(data).__name__}",
            fix="each document between '---' lines needs apiVersion, kind and metadata",
        )
    for field in ("apiVersion", "kind"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise ManifestError(
                shown,
                _value_line(node, field),
                f"the object has no {field}",
                fix="every object starts with apiVersion and kind, e.g. 'apiVersion: v1' and 'kind: ConfigMap'",
            )
    metadata = data.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ManifestError(
            shown,
            _value_line(node, "metadata"),
            f"the {data['kind']} has no metadata.name",
            fix="name every object: applying (and re-applying) finds objects by name",
        )
    check(data["apiVersion"], data["kind"], shown, _value_line(node, "kind"), _value_line(node, "apiVersion"))


# --- kinds -----------------------------------------------------------------------


class _KindCheck:
    """Is (apiVersion, kind) something the cluster serves? One discovery request per apiVersion."""

    def __init__(self, api_client: Any = None) -> None:
        self._api = api_client
        self._served: dict[str, set[str] | None] = {}

    def __call__(self, api_version: str, kind: str, shown: str, kind_line: int, version_line: int) -> None:
        if not _API_VERSION.match(api_version):
            raise ManifestError(
                shown,
                version_line,
                f"apiVersion {api_version!r} is not of the form VERSION or GROUP/VERSION",
                fix="for example: v1, apps/v1, rbac.authorization.k8s.io/v1",
            )
        if self._api is None:
            kinds = {k for v, k in KNOWN_KINDS if v == api_version} or None
            source = "checked against the kinds the tutorial uses"
        else:
            kinds = self._discover(api_version)
            source = "checked against the API server's discovery"
        if kinds is None:
            raise ManifestError(
                shown,
                version_line,
                f"unknown apiVersion {api_version!r} for kind {kind!r} ({source})",
                fix=_hint(kind, api_version),
            )
        if kind not in kinds:
            close = difflib.get_close_matches(kind, sorted(kinds), n=1)
            fix = f"did you mean {close[0]!r}?" if close else _hint(kind, api_version)
            raise ManifestError(
                shown,
                kind_line,
                f"unknown kind {kind!r}: {api_version} has no such kind ({source})",
                fix=fix,
            )

    def _discover(self, api_version: str) -> set[str] | None:
        if api_version in self._served:
            return self._served[api_version]
        from .kubeapi import KubeApi  # deferred: only needed with a cluster

        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        # None: the group/version is not served; other failures raise the package's own
        # errors (Forbidden, ClusterUnreachable, ...) with their fixes
        body = KubeApi(self._api).get_or_none(path)
        if body is None:
            self._served[api_version] = None
            return None
        # Sub-resources ("pods/log") share their parent's kind; only top-level ones count.
        kinds = {r["kind"] for r in body.get("resources", []) if "/" not in r.get("name", "")}
        self._served[api_version] = kinds
        return kinds


def _hint(kind: str, api_version: str) -> str:
    """Where the tutorial's files serve this kind (helps with 2018-era apiVersions)."""
    homes = sorted(v for v, k in KNOWN_KINDS if k == kind and v != api_version)
    if homes:
        return f"{kind} is served as apiVersion {homes[0]} (old apiVersions such as extensions/v1beta1 were removed)"
    return "list what the cluster serves with: kubectl api-resources"
