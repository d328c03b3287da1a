"""Small helpers the numbered notebooks share, one module per concern, all reachable as ``nb.NAME``:

- :mod:`.first_cell`: ``begin`` (connect, say where, stop if an earlier step is not done), ``simulated``;
- :mod:`.prerequisites`: what the tutorial needs from the cluster (00), ``explain_cluster``;
- :mod:`.display`: a manifest file, the kubectl line of a step;
- :mod:`.reads`: the client and lists of objects, cluster-wide reads that may be refused;
- :mod:`.tables`: ``kubectl get``-like tables, events, quantities;
- :mod:`.permissions`: ``kubectl auth can-i``, a client acting as a ServiceAccount;
- :mod:`.manifest_data`: the manifests read as data (mounted keys, Secret variables, security settings);
- :mod:`.checks`: the lines of a check cell;
- :mod:`.ownership`: field managers, and hand edits made as ``kubectl edit``/``patch`` make them;
- :mod:`.config_text`: configuration files as text (compiled, one line changed);
- :mod:`.secret_view`: a Secret looked at without its values;
- :mod:`.storage`: reclaim policies, and a claim made to fail on purpose (04);
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
from .config_text import python_summary, set_line
from .display import excerpt_lines, show_kubectl, show_manifest, show_step_command, terminal_commands
from .first_cell import begin, cluster_name, require_steps, simulated
from .manifest_data import manifest_objects, manifest_value, mounted_files, secret_env, security_settings
from .ownership import change, field_managers, field_paths
from .permissions import CanIAnswers, Question, ask_can_i, can_i, requests_as, role_rules, service_account_client, yes_no
from .prerequisites import NEEDED_PERMISSIONS, OPTIONAL_PERMISSIONS, explain_cluster, prerequisites, prerequisites_table
from .reads import (
    CLUSTER_WIDE_NAMES,
    PART_OF,
    claimed_volumes,
    cluster_items,
    configmap_value,
    items,
    kube,
    not_allowed,
)
from .secret_view import ValueShape, describe_secret, secret_value_shape
from .replacement import Replacement, delete_pods, rollout_restart, watch_replacement
from .storage import (
    claim_names,
    create_scratch_claim,
    delete_scratch_claim,
    reclaim_policies,
    scratch_claim,
    scratch_claim_command,
)
from .tables import events, get, memory, nodes_table, table

__all__ = [
    "CLUSTER_WIDE_NAMES",
    "CanIAnswers",
    "NEEDED_PERMISSIONS",
    "OPTIONAL_PERMISSIONS",
    "PART_OF",
    "Question",
    "Replacement",
    "ValueShape",
    "apply_step",
    "ask_can_i",
    "begin",
    "can_i",
    "change",
    "check",
    "check_step",
    "claim_names",
    "claimed_volumes",
    "cluster_items",
    "cluster_name",
    "configmap_value",
    "create_scratch_claim",
    "delete_pods",
    "delete_scratch_claim",
    "describe_secret",
    "events",
    "excerpt_lines",
    "explain_cluster",
    "field_managers",
    "field_paths",
    "get",
    "items",
    "kube",
    "manifest_objects",
    "manifest_value",
    "memory",
    "mounted_files",
    "nodes_table",
    "not_allowed",
    "prerequisites",
    "prerequisites_table",
    "python_summary",
    "reclaim_policies",
    "requests_as",
    "require_steps",
    "resolve_context",
    "resolve_namespace",
    "role_rules",
    "rollout_restart",
    "scratch_claim",
    "scratch_claim_command",
    "secret_env",
    "secret_value_shape",
    "security_settings",
    "service_account_client",
    "set_line",
    "show_kubectl",
    "show_manifest",
    "show_step_command",
    "simulated",
    "skip",
    "table",
    "terminal_commands",
    "wait_step",
    "watch_replacement",
    "yes_no",
]
