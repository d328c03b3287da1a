"""The local cluster's `down` removes the folders behind its PersistentVolumes, and nothing outside them.

A PV's hostPath is text the API server stores: anyone who may create PVs can put ``..`` or a symlink in it.
The check runs on real folders in a throw-away tree, then the same function deletes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jhtutorial.errors import LocalClusterError
from jhtutorial.localcluster.cluster import remove_volume_folders, share_volume_root


def test_only_folders_really_under_the_volume_root_are_deleted(tmp_path: Path) -> None:
    root = tmp_path / "hostpath_pv"
    volume = root / "pvc-1234"
    volume.mkdir(parents=True)
    (volume / "hub.sqlite").write_text("a volume's data")
    victim = tmp_path / "home-of-someone"
    victim.mkdir()
    (victim / "thesis.tex").write_text("not the cluster's")
    (root / "pvc-link").symlink_to(victim)  # a folder name under the root that leads out of it

    escapes = [f"{root}/../home-of-someone", f"{root}/pvc-link", f"{volume}/../..", str(root), f"{root}/.",
               "relative/path", ""]
    # the textual check these paths once passed: each "is relative to" the root before resolving
    assert Path(f"{root}/../home-of-someone").is_relative_to(root)
    removed = remove_volume_folders([str(volume), *escapes], root)

    assert removed == [volume]
    assert not volume.exists()
    assert (victim / "thesis.tex").read_text() == "not the cluster's"
    assert root.is_dir() and (root / "pvc-link").is_symlink()  # the root itself stays; the link is not followed


def test_a_volume_root_that_is_itself_a_symlink_is_resolved_too(tmp_path: Path) -> None:
    real_root = tmp_path / "real"
    (real_root / "pvc-9").mkdir(parents=True)
    root = tmp_path / "hostpath_pv"
    root.symlink_to(real_root)
    assert remove_volume_folders([f"{root}/pvc-9", f"{root}/../real"], root) == [real_root / "pvc-9"]
    assert not (real_root / "pvc-9").exists() and real_root.is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="a folder of another account is made by root")
def test_a_volume_root_of_another_account_is_refused(tmp_path: Path) -> None:
    """Its owner may rename anything in it (sticky or not): a volume folder swapped for its own, or a link."""
    tmp_path.chmod(0o755)
    root = tmp_path / "hostpath_pv"
    root.mkdir(mode=0o1777)
    os.chown(root, 65534, 65534)
    with pytest.raises(LocalClusterError, match="uid 65534"):
        share_volume_root(root)
    link = tmp_path / "linked"
    os.symlink(tmp_path, link)
    os.lchown(link, 65534, 65534)
    with pytest.raises(LocalClusterError, match="a link of another account"):
        share_volume_root(link)


@pytest.mark.skipif(os.geteuid() != 0, reason="a folder of root's, as it is after `make system-deps`")
def test_a_volume_root_of_roots_is_shared_like_tmp(tmp_path: Path) -> None:
    root = tmp_path / "hostpath_pv"
    share_volume_root(root)
    assert stat.S_IMODE(root.lstat().st_mode) == 0o1777 and root.lstat().st_uid == 0
