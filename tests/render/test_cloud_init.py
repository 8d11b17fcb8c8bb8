"""cloud-init user data: a #cloud-config YAML document whose host key comes back exactly as given
(so the pinned key is the one the server offers), that makes the admin user (sudo without a
password, the given keys) and keeps root from logging in, and valid for cloud-init's own schema
check (`cloud-init schema`, Debian 12's cloud-init, which tests/run installs without letting it run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from components import render
from tests.render.conftest import ed25519_keypair, require_tool


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
    assert data["ssh_deletekeys"] is True and "ssh_genkeytypes" not in data
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


def _schema_check(text: str, directory: Path) -> subprocess.CompletedProcess:
    """cloud-init's own check of a user-data document against its schema (exit 0: valid)."""
    path = directory / "user-data"
    path.write_text(text)
    return subprocess.run(
        [require_tool("cloud-init"), "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )


def test_cloud_init_schema(user_data, tmp_path: Path) -> None:
    # This check found `ssh_genkeytypes: []` in the template, which the schema rejects (minItems 1).
    result = _schema_check(user_data[3], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


@pytest.mark.parametrize(
    ("change", "error"),
    [
        # What a template slip would produce: a setting of the wrong type, a user entry broken.
        (("ssh_pwauth: false", "ssh_pwauth: 3"), "ssh_pwauth: 3 is not valid"),
        (("lock_passwd: true", "lock_passwd: [true]"), "users.0: "),
    ],
    ids=["ssh_pwauth-not-a-boolean", "user-entry-invalid"],
)
def test_cloud_init_schema_rejects_a_broken_user_data(user_data, tmp_path: Path, change, error) -> None:
    """Control: the schema check above can fail. The rendered document is
    valid, and the same document with one value broken is rejected, naming that value."""
    old, new = change
    text = user_data[3]
    assert _schema_check(text, tmp_path).returncode == 0
    assert text.count(old) == 1
    result = _schema_check(text.replace(old, new), tmp_path)
    assert result.returncode != 0
    (errors,) = [line for line in result.stderr.splitlines() if line.startswith("Cloud config schema errors: ")]
    assert error in errors, result.stderr


def test_a_data_volume_is_mounted_by_its_stable_name_and_never_formatted(tmp_path: Path) -> None:
    """dataVolume: cloud-init's mounts module writes the fstab entry of the volume's by-id device (nofail:
    a server without it still boots) and mounts it at the data mount point; no fs_setup, so nothing
    ever formats it; and cloud-init's own schema takes the document."""
    private, public = ed25519_keypair()
    device = "/dev/disk/by-id/scsi-0HC_Volume_4711"
    text = render.cloud_init(private, public, [public], "admin", data_device=device)
    data = yaml.safe_load(text)
    assert data["mounts"] == [[device, "/srv/django-vps-data", "ext4", "defaults,nofail,discard", "0", "2"]]
    assert not {"fs_setup", "disk_setup"} & set(data)
    result = _schema_check(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # Without a volume the document has no mounts at all.
    assert "mounts" not in yaml.safe_load(render.cloud_init(private, public, [public], "admin"))


@pytest.mark.parametrize(
    "device", ["/dev/sda", "/dev/disk/by-id/scsi-0HC_Volume_1 /", "/dev/disk/by-id/scsi-0HC_Volume_", "x\nmounts: []"]
)
def test_only_a_hetzner_volume_device_is_written(device: str) -> None:
    private, public = ed25519_keypair()
    with pytest.raises(ValueError, match="is not a Hetzner Volume's device"):
        render.cloud_init(private, public, [public], "admin", data_device=device)
