"""Where the local cluster keeps its binaries and its state.

Both live outside the project so that a fresh clone reuses what an earlier
run built. Each can be moved with an environment variable:

- ``JHTUTORIAL_CACHE``  built binaries, keyed by version (default ``~/.cache/jhtutorial``)
- ``JHTUTORIAL_STATE``  the running cluster: kwok's work dir, our kubeconfig, the lock
  (default ``~/.local/state/jhtutorial``)
- ``JHTUTORIAL_BIN_DIR`` a folder that already holds kube-apiserver,
  kube-controller-manager, kube-scheduler, kubectl, etcd, kwok and kwokctl: used
  as it is, nothing is built
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(variable: str, fallback: str) -> Path:
    base = os.environ.get(variable)
    return Path(base) if base else Path.home() / fallback


def cache_dir() -> Path:
    """Root of the build cache."""
    explicit = os.environ.get("JHTUTORIAL_CACHE")
    return Path(explicit) if explicit else _xdg("XDG_CACHE_HOME", ".cache") / "jhtutorial"


def state_dir() -> Path:
    """Root of the running cluster's state."""
    explicit = os.environ.get("JHTUTORIAL_STATE")
    return Path(explicit) if explicit else _xdg("XDG_STATE_HOME", ".local/state") / "jhtutorial"


def prebuilt_bin_dir() -> Path | None:
    """The user's own binaries, if ``JHTUTORIAL_BIN_DIR`` points at them."""
    explicit = os.environ.get("JHTUTORIAL_BIN_DIR")
    return Path(explicit).expanduser() if explicit else None
