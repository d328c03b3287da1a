"""Classroom mode: one namespace, one set of credentials and a quota per learner, and where the room stands.

    $ jhtutorial classroom up --learners 20 --output handout/    # handout/learner-1.kubeconfig ... (mode 600)
    $ jhtutorial classroom status                                # one row per learner, one column per step
    $ jhtutorial classroom down                                  # the namespaces and the handout files, nothing else

``provision`` makes and removes the room, ``sizing`` derives its quota from the manifests, ``progress`` reads
where every learner is (with the steps' own checks) for the command and the instructor's live widget.
"""

from .progress import RoomStatus, RoomView, classroom_status
from .provision import (
    CLASSROOM_LABEL,
    DEFAULT_PREFIX,
    Classroom,
    Learner,
    classroom_down,
    classroom_up,
    parse_duration,
)

__all__ = [
    "CLASSROOM_LABEL",
    "DEFAULT_PREFIX",
    "Classroom",
    "Learner",
    "RoomStatus",
    "RoomView",
    "classroom_down",
    "classroom_status",
    "classroom_up",
    "parse_duration",
]
