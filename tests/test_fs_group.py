"""A pod's fsGroup is applied to its volume by root (of the machine, or of the owner's user namespace) while
other pods of the same claim may be writing it: no name in the volume may lead that root to a file outside.

Real folders in a throw-away tree; the pod swapping a folder for a link is a thread doing what a pod's
process can do in its own volume (rename, symlink), timed by what it sees: the volume's top folder taking
the new group, which happens after the walk has listed the tree and before it reaches what lies below.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from jhtutorial.localcluster.backing.mounts import apply_fs_group

GROUP = 4242  # a group no file of the test's tree has


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file of the machine that no volume holds: private to its owner."""
    folder = tmp_path / "machine"
    folder.mkdir()
    secret = folder / "secret"
    secret.write_text("the owner's own")
    secret.chmod(0o600)
    return secret


def _unchanged(secret: Path, before: os.stat_result) -> None:
    after = secret.stat()
    assert (after.st_gid, stat.S_IMODE(after.st_mode)) == (before.st_gid, stat.S_IMODE(before.st_mode)), \
        f"{secret} was changed through the volume: group {after.st_gid}, mode {stat.S_IMODE(after.st_mode):o}"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to any group takes root")
def test_a_link_in_the_volume_is_not_followed(tmp_path: Path, outside: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "data").write_text("the pod's")
    (volume / "link").symlink_to(outside)
    (volume / "folder-link").symlink_to(outside.parent)
    before = outside.stat()
    apply_fs_group(volume, GROUP)
    _unchanged(outside, before)
    assert (volume / "data").stat().st_gid == GROUP and (volume / "data").stat().st_mode & 0o060 == 0o060


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to any group takes root")
def test_a_folder_swapped_for_a_link_while_the_group_is_applied_leads_nowhere(tmp_path: Path, outside: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    for number in range(3000):  # what the walk does first, while the pod swaps the folder below
        (volume / f"file-{number}").touch()
    below = volume / "sub"
    below.mkdir()
    (below / outside.name).write_text("the pod's, with the name of the machine's file")
    before = outside.stat()
    swapped = threading.Event()

    def pod() -> None:
        while volume.stat().st_gid != GROUP:  # the walk has begun: the tree is listed
            pass
        below.rename(volume / "sub.old")
        below.symlink_to(outside.parent)
        swapped.set()

    swapper = threading.Thread(target=pod, daemon=True)
    swapper.start()
    apply_fs_group(volume, GROUP)
    swapper.join(timeout=10)
    assert swapped.is_set(), "the folder was not swapped during the walk"
    _unchanged(outside, before)
