"""dataVolume: the Hetzner Volume that holds the app's data, as the program declares it (mocks): the
volume before the server whose cloud-init names its device, the attachment after it, the volume
step before every step that writes data, retainOnDelete and Hetzner's delete protection, the import
of a kept volume, and the changes refused before anything is declared. What the engine and the
provider do with it (destroy keeps it, a new stack serves the same rows) is tests/e2e/test_data_volume.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.server import CurrentServer, CurrentVolume, plan_volume
from components.settings import DataVolume, HetznerServer, SettingError
from tests.unit.conftest import StackRun, unwrap

VOLUME = "hcloud:index/volume:Volume"
ATTACHMENT = "hcloud:index/volumeAttachment:VolumeAttachment"
SERVER = "hcloud:index/server:Server"
LABELS = {"managed-by": "django-vps", "app": "blog", "stack": "prod"}
NAME = "blog-prod-fsn1-debian-12"


def on_hetzner(**changed: Any) -> dict[str, Any]:
    """The prod example's server as getServers lists it, made with a data volume."""
    return {"id": 4711, "name": NAME, "location": "fsn1", "image": "debian-12", "serverType": "cx23",
            "primaryDiskSize": 40, "labels": {**LABELS, "data-volume": "yes"}, **changed}  # fmt: skip


def volume_on_hetzner(**changed: Any) -> dict[str, Any]:
    return {"id": 777, "name": "blog-prod-data", "location": "fsn1", "size": 10, "serverId": 4711,
            "labels": LABELS, "linuxDevice": "/dev/disk/by-id/scsi-0HC_Volume_777", "deleteProtection": True,
            **changed}  # fmt: skip


def one(run: StackRun, typ: str) -> Any:
    (found,) = run.mocks.of_type(typ)
    return found


def steps(run: StackRun) -> dict[str, Any]:
    return {r.name.removeprefix("blog-host-"): r for r in run.mocks.commands()}


def script(step: Any) -> str:
    return unwrap(step.inputs["create"])


def test_a_new_volume_is_made_kept_and_mounted_before_any_data_is_written(run_stack) -> None:
    run = run_stack(dataVolume="10")
    volume, attachment, server = one(run, VOLUME), one(run, ATTACHMENT), one(run, SERVER)
    assert {k: volume.inputs[k] for k in ("name", "size", "location", "format", "deleteProtection", "automount")} == {
        "name": "blog-prod-data", "size": 10, "location": "fsn1", "format": "ext4", "deleteProtection": True,
        "automount": False,
    }  # fmt: skip
    assert volume.inputs["labels"] == LABELS and "serverId" not in volume.inputs
    # Kept by pulumi destroy: the engine forgets it, and Hetzner refuses to delete it.
    assert volume.registration.retain_on_delete is True and volume.registration.import_id == ""
    # The server is made after the volume (its cloud-init names the device) and says it has one.
    assert volume.urn in server.dependencies
    assert server.inputs["labels"] == {**LABELS, "data-volume": "yes"}
    user_data = yaml.safe_load(unwrap(server.inputs["userData"]))
    device = f"/dev/disk/by-id/scsi-0HC_Volume_{volume.id}"
    assert user_data["mounts"] == [[device, "/srv/django-vps-data", "ext4", "defaults,nofail,discard", "0", "2"]]
    # Attached after the server exists; a replacement lets the old server go first (one at a time).
    assert {volume.urn, server.urn} <= attachment.dependencies
    assert attachment.registration.delete_before_replace is True
    assert attachment.inputs["automount"] is False
    # The volume step waits for the attachment (and the volume's resize); everything else waits for it.
    by_role = steps(run)
    volume_step = by_role["volume"]
    assert {volume.urn, attachment.urn} <= volume_step.dependencies
    assert f"device={device}" in script(volume_step) and "size_gb=10" in script(volume_step)
    assert "mkfs" not in script(volume_step)
    assert volume_step.urn in by_role["packages"].dependencies
    # The app's shared data is on the volume: the database, media, backups, the .env.
    env = unwrap(by_role["env"].inputs["stdin"])
    assert "DATABASE_URL=sqlite:////srv/django-vps-data/blog/shared/db.sqlite3" in env
    assert "/srv/django-vps-data/blog/shared/media" in script(by_role["clone"])
    assert "data_dir=/srv/django-vps-data/blog" in script(by_role["app-user"])
    # One line says where it is and how to reuse or delete it.
    line = unwrap(run.exports["dataVolume"])
    assert f"(id {volume.id}, fsn1, 10 GB) at /srv/django-vps-data: pulumi destroy keeps it" in line
    assert f"dataVolumeId {volume.id}" in line and f"hcloud volume delete {volume.id}" in line
    assert "\n" not in line


def test_without_a_volume_nothing_of_it_is_declared_nor_asked(run_stack) -> None:
    run = run_stack()
    assert not run.mocks.of_type(VOLUME) and not run.mocks.of_type(ATTACHMENT)
    assert "volume" not in steps(run) and "dataVolume" not in run.exports
    assert "mounts" not in yaml.safe_load(unwrap(one(run, SERVER).inputs["userData"]))
    assert [c.token for c in run.mocks.calls] == ["hcloud:index/getServers:getServers"]


