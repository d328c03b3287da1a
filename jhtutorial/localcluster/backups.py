"""Copies of the local cluster, kept before anything deletes it.

A start-over (`jhtutorial cluster up --recreate`, or `cluster down`) deletes etcd's data, the certificates
every handed-out kubeconfig trusts, and the claims' volume folders. Each is first packed into one archive,
so a mistaken start-over can be undone:

    >>> archive = keep_copy(state_dir, cluster_dir, volume_folders)      # doctest: +SKIP
    >>> archive.name                                                      # doctest: +SKIP
    'jhtutorial-20261207T081500.tar.gz'
    $ jhtutorial cluster restore ~/.local/state/jhtutorial/backups/jhtutorial-20261207T081500.tar.gz

The archive holds the whole cluster folder (etcd's data, pki, kwokctl's record of the components) but its
links to the built programs (a restore links the ones built now), the configuration `up` wrote, and the
volume folders. Components keep absolute paths, so an archive is restored into the state folder it came
from. It holds private keys and tokens: the folder is 0700, each archive 0600. Restoring one means running
the programs its record names, so restore only archives this machine made.
"""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

from ..errors import LocalClusterError

KEEP = 3  # the newest archives kept; older ones are removed as new ones are made
VOLUMES = "volumes"  # where the volume folders sit inside an archive


def backups_dir(state_dir: Path) -> Path:
    return state_dir / "backups"


def keep_copy(state_dir: Path, cluster_dir: Path, volume_folders: list[Path]) -> Path:
    """Pack the cluster folder, its configuration and its volume folders; returns the archive."""
    folder = backups_dir(state_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    archive = folder / f"{cluster_dir.name}-{stamp}.tar.gz"
    counter = 1
    while archive.exists():  # two start-overs within one second
        archive = folder / f"{cluster_dir.name}-{stamp}-{counter}.tar.gz"
        counter += 1
    partial = archive.with_name(archive.name + ".partial")
    # created 0600 from the start: it holds the cluster's private keys
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # level 1: etcd preallocates its write-ahead log as 64 MiB of zeros, which any level squeezes
        with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar:
            # bin/ holds links into the build cache: a restore makes them anew
            tar.add(cluster_dir, arcname=str(cluster_dir.relative_to(state_dir)),
                    filter=lambda member: None if "/bin/" in f"/{member.name}/" else member)
            config = state_dir / "kwokctl.yaml"
            if config.exists():
                tar.add(config, arcname=config.name)
            for volume in volume_folders:
                if volume.is_dir():
                    tar.add(volume, arcname=f"{VOLUMES}/{volume.name}")
        os.replace(partial, archive)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    for old in sorted(folder.glob(f"{cluster_dir.name}-*.tar.gz"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
        old.unlink(missing_ok=True)
    return archive


def restore(archive: Path, state_dir: Path, volumes_root: Path) -> None:
    """Unpack an archive made by `keep_copy` into the state folder it came from.

    Refuses members that would land outside their folder (absolute paths, ``..``, links out): an archive is
    a file anyone could hand over.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            cluster_members = [m for m in members if not m.name.startswith(f"{VOLUMES}/")]
            volume_members = [m for m in members if m.name.startswith(f"{VOLUMES}/")]
            tar.extractall(state_dir, members=cluster_members, filter="data")
            for member in volume_members:
                member.name = member.name[len(VOLUMES) + 1:]
            volumes_root.mkdir(parents=True, exist_ok=True)
            tar.extractall(volumes_root, members=volume_members, filter="data")
    except (OSError, tarfile.TarError) as err:
        raise LocalClusterError(f"cannot restore {archive}: {err}",
                                fix="name an archive that `jhtutorial cluster up --recreate` or "
                                "`jhtutorial cluster down` made (they say where)") from None
