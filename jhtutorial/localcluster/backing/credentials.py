"""A backed pod's ServiceAccount credentials, as the kubelet hands them to a container.

One token per pod, asked for as the kubelet asks (a TokenRequest bound to the pod, so it dies with it), then
written the way the pod's programs read it: a projected folder (``token``, ``ca.crt``, ``namespace``) mounted at
``/var/run/secrets/kubernetes.io/serviceaccount`` in the pod's sandbox.

Renewed as the kubelet renews a projected token: once 80% of its lifetime has passed, or once it is 24 hours
old, whichever comes first. Each file is replaced in one step (a new file, made with its mode, renamed over the
old one): a program reading it sees the old token or the new one, never none or half of one. The folder, not a
file, is mounted into the sandbox, so the rename is seen inside; JupyterHub's Kubernetes client reads the token
file again every minute.

    >>> token = pod_token(kube, pod)                                                     # doctest: +SKIP
    >>> folder = service_account_folder(pod_folder, token.value, cluster_entry, "jhtutorial")  # doctest: +SKIP
    >>> token.renew_at         # time.time() at which the pod's worker asks for the next one  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...kubeapi import KubeApi
from ...tokens import request_token
from .mounts import replace_file

Obj = dict[str, Any]
TOKEN_SECONDS = 24 * 3600
RENEW_AFTER = 0.8  # the fraction of a token's lifetime after which the kubelet asks for a new one
RENEW_AGE_LIMIT = 24 * 3600.0  # ... or its age in seconds, whichever comes first
MINIMUM_TOKEN_SECONDS = 600  # the API server refuses a TokenRequest for less


def service_account_name(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("serviceAccountName") or "default")


@dataclass(frozen=True)
class TokenLifetime:
    """How long a pod's token is asked for, and when the next one is (a fraction of its lifetime)."""

    seconds: int = TOKEN_SECONDS
    renew_after: float = RENEW_AFTER

    def __post_init__(self) -> None:
        if self.seconds < MINIMUM_TOKEN_SECONDS or not 0 < self.renew_after < 1:
            raise ValueError(f"a token lives at least {MINIMUM_TOKEN_SECONDS} s (not {self.seconds}) and is renewed "
                             f"after a fraction of its lifetime between 0 and 1 (not {self.renew_after})")

    def renewal(self, issued: float, expires: float) -> float:
        """The moment (as time.time()) to ask for the next token, for one issued and expiring at these moments."""
        return issued + min(self.renew_after * max(0.0, expires - issued), RENEW_AGE_LIMIT)


@dataclass(frozen=True)
class PodToken:
    value: str = field(repr=False)  # never printed
    renew_at: float


def pod_token(kube: KubeApi, pod: Obj, lifetime: TokenLifetime = TokenLifetime()) -> PodToken:
    """A token of the pod's ServiceAccount, bound to the pod (it stops working when the pod is deleted), and when
    to renew it (the API server may grant another lifetime than asked for: its answer counts)."""
    meta = pod["metadata"]
    issued = time.time()
    token = request_token(kube, meta["namespace"], service_account_name(pod), seconds=lifetime.seconds,
                          bound_to=("Pod", meta["name"], meta["uid"]))
    try:
        expires = dt.datetime.strptime(token.expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        expires = issued + lifetime.seconds
    return PodToken(token.value, lifetime.renewal(issued, expires))


def service_account_folder(folder: Path, token: str, cluster: Obj, namespace: str) -> Path:
    """``folder``/serviceaccount holding what the kubelet projects: the token, the cluster's CA, the namespace.
    Called again with a renewed token, it replaces each file in one step."""
    projected = folder / "serviceaccount"
    projected.mkdir(mode=0o755, exist_ok=True)
    ca = cluster.get("certificate-authority-data")
    ca_bytes = base64.b64decode(ca) if ca else Path(cluster["certificate-authority"]).read_bytes()
    for name, content in (("token", token.encode()), ("ca.crt", ca_bytes), ("namespace", namespace.encode())):
        replace_file(projected / name, 0o644, content)  # made anew with its mode, never widened after
    return projected

