"""Every result object shows itself one way: its lines() joined by str() and in a notebook (the Readable mixin).

Pure tests: the objects are built from plain values, no cluster needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.lib.pretty import pretty

from jhtutorial.access import Access
from jhtutorial.apply import ApplyResult
from jhtutorial.cleanup import CleanupResult
from jhtutorial.connect import Connection
from jhtutorial.localcluster.cluster import ClusterStatus
from jhtutorial.login import LoginResult
from jhtutorial.readable import Readable
from jhtutorial.steps import STEPS, StepStatus

RESULTS = [
    StepStatus(STEPS[0], done=False, details=["ServiceAccount hub: missing"], missing=["ServiceAccount/hub"]),
    CleanupResult(namespace="learner-1", kubectl="kubectl delete ..."),
    ClusterStatus(state="absent", kubeconfig=Path("/nowhere/kubeconfig")),
    Access(url=None, how="simulated", kubectl="kubectl port-forward -n learner-1 svc/proxy-public 8080:80"),
    LoginResult(user="admin", namespace="learner-1"),
    ApplyResult(STEPS[0], "learner-1", objects=[], kubectl="kubectl apply --server-side -n learner-1 -f manifests/rbac.yaml"),
    Connection(api=None, namespace="learner-1", context="kwok-jhtutorial", server="https://127.0.0.1:6443",  # type: ignore[arg-type]
               server_version="v1.36.3", cluster_kind="local", default_storage_class="standard",
               volume_binding_mode="Immediate", storage_checked=True, namespace_created=False, kubeconfig=None),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda result: type(result).__name__)
def test_one_way_to_show_a_result(result: Readable) -> None:
    assert isinstance(result, Readable)
    # no class writes its own text method beside lines(): str() and the notebook display come from the mixin
    assert "__str__" not in vars(type(result))
    assert type(result)._repr_pretty_ is Readable._repr_pretty_
    lines = result.lines()
    assert lines and all(isinstance(line, str) for line in lines)
    assert str(result) == "\n".join(lines)
    # what a notebook cell ending in the object shows: the lines, not the dataclass repr
    assert pretty(result) == str(result)


def test_a_step_status_lists_its_objects_under_its_verdict() -> None:
    status = StepStatus(STEPS[0], done=False, details=["ServiceAccount hub: missing"])
    assert status.lines() == ["step 01 (rbac) is NOT done", "  ServiceAccount hub: missing"]
    assert not status
