"""files/unlink_beneath.py, the one tool root uses inside the app user's tree (to remove what earlier
versions left in ~/bin), run as root against a home owned by another uid that has planted links:
it removes its own files and directory, and nothing a link points at."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from components import render
from tests.conftest import ROOT_NEEDED

OTHER_UID = 65534  # nobody: the app user here
NAMES = ("run.sh", "deploy.sh", "ci-command")


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    if os.geteuid() != 0:
        pytest.skip(ROOT_NEEDED)
    home = tmp_path / "home" / "blog"
    home.mkdir(parents=True)
    os.chown(home, OTHER_UID, OTHER_UID)
    victim = tmp_path / "etc"  # root's, with files of the same names
    victim.mkdir()
    for name in NAMES:
        (victim / name).write_text("root's own\n")
    return {"home": home, "victim": victim, "script": _script(tmp_path)}


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "unlink_beneath.py"
    path.write_text(render.unlink_beneath_py())
    return path


def _run(tree: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(tree["script"]), str(tree["home"]), "bin", *NAMES],
        capture_output=True,
        text=True,
        check=True,
    )


def _as_other(path: Path) -> None:
    os.lchown(path, OTHER_UID, OTHER_UID)


def _intact(victim: Path) -> bool:
    return all((victim / name).read_text() == "root's own\n" for name in NAMES)


def test_removes_roots_old_bin(tree) -> None:
    bin_dir = tree["home"] / "bin"
    bin_dir.mkdir()
    for name in NAMES:
        (bin_dir / name).write_text("old\n")
    result = _run(tree)
    assert not bin_dir.exists() and "removed" in result.stdout
    assert _intact(tree["victim"])


def test_a_bin_swapped_for_a_link_is_not_followed(tree) -> None:
    link = tree["home"] / "bin"
    link.symlink_to(tree["victim"])
    _as_other(link)
    result = _run(tree)
    assert _intact(tree["victim"]), "root removed files through the app user's link"
    assert link.is_symlink() and "left alone" in result.stdout


def test_a_bin_of_the_app_users_own_is_left_alone(tree) -> None:
    bin_dir = tree["home"] / "bin"
    bin_dir.mkdir()
    _as_other(bin_dir)
    (bin_dir / "run.sh").symlink_to(tree["victim"] / "run.sh")
    result = _run(tree)
    assert (bin_dir / "run.sh").is_symlink() and _intact(tree["victim"])
    assert "not root's" in result.stdout


def test_a_link_inside_is_unlinked_not_followed(tree) -> None:
    bin_dir = tree["home"] / "bin"
    bin_dir.mkdir()
    (bin_dir / "deploy.sh").symlink_to(tree["victim"] / "deploy.sh")
    _run(tree)
    assert not bin_dir.exists() and _intact(tree["victim"])


def test_a_home_that_is_a_link_is_left_alone(tree, tmp_path: Path) -> None:
    real = tree["home"]
    moved = tmp_path / "elsewhere"
    real.rename(moved)
    real.symlink_to(tree["victim"].parent)  # /home/blog -> a root tree holding bin/ (here: etc/)
    (tree["victim"].parent / "bin").symlink_to(tree["victim"])
    result = _run(tree)
    assert _intact(tree["victim"]) and "left alone" in result.stdout


def test_other_files_keep_the_directory(tree) -> None:
    bin_dir = tree["home"] / "bin"
    bin_dir.mkdir()
    (bin_dir / "run.sh").write_text("old\n")
    (bin_dir / "notes.txt").write_text("someone's\n")
    result = _run(tree)
    assert not (bin_dir / "run.sh").exists() and (bin_dir / "notes.txt").exists()
    assert "still holds notes.txt" in result.stdout


def test_nothing_there_is_fine(tree) -> None:
    assert _run(tree).stdout == ""
