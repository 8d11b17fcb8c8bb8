"""cloud-init user data: a #cloud-config YAML document whose host key comes back exactly as given
(so the pinned key is the one the server offers), that makes the admin user (sudo without a
password, the given keys) and keeps root from logging in, and valid for cloud-init's own schema
check when cloud-init is installed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from components import render
from tests.render.conftest import ed25519_keypair, find_tool


@pytest.fixture
def user_data() -> tuple[str, str, list[str], str]:
    private, public = ed25519_keypair()
    admins = [ed25519_keypair()[1] + " me@laptop", ed25519_keypair()[1] + " ci"]
    return private, public, admins, render.cloud_init(private, public + "\n", admins, "admin")


def test_cloud_config_round_trips_the_host_key(user_data) -> None:
    private, public, _, text = user_data
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert data["ssh_keys"]["ed25519_private"] == private
    assert data["ssh_keys"]["ed25519_public"] == public
    # The installed private key is the pair of the pinned public key.
    key = load_ssh_private_key(data["ssh_keys"]["ed25519_private"].encode(), password=None)
    derived = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert derived.decode() == public
    assert data["ssh_deletekeys"] is True and data["ssh_genkeytypes"] == []
    assert data["ssh_pwauth"] is False


def test_the_admin_user_gets_sudo_and_the_keys_and_root_stays_out(user_data) -> None:
    _, _, admins, text = user_data
    data = yaml.safe_load(text)
    (admin,) = data["users"]  # only this user: no `default` entry, no root entry
    assert admin == {
        "name": "admin",
        "gecos": "django-vps administrator",
        "shell": "/bin/bash",
        "groups": ["sudo"],
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "lock_passwd": True,
        "ssh_authorized_keys": admins,
    }
    assert data["disable_root"] is True
    assert data["ssh_pwauth"] is False


def test_another_admin_user_name() -> None:
    private, public = ed25519_keypair()
    data = yaml.safe_load(render.cloud_init(private, public, [public], "ops"))
    assert [user["name"] for user in data["users"]] == ["ops"]
    assert data["users"][0]["ssh_authorized_keys"] == [public]


def test_key_without_trailing_newline_round_trips(user_data) -> None:
    private, public, admins, _ = user_data
    data = yaml.safe_load(render.cloud_init(private.rstrip("\n"), public, admins, "admin"))
    assert data["ssh_keys"]["ed25519_private"] == private


def test_cloud_init_schema(user_data, tmp_path: Path) -> None:
    cloud_init = find_tool("cloud-init")
    if cloud_init is None:
        pytest.skip("cloud-init is not installed (apt-get install -y cloud-init; not wanted on a development machine)")
    path = tmp_path / "user-data"
    path.write_text(user_data[3])
    result = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
