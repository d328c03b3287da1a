"""One family of exceptions, each saying what went wrong and what to do.

Every error the package raises on purpose derives from :class:`TutorialError`
and carries two parts: ``problem`` (what failed, naming the object and the
namespace) and ``fix`` (the next thing a learner should try). Notebooks and
the CLI print both, so a learner never has to read a traceback to move on.

    >>> err = TutorialError("the hub Deployment is not available", fix="run notebook 06 first")
    >>> print(err)
    the hub Deployment is not available
      -> run notebook 06 first
"""

from __future__ import annotations


class TutorialError(Exception):
    """Base class: a problem the learner can act on."""

    #: exit code the CLI uses for this kind of problem (scripts can rely on it)
    exit_code = 1

    def __init__(self, problem: str, *, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)

    def __str__(self) -> str:
        if self.fix:
            return f"{self.problem}\n  -> {self.fix}"
        return self.problem


class LocalClusterError(TutorialError):
    """The local simulated cluster could not be built, started or stopped."""

    exit_code = 3


class ToolMissing(LocalClusterError):
    """A program the local cluster needs (go, kwokctl, ...) is not installed."""


class PortInUse(LocalClusterError):
    """A port the local cluster wants is taken by another process."""


class ClusterBusy(LocalClusterError):
    """Another ``jhtutorial cluster`` command holds the cluster's lock."""
