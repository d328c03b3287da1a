"""A backed pod's status from what its containers do (jhtutorial/localcluster/backing/status.py): what the
kubelet would write, checked field by field. Pure functions, no cluster."""

from __future__ import annotations

from jhtutorial.localcluster.backing.status import ContainerState, readiness_matches, status_patch

STARTED = "2026-01-01T00:00:00Z"


def _state(name: str, *, ready: bool = True, alive: bool = True, restarts: int = 0,
           last_exit: dict | None = None) -> ContainerState:
    return ContainerState(name, f"image/{name}:1", ready, alive, restarts, 42 if alive else None,
                          STARTED if alive else None, last_exit)


def _conditions(patch: dict) -> dict[str, dict]:
    return {c["type"]: c for c in patch["status"]["conditions"]}


def test_one_unready_container_makes_the_pod_unready_and_is_named() -> None:
    patch = status_patch([_state("nginx"), _state("chp", ready=False)], {}, at="T1")
    ready = _conditions(patch)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [chp]"
    assert _conditions(patch)["ContainersReady"]["status"] == "False"
    assert _conditions(patch)["PodScheduled"] == {"type": "PodScheduled", "status": "True", "lastTransitionTime": "T1"}
    nginx, chp = patch["status"]["containerStatuses"]
    assert nginx["state"] == {"running": {"startedAt": STARTED}} and nginx["containerID"] == "process://42"
    assert not chp["ready"] and chp["started"]
    assert "phase" not in patch["status"] and "podIP" not in patch["status"]  # kwok's to write, unless handed over


def test_a_condition_keeps_its_transition_time_while_it_holds() -> None:
    first = status_patch([_state("hub", ready=False)], {}, at="T1")["status"]
    same = status_patch([_state("hub", ready=False)], first, at="T2")
    assert _conditions(same)["Ready"]["lastTransitionTime"] == "T1"
    flipped = status_patch([_state("hub")], first, at="T3")
    assert _conditions(flipped)["Ready"] == {"type": "Ready", "status": "True", "lastTransitionTime": "T3"}
    assert _conditions(flipped)["Initialized"]["lastTransitionTime"] == "T1"


def test_a_crashed_container_waits_in_back_off_and_shows_how_it_ended() -> None:
    ended = {"exitCode": 1, "reason": "Error", "startedAt": STARTED, "finishedAt": "T1"}
    crashed = status_patch([_state("hub", ready=False, alive=False, restarts=2, last_exit=ended)], {}, at="T2")
    hub = crashed["status"]["containerStatuses"][0]
    assert hub["state"]["waiting"]["reason"] == "CrashLoopBackOff" and hub["restartCount"] == 2
    assert hub["lastState"] == {"terminated": ended} and "containerID" not in hub
    never = status_patch([_state("hub", ready=False, alive=False)], {}, at="T2")["status"]["containerStatuses"][0]
    assert never["state"] == {"waiting": {"reason": "ContainerCreating"}} and "lastState" not in never


def test_a_pod_handed_over_gets_phase_and_address_and_its_readiness_is_compared() -> None:
    patch = status_patch([_state("hub")], {}, address=("10.244.1.7", STARTED), at="T1")["status"]
    assert patch["phase"] == "Running" and patch["podIP"] == "10.244.1.7" and patch["podIPs"] == [{"ip": "10.244.1.7"}]
    assert patch["startTime"] == STARTED
    assert readiness_matches(patch, True) and not readiness_matches(patch, False)
    assert not readiness_matches({"conditions": patch["conditions"]}, True)  # not Running (kwok's, before ours)
    assert status_patch([], {}, at="T1")["status"]["conditions"][2]["status"] == "False"  # no container: not ready
