"""What the cluster enforces of a pod's security settings, where the pod runs: ONE answer for every table.

A pod spec declares its user, non-root, privilege escalation, capabilities, a read-only root, seccomp and
resource limits; only a container runtime (or a sandbox) makes them true for the program:

- on a real cluster the container runtime enforces all of them;
- on the local simulated cluster a backed pod (annotation ``jhtutorial/backed-by``) runs in a sandbox, as its
  runAsUser with every capability dropped, no_new_privs, under the sandbox's seccomp filter (its RuntimeDefault:
  backed namespaces refuse any other profile), on a read-only root (the machine's folders bound read-only: there
  is no image layer to write to, whatever the pod declares) and with no resource limits: everything but the
  limits is enforced;
- a pod nothing backs (purely simulated) runs no program: nothing is enforced, nothing runs either.

    >>> enforcement("local", {"metadata": {}}).enforced
    frozenset()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .localcluster.backing import BACKED_BY_ANNOTATION, SANDBOXED_BY

Obj = dict[str, Any]

# the settings, as the security tables name their columns
USER, NON_ROOT, PRIV_ESCALATION, CAPS_DROPPED, READ_ONLY_ROOT, SECCOMP, LIMITS = (
    "USER", "NON-ROOT", "PRIV-ESCALATION", "CAPS DROPPED", "READ-ONLY ROOT", "SECCOMP", "LIMITS")
SETTINGS = (USER, NON_ROOT, PRIV_ESCALATION, CAPS_DROPPED, READ_ONLY_ROOT, SECCOMP, LIMITS)
# a sandbox runs each container as its runAsUser (never root), with no capabilities, no_new_privs and its seccomp
# filter (backing/seccomp.py), on a root that is read-only for every container (backing/sandbox_init.py)
SANDBOXED = frozenset({USER, NON_ROOT, PRIV_ESCALATION, CAPS_DROPPED, READ_ONLY_ROOT, SECCOMP})


@dataclass(frozen=True)
class Enforcement:
    """Which settings hold for the pod's programs, and what runs them."""

    runs_as: str
    enforced: frozenset[str]

    def says(self, setting: str) -> str:
        return "yes" if setting in self.enforced else "no"

    def note(self) -> str:
        if self.enforced == frozenset(SETTINGS):
            return f"ENFORCED: {self.runs_as} makes every setting true for the program"
        if not self.enforced:
            return f"ENFORCED: none; {self.runs_as}, so the settings are declared, not enforced"
        return f"ENFORCED: {self.runs_as} makes {', '.join(s for s in SETTINGS if s in self.enforced)} true, " \
               "the rest is declared only"


def enforcement(cluster_kind: str, pod: Obj) -> Enforcement:
    """What the cluster (``Connection.cluster_kind``) enforces for ``pod`` (as the API server holds it)."""
    if cluster_kind != "local":
        return Enforcement("a container runtime", frozenset(SETTINGS))
    backed_by = ((pod.get("metadata") or {}).get("annotations") or {}).get(BACKED_BY_ANNOTATION)
    if backed_by is None:
        return Enforcement("no program runs for this pod (simulated by kwok)", frozenset())
    return Enforcement(SANDBOXED_BY, SANDBOXED)
