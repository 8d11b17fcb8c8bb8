"""The admin-keys step (a created server's): run in the sandbox, it writes the admin user's
authorized_keys as the admin user, atomically, and again only when adminSshKeys changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components import render
from tests.render.conftest import CI_PUBLIC_KEY, make_settings
from tests.render.sandbox import Sandbox

LOGIN_KEY = CI_PUBLIC_KEY.rsplit(" ", 1)[0]  # the provisioning key: "type base64", no comment
LAPTOP = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbVpbLGh1qYPgLiSDwP5H94ryIq3a9dQsVNIhDGfNgT me@laptop"
DESKTOP = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9e/NMrLh3YFYJJi+4WYGnzMc6j4gbiClPfBwHeD5dj desk"
KEYS = "/home/admin/.ssh/authorized_keys"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path / "sandbox")
    box.run("useradd --create-home --home-dir /home/admin admin")  # cloud-init's, at the first boot
    box.clear_calls()
    return box


def step(*keys: str) -> str:
    return render.admin_keys_step(make_settings(adminSshKeys=json.dumps(list(keys))), LOGIN_KEY)


def test_the_keys_are_the_provisioning_key_then_admin_ssh_keys_written_by_the_admin_user(sandbox: Sandbox) -> None:
    result = sandbox.run(step(LAPTOP))
    assert sandbox.files() == {KEYS: f"{render.ADMIN_KEYS_HEADER}{LOGIN_KEY}\n{LAPTOP}\n"}
    assert sandbox.meta(KEYS) == ("0600", "admin:admin")
    assert "the SSH keys of admin changed" in result.stdout
    # As the admin user, in its own tree: root neither writes nor chowns there.
    assert ["sudo", "-n", "-u", "admin", "-H", "--", "install", "-d", "-m", "0700", "/home/admin/.ssh"] in (
        sandbox.calls("sudo")
    )
    assert not [call for call in sandbox.calls("chown") if call[-1].startswith("/home/admin")]
    # Atomic: a temporary file made beside it (the sandbox's mktemp keeps it apart), renamed over it.
    assert sandbox.calls("mktemp") == [["mktemp", f"{KEYS}.XXXXXX"]]
    ((_, temporary, target),) = sandbox.calls("mv")
    assert target == KEYS and "/tmp/tmp." in temporary


def test_only_a_change_of_the_keys_writes_them_again(sandbox: Sandbox) -> None:
    sandbox.run(step(LAPTOP))
    sandbox.clear_calls()
    assert "changed" not in sandbox.run(step(LAPTOP)).stdout
    assert sandbox.calls("mv") == []
    for keys in ((LAPTOP, DESKTOP), (DESKTOP,), ()):  # added, removed, all gone but the stack's own
        sandbox.run(step(*keys))
        assert sandbox.files()[KEYS] == render.ADMIN_KEYS_HEADER + "".join(f"{k}\n" for k in (LOGIN_KEY, *keys))


def test_without_the_admin_user_the_step_fails_and_writes_nothing(tmp_path: Path) -> None:
    box = Sandbox(tmp_path / "bare")
    result = box.run(step(LAPTOP), check=False)
    assert result.returncode != 0 and "there is no user admin" in result.stderr
    assert box.files() == {}
