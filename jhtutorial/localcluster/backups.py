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
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from ..errors import LocalClusterError
from .backing import user_namespace

KEEP = 3  # the newest archives kept; older ones are removed as new ones are made
VOLUMES = "volumes"  # where the volume folders sit inside an archive


def backups_dir(state_dir: Path) -> Path:
    return state_dir / "backups"


def keep_copy(state_dir: Path, cluster_dir: Path, volume_folders: list[Path]) -> Path:
    """Pack the cluster folder, its configuration and its volume folders; returns the archive."""
    if _in_user_namespace():
        return Path(_run_inside("keep", str(state_dir), str(cluster_dir), *map(str, volume_folders)))
    return _pack(state_dir, cluster_dir, volume_folders)


def restore(archive: Path, state_dir: Path, volumes_root: Path) -> None:
    """Unpack an archive made by `keep_copy` into the state folder it came from.

    Refuses members that would land outside their folder (absolute paths, ``..``, links out): an archive is
    a file anyone could hand over.
    """
    if _in_user_namespace():
        _run_inside("restore", str(archive), str(state_dir), str(volumes_root))
    else:
        _unpack(archive, state_dir, volumes_root)


def _pack(state_dir: Path, cluster_dir: Path, volume_folders: list[Path]) -> Path:
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


def _unpack(archive: Path, state_dir: Path, volumes_root: Path) -> None:
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


def _in_user_namespace() -> bool:
    """Whether packing goes through the owner's user namespace: an owner who is not root, who has one."""
    return user_namespace.needed() and not user_namespace.problems()


def _run_inside(*arguments: str) -> str:
    """This module's own command line, run as root of the owner's user namespace; what it printed."""
    result = subprocess.run(user_namespace.wrap([sys.executable, "-m", __name__, *arguments]),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise LocalClusterError(f"the cluster's copy could not be {'made' if arguments[0] == 'keep' else 'restored'}: "
                                f"{lines[-1] if lines else 'it failed'}",
                                fix="see the message; `jhtutorial cluster status` says whether sandboxes can be made")
    return result.stdout.strip()


def main(argv: list[str]) -> int:
    """``keep STATE CLUSTER [VOLUME...]`` prints the archive; ``restore ARCHIVE STATE VOLUMES_ROOT``."""
    command, *paths = argv
    if command == "keep":
        print(_pack(Path(paths[0]), Path(paths[1]), [Path(p) for p in paths[2:]]))
    elif command == "restore":
        _unpack(Path(paths[0]), Path(paths[1]), Path(paths[2]))
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
