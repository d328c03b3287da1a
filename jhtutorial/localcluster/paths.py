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

# where kube-controller-manager's hostPath provisioner makes each PersistentVolume's folder (its own constant)
HOSTPATH_ROOT = Path("/tmp/hostpath_pv")


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


def private_dir(path: Path) -> Path:
    """Make ``path`` (and any missing parent) a folder only its owner may enter: 0700 from the start.

    The state folders hold the cluster's keys, kubeconfigs and the pods' Secret files. A folder made
    with the default mode and narrowed later would be open to other accounts in between."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)  # the umask may only narrow this
        except FileExistsError:
            pass  # made meanwhile by another process: narrowed below like any existing folder
    if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        path.chmod(0o700)  # one made by an earlier version, with the default mode
    return path
