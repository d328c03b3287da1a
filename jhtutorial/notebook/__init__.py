"""Small helpers the numbered notebooks share, one module per concern, all reachable as ``nb.NAME``:

- :mod:`.first_cell`: ``begin`` (connect, say where, stop if an earlier step is not done), ``simulated``;
- :mod:`.last_cell`: ``end`` (stop the watches still running, say how to shut the kernel down);
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
- :mod:`.storage`: reclaim policies, a claim made to fail on purpose, and the check of the hub's claim (04);
- :mod:`.replacement`: pods deleted or restarted, watched;
- :mod:`.services`: Services with what they select and their endpoints; the Service exercises (05, 06);
- :mod:`.workloads`: Deployments, owner chains, what each running container may do (06);
- :mod:`.inventory`: everything of the workbook and who made it; each user's pod and claim (07, 08);
- :mod:`.exercises`: an exercise's folded answer that, with a learner at the keyboard, waits until they tried;
- :mod:`jhtutorial.yourturn`: ``apply_step`` and ``wait_step``, a learner's own turn at a step.

    >>> from jhtutorial import notebook as nb
    >>> conn = nb.begin("05-services", namespace="alice")    # doctest: +SKIP
    connected to the local simulated cluster (kwok), Kubernetes v1.36.3
      context:    kwok-jhtutorial
      namespace:  alice
    earlier steps: 01-rbac done, 02-configmaps done, 03-secret done, 04-pvc done
    >>> nb.show_manifest("svc-hub.yaml")                      # doctest: +SKIP
    >>> print(nb.get(conn, "services"))                       # doctest: +SKIP   (kubectl get services)
    NAME           TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)
    hub            ClusterIP   10.96.56.202    <none>        8081/TCP
    proxy-public   NodePort    10.96.177.124   <none>        80:31175/TCP

Everything here reads the cluster through the same connection as the rest of
the package; nothing here prints a Secret's value.
"""

from ..connect import resolve_context, resolve_namespace
from ..enforcement import enforcement
from ..yourturn import apply_step, wait_step
from .checks import check, check_step, skip
from .config_text import python_summary, set_line
from .exercises import Answer, Exercise, exercise
from .display import excerpt_lines, folded_answer, show_kubectl, show_manifest, show_step_command, terminal_commands
from .last_cell import end
from .first_cell import begin, cluster_name, require_steps, simulated
from .hub_login import hub_log, log_in
from .inventory import user_servers, wait_volumes_gone, workbook_objects
from .manifest_data import (
    ContainerSettings,
    container_settings,
    manifest_objects,
    manifest_value,
    mounted_files,
    secret_env,
    security_settings,
)
from .ownership import change, field_managers, field_paths
from .permissions import CanIAnswers, Question, ask_can_i, can_i, requests_as, role_rules, service_account_client, yes_no
from .prerequisites import NEEDED_PERMISSIONS, OPTIONAL_PERMISSIONS, explain_cluster, prerequisites, prerequisites_table
from .reads import (
    CLUSTER_WIDE_NAMES,
    COMPONENT,
    PART_OF,
    claimed_volumes,
    cluster_items,
    configmap_value,
    items,
    kube,
    not_allowed,
    pods,
)
from .secret_view import ValueShape, describe_secret, secret_value_shape
from .replacement import Replacement, delete_and_watch, delete_pods, restart_and_watch, rollout_restart, watch_replacement
from .services import ServiceView, recreate_service, service, service_addresses, service_selectors, services, set_selector
from .storage import (
    check_hub_claim,
    claim_names,
    create_scratch_claim,
    delete_scratch_claim,
    reclaim_policies,
    scratch_claim,
    scratch_claim_command,
)
from .tables import events, get, memory, nodes_table, table
from .workloads import DeploymentView, containers, deployments, owner_chains, pod_security

__all__ = [
    "CLUSTER_WIDE_NAMES",
    "COMPONENT",
    "CanIAnswers",
    "ContainerSettings",
    "DeploymentView",
    "NEEDED_PERMISSIONS",
    "OPTIONAL_PERMISSIONS",
    "PART_OF",
    "Question",
    "Replacement",
    "ServiceView",
    "ValueShape",
    "apply_step",
    "ask_can_i",
    "begin",
    "can_i",
    "change",
    "check",
    "check_step",
    "check_hub_claim",
    "claim_names",
    "claimed_volumes",
    "cluster_items",
    "cluster_name",
    "configmap_value",
    "container_settings",
    "containers",
    "create_scratch_claim",
    "delete_and_watch",
    "delete_pods",
    "delete_scratch_claim",
    "deployments",
    "describe_secret",
    "enforcement",
    "events",
    "excerpt_lines",
    "explain_cluster",
    "field_managers",
    "field_paths",
    "get",
    "hub_log",
    "items",
    "kube",
    "log_in",
    "manifest_objects",
    "manifest_value",
    "memory",
    "mounted_files",
    "nodes_table",
    "not_allowed",
    "owner_chains",
    "pod_security",
    "pods",
    "prerequisites",
    "prerequisites_table",
    "python_summary",
    "reclaim_policies",
    "recreate_service",
    "requests_as",
    "require_steps",
    "resolve_context",
    "resolve_namespace",
    "restart_and_watch",
    "role_rules",
    "rollout_restart",
    "scratch_claim",
    "scratch_claim_command",
    "secret_env",
    "secret_value_shape",
    "security_settings",
    "service",
    "service_account_client",
    "service_addresses",
    "service_selectors",
    "services",
    "set_line",
    "set_selector",
    "show_kubectl",
    "show_manifest",
    "show_step_command",
    "simulated",
    "skip",
    "table",
    "terminal_commands",
    "user_servers",
    "wait_step",
    "wait_volumes_gone",
    "watch_replacement",
    "workbook_objects",
    "yes_no",
]