def test_the_declared_default_of_keep_passed_as_if_set_is_no_mistake(run_stack) -> None:
    """The real CLI gives the program every declared default, as set values (found by CI: every stack
    without a volume was refused); only dataVolumeKeep false without a volume is refused."""
    run = run_stack(dataVolumeKeep="true")
    assert not run.mocks.of_type(VOLUME)


def test_keep_false_lets_destroy_delete_it_and_says_so(run_stack) -> None:
    run = run_stack(dataVolume="10", dataVolumeKeep="false")
    volume = one(run, VOLUME)
    assert volume.inputs["deleteProtection"] is False and volume.registration.retain_on_delete is False
    assert "pulumi destroy deletes it with the data" in unwrap(run.exports["dataVolume"])


def test_a_kept_volume_is_imported_as_it_is_and_relabelled(run_stack) -> None:
    kept = volume_on_hetzner(serverId=None, labels={**LABELS, "stack": "old"}, size=20)
    run = run_stack(stack="new", dataVolumeId="777", hetzner_volumes=(kept,))
    volume = one(run, VOLUME)
    assert volume.registration.import_id == "777"
    assert (volume.inputs["name"], volume.inputs["size"]) == ("blog-prod-data", 20)  # its own name and size
    assert "format" not in volume.inputs  # never formatted again
    assert volume.inputs["labels"] == {**LABELS, "stack": "new"}
    assert "scsi-0HC_Volume_777" in unwrap(one(run, SERVER).inputs["userData"])
    # A larger size grows it in the same run.
    assert (
        one(run_stack(stack="new", dataVolume="50", dataVolumeId="777", hetzner_volumes=(kept,)), VOLUME).inputs["size"]
        == 50
    )


def test_growing_is_in_place_and_reruns_the_volume_step(run_stack) -> None:
    small = run_stack(dataVolume="10", hetzner_servers=(on_hetzner(),), hetzner_volumes=(volume_on_hetzner(),))
    large = run_stack(dataVolume="20", hetzner_servers=(on_hetzner(),), hetzner_volumes=(volume_on_hetzner(),))
    assert one(large, VOLUME).inputs["size"] == 20
    assert "size_gb=20" in script(steps(large)["volume"]) != script(steps(small)["volume"])
    # The same server, nothing that could replace it.
    assert set(one(large, SERVER).registration.ignore_changes) == {"userData", "sshKeys", "location", "image"}


@pytest.mark.parametrize(
    ("overrides", "servers", "volumes", "key", "says"),
    [
        ({"dataVolume": "5"}, (), (), "dataVolume", "10 to 10240"),
        ({"dataVolume": "10"}, (on_hetzner(),), (volume_on_hetzner(size=20),), "dataVolume", "would shrink"),
        ({"dataVolume": "0"}, (on_hetzner(),), (volume_on_hetzner(),), "dataVolume", "keeps the site's data"),
        (
            {"dataVolume": "10"},
            (on_hetzner(labels=LABELS),),
            (),
            "dataVolume",
            "was made without a data volume",
        ),
        (
            {"dataVolume": "10", "location": "nbg1", "replaceServer": "true"},
            (on_hetzner(),),
            (volume_on_hetzner(),),
            "location",
            "is in fsn1",
        ),
        (
            {"dataVolumeId": "777", "location": "nbg1"},
            (),
            (volume_on_hetzner(serverId=None),),
            "location",
            "keep location fsn1",
        ),
        ({"dataVolumeId": "777"}, (), (volume_on_hetzner(serverId=99),), "dataVolumeId", "attached to server 99"),
        (
            {"dataVolume": "10", "dataVolumeId": "778"},
            (on_hetzner(),),
            (volume_on_hetzner(), volume_on_hetzner(id=778, name="other", serverId=None, labels={})),
            "dataVolumeId",
            "set dataVolumeId 777",
        ),
    ],
)
def test_what_the_data_cannot_take_is_refused_before_anything_is_declared(
    run_stack, overrides: dict[str, str], servers: tuple, volumes: tuple, key: str, says: str
) -> None:
    with pytest.raises(Exception) as caught:
        run_stack(hetzner_servers=servers, hetzner_volumes=volumes, **overrides)
    message = str(caught.value)
    assert f"django-vps:{key}: " in message and says in message, message
    assert "\n" not in message.strip()


# The decision as a plain function.


def spec(**changed: Any) -> HetznerServer:
    fields = {"server_type": "cx23", "image": "debian-12", "location": "fsn1", "backups": False,
              "admin_ssh_keys": (), "data_volume": DataVolume(10), **changed}  # fmt: skip
    return HetznerServer(**fields)


def test_a_confirmed_replacement_of_the_image_keeps_the_volume() -> None:
    current = CurrentServer(4711, NAME, "fsn1", "debian-12", "cx23", 40, has_data_volume=True)
    volume = CurrentVolume(777, "blog-prod-data", "fsn1", 10, 4711)
    plan = plan_volume(current, spec(image="debian-13", replace_server=True), "blog-prod", True, [volume], None)
    assert plan is not None and (plan.name, plan.size_gb, plan.import_id) == ("blog-prod-data", 10, None)
    # The same volume, kept by another stack's server: refused while it is attached there.
    with pytest.raises(SettingError, match="attached to server 4711"):
        plan_volume(None, spec(data_volume=DataVolume(0, 777)), "blog-new", False, [], volume)
