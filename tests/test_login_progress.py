"""The login's progress lines as a notebook shows them: no raw timestamps, no event twice."""

from __future__ import annotations

import threading

from jhtutorial.login import LoginResult, _Clock, _ProgressReader, progress_message


def test_kubespawner_event_lines_lose_their_raw_timestamp() -> None:
    event = {"progress": 30, "message": "2026-11-25T20:58:03.740411Z [Warning] 0/3 nodes are available: "
                                        "pod has unbound immediate PersistentVolumeClaims."}
    assert progress_message(event) == ("[Warning] 0/3 nodes are available: pod has unbound immediate "
                                             "PersistentVolumeClaims.")
    assert progress_message({"message": "2026-11-25 20:58:03+00:00 [Normal] Pulling image"}) == (
        "[Normal] Pulling image")
    assert progress_message({"progress": 0, "message": "Server requested"}) == "Server requested"


def test_a_repeated_event_is_shown_once() -> None:
    """The scheduler retries a pod whose claim is not bound yet: KubeSpawner passes on the same warning twice,
    with two timestamps; the learner reads it once."""
    result = LoginResult(user="admin", namespace="ns")
    shown: list[str] = []
    clock = _Clock(result, shown.append)
    reader = _ProgressReader(None, "http://127.0.0.1:1", "admin", clock, result, threading.Condition())
    warning = "[Warning] 0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    for pct, stamp in ((30, "2026-11-25T20:58:03.740411Z"), (50, "2026-11-25T20:58:03.751788Z")):
        reader._handle({"progress": pct, "message": f"{stamp} {warning}"})
    reader._handle({"progress": 63, "message": "2026-11-25T20:58:03.764773Z [Normal] Successfully assigned"})
    reader._handle({"progress": 100, "ready": True, "message": "Server ready"})
    texts = [stage.text for stage in result.stages]
    assert texts == [f"hub progress 30%: {warning}", "hub progress 63%: [Normal] Successfully assigned",
                     "hub progress 100%: Server ready"]
    assert result.hub_said_ready and len(shown) == 3
