"""The suite's own set-up: the scratch folder that holds the caches kept between sessions is
used only when it is this user's and private."""

from __future__ import annotations

import os
import stat
import tempfile

import conftest
import pytest


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(conftest.getpass, "getuser", lambda: "ada")
    return tmp_path


def test_the_scratch_folder_is_made_private_and_used_again(temp_root):
    first = conftest._scratch_dir()
    assert first == temp_root / "labrunner-tests-ada"
    assert stat.S_IMODE(first.stat().st_mode) & 0o077 == 0
    assert conftest._scratch_dir() == first


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_scratch_folder_others_can_write_is_not_used(temp_root, mode):
    shared = temp_root / "labrunner-tests-ada"
    shared.mkdir()
    shared.chmod(mode)
    chosen = conftest._scratch_dir()
    assert chosen != shared and chosen.parent == temp_root and chosen.name.startswith("labrunner-tests-ada-")
    assert stat.S_IMODE(chosen.stat().st_mode) & 0o077 == 0


def test_a_scratch_folder_that_is_a_link_is_not_used(temp_root):
    target = temp_root / "elsewhere"
    target.mkdir(mode=0o700)
    (temp_root / "labrunner-tests-ada").symlink_to(target)
    assert conftest._scratch_dir() not in (temp_root / "labrunner-tests-ada", target)


@pytest.mark.parametrize("link", [False, True])
def test_a_file_in_place_of_the_scratch_folder_is_left_alone(temp_root, link):
    placed = temp_root / "labrunner-tests-ada"
    if link:
        (temp_root / "a-file").write_text("theirs")
        placed.symlink_to(temp_root / "a-file")
    else:
        placed.write_text("theirs")
    chosen = conftest._scratch_dir()
    assert chosen.is_dir() and chosen.name.startswith("labrunner-tests-ada-")
    assert placed.read_text() == "theirs"


def test_a_scratch_folder_owned_by_another_user_is_not_used(temp_root, monkeypatch):
    theirs = temp_root / "labrunner-tests-ada"
    theirs.mkdir(mode=0o700)
    owner = theirs.stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)  # as seen by another user
    assert conftest._scratch_dir() != theirs
