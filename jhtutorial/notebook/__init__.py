"""Small helpers the numbered notebooks share, one module per concern, all reachable as ``nb.NAME``:

- :mod:`.first_cell`: ``begin`` (connect, say where, stop if an earlier step is not done), ``simulated``;
- :mod:`.prerequisites`: what the tutorial needs from the cluster (00), ``explain_cluster``;
- :mod:`.display`: a manifest file, the kubectl line of a step;
- :mod:`.reads`: the client and lists of objects, cluster-wide reads that may be refused;
- :mod:`.tables`: ``kubectl get``-like tables, events, quantities;
- :mod:`.permissions`: ``kubectl auth can-i``, a client acting as a ServiceAccount;
- :mod:`.manifest_data`: the manifests read as data (mounted keys, Secret variables, security settings);
- :mod:`.checks`: the lines of a check cell;
- :mod:`.replacement`: pods deleted or restarted, watched;
- :mod:`jhtutorial.yourturn`: ``apply_step`` and ``wait_step``, a learner's own turn at a step.

    >>> from jhtutorial import notebook as nb
    >>> conn = nb.begin("05-services", namespace="alice")    # doctest: +SKIP
    connected to the local simulated cluster (kwok), Kubernetes v1.36.3
      context:    kwok-jhtutorial
      namespace:  alice
    earlier steps: 01-rbac done, 02-configmaps done, 03-secret done, 04-pvc done
    >>> nb.show_manifest("svc-hub.yaml")                      # doctest: +SKIP
    >>> print(nb.get(conn, "services"))                       # doctest: +SKIP   (kubectl get services)
    NAME           TYPE        PORT(S)        CLUSTER-IP
    hub            ClusterIP   8081/TCP       10.96.56.202
    proxy-public   NodePort    80:31175/TCP   10.96.177.124

Everything here reads the cluster through the same connection as the rest of
the package; nothing here prints a Secret's value.
"""

from ..connect import resolve_context, resolve_namespace
from ..yourturn import apply_step, wait_step
from .checks import check, check_step, skip
from .display import show_kubectl, show_manifest, show_step_command
from .first_cell import begin, cluster_name, require_steps, simulated
from .manifest_data import manifest_objects, mounted_files, secret_env, security_settings
from .permissions import can_i, service_account_client, yes_no
from .prerequisites import NEEDED_PERMISSIONS, OPTIONAL_PERMISSIONS, explain_cluster, prerequisites, prerequisites_table
from .reads import CLUSTER_WIDE_NAMES, PART_OF, claimed_volumes, cluster_items, items, kube, not_allowed
from .replacement import Replacement, delete_pods, rollout_restart, watch_replacement
from .tables import events, get, memory, table

__all__ = [
    "CLUSTER_WIDE_NAMES",
    "NEEDED_PERMISSIONS",
    "OPTIONAL_PERMISSIONS",
    "PART_OF",
    "Replacement",
    "apply_step",
    "begin",
    "can_i",
    "check",
    "check_step",
    "claimed_volumes",
    "cluster_items",
    "cluster_name",
    "delete_pods",
    "events",
    "explain_cluster",
    "get",
    "items",
    "kube",
    "manifest_objects",
    "memory",
    "mounted_files",
    "not_allowed",
    "prerequisites",
    "prerequisites_table",
    "require_steps",
    "resolve_context",
    "resolve_namespace",
    "rollout_restart",
    "secret_env",
    "security_settings",
    "service_account_client",
    "show_kubectl",
    "show_manifest",
    "show_step_command",
    "simulated",
    "skip",
    "table",
    "wait_step",
    "watch_replacement",
    "yes_no",
]
