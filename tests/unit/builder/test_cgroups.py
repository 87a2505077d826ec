"""Per-build process limits as cgroups, on a cgroup filesystem laid out in a folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.builder.cgroups import ProcessLimits


def test_v1_each_build_gets_its_own_pids_max_and_loses_it_after(tmp_path: Path) -> None:
    for controller in ("pids", "memory", "cpu"):
        (tmp_path / controller).mkdir()
    limits = ProcessLimits("spacedock-builds", root=tmp_path)
    assert limits.create("build-1", 321) == "/spacedock-builds/build-1"
    assert (tmp_path / "pids/spacedock-builds/build-1/pids.max").read_text() == "321"
    (tmp_path / "memory/spacedock-builds/build-1").mkdir(parents=True)  # what the engine makes
    (tmp_path / "pids/spacedock-builds/build-1/pids.max").unlink()  # cgroupfs files vanish
    limits.remove("build-1")
    assert not (tmp_path / "pids/spacedock-builds/build-1").exists()
    assert not (tmp_path / "memory/spacedock-builds/build-1").exists()


def test_v2_hands_the_pids_controller_down(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    folder = tmp_path / "spacedock-builds"
    folder.mkdir()
    (folder / "cgroup.subtree_control").write_text("")
    limits = ProcessLimits("spacedock-builds", root=tmp_path)
    assert limits.create("b", 64) == "/spacedock-builds/b"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+pids"
    assert (folder / "cgroup.subtree_control").read_text() == "+pids"
    assert (folder / "b/pids.max").read_text() == "64"


def test_without_a_cgroup_filesystem_there_is_no_cgroup(tmp_path: Path) -> None:
    assert ProcessLimits("spacedock-builds", root=tmp_path / "none").create("b", 64) is None


def test_names_that_are_not_plain_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    with pytest.raises(ValueError):
        ProcessLimits("../etc", root=tmp_path)
    assert ProcessLimits("ok", root=tmp_path).create("../escape", 64) is None
    assert not (tmp_path / "escape").exists()


def test_a_busy_cgroup_is_reported_so_it_can_be_removed_later(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    limits = ProcessLimits("p", root=tmp_path)
    assert limits.create("build-1", 64) is not None
    assert limits.remove("build-1") is False  # pids.max is still in it: busy
    (tmp_path / "pids/p/build-1/pids.max").unlink()
    assert limits.remove("build-1") is True


def test_the_sweep_removes_only_old_empty_build_cgroups(tmp_path: Path) -> None:

    for name in ("build-old", "build-new", "other"):
        (tmp_path / "pids/p" / name).mkdir(parents=True)
    os.utime(tmp_path / "pids/p/build-old", (0, 0))
    os.utime(tmp_path / "pids/p/other", (0, 0))
    ProcessLimits("p", root=tmp_path).sweep(older_than=3600)
    assert sorted(p.name for p in (tmp_path / "pids/p").iterdir()) == ["build-new", "other"]
