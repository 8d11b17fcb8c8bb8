"""dataVolume on the real Pulumi CLI.

First the program's Server component against the Hetzner stand-in alone (nothing boots, so each
run takes seconds): the volume is made before the server (formatted ext4 once, delete-protected),
attached after it; a larger size is an in-place resize of the same volume; a smaller one is refused
before anything changes; `pulumi destroy` keeps the volume (retainOnDelete: the engine never calls
the provider's delete, and Hetzner would refuse it anyway); a new stack with dataVolumeId imports it
and attaches it to its own server; with dataVolumeKeep false the next destroy deletes it.

Then the whole program in the lab, where the stand-in attaches a volume as a loop device at
Hetzner's device path (testhost/volumes.py): the site's SQLite database and uploads are written on
the mounted volume; the stack is destroyed (the volume stays, `destroy` names it in one line); a new
stack with dataVolumeId on a new server serves the same rows and the same upload.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi import automation as auto

from tests.e2e.cli import CliStack, workspace_options
from tests.e2e.site import APP, DOMAIN, Deployed, deploy_site
from tests.e2e.test_hetzner_settings import Inline, error_line, writes
from tests.e2e.testhost import Lab
from tests.e2e.testhost.hetzner_api import HetznerAPI, NoMachines

pytestmark = pytest.mark.e2e

TOKEN = "0123456789abcdef" * 4
MOUNT = "/srv/django-vps-data"


def volume_stack(directory: Path, api: HetznerAPI, stack: str, want: dict[str, Any]) -> Inline:
    """A file-backend stack running the program's Server component inline, with a data volume."""
    from components.server import Server, ServerArgs
    from components.settings import DataVolume, HetznerServer, hetzner_labels

    def program() -> None:
        labels = hetzner_labels("blog", pulumi.get_stack())
        volume = DataVolume(want["dataVolume"], want.get("dataVolumeId", 0), want.get("dataVolumeKeep", True))
        spec = HetznerServer("cx23", "debian-12", "fsn1", False, (), data_volume=volume)
        server = Server("site-server", ServerArgs(hetzner=spec, existing=None, name_prefix=f"blog-{stack}",
                                                  labels=labels))  # fmt: skip
        pulumi.export("ipv4", server.ipv4)

    opts = workspace_options(directory)
    created = auto.create_or_select_stack(stack, "data-volume", program, opts=opts)
    created.set_config("hcloud:token", auto.ConfigValue(TOKEN, secret=True))
    created.set_config("hcloud:endpoint", auto.ConfigValue(api.url))
    return Inline(created)


@pytest.fixture
def api() -> Iterator[HetznerAPI]:
    with HetznerAPI() as api:
        yield api
    assert api.unknown == [], f"requests the stand-in does not know: {api.unknown}"


def test_the_volume_outlives_the_stack_on_the_real_engine(api: HetznerAPI, tmp_path: Path) -> None:
    cloud = api.cloud
    assert isinstance(cloud.machines, NoMachines)
    want: dict[str, Any] = {"dataVolume": 10}
    first = volume_stack(tmp_path / "first", api, "first", want)
    created = first.up()
    (volume,) = cloud.volumes.values()
    (server,) = cloud.servers.values()
    assert (volume["name"], volume["size"], volume["location"], volume["format"]) == ("blog-first-data", 10, "fsn1",
                                                                                      "ext4")  # fmt: skip
    assert volume["protection"]["delete"] is True and volume["server"] == server["id"]
    assert volume["labels"] == {"managed-by": "django-vps", "app": "blog", "stack": "first"}
    # The volume first (the server's cloud-init names its device), attached once the server exists.
    order = [w for w in writes(api, 0) if w in ("POST /v1/volumes", "POST /v1/servers")]
    assert order == ["POST /v1/volumes", "POST /v1/servers"], order
    mounts = yaml.safe_load(server["user_data"])["mounts"]
    assert [entry[:3] for entry in mounts] == [[f"/dev/disk/by-id/scsi-0HC_Volume_{volume['id']}", MOUNT, "ext4"]]
    assert created.ops["site-server-data-volume-attachment"] == ["create"]

    # Larger: the same volume, resized in place; the server and the attachment untouched.
    want["dataVolume"] = 20
    since = len(api.requests)
    grown = first.up()
    assert volume["size"] == 20 and cloud.volumes == {volume["id"]: volume}
    assert writes(api, since) == [f"POST /v1/volumes/{volume['id']}/actions/resize"]
    assert grown.changed() == {"site-server-data-volume": ["update"]}, grown.changed()

    # Smaller: refused in one line, before anything changes.
    want["dataVolume"] = 10
    since = len(api.requests)
    message = error_line(first.refused(), "dataVolume")
    assert "10 GB would shrink the data volume blog-first-data (20 GB), which Hetzner cannot do" in message
    assert writes(api, since) == []
    want["dataVolume"] = 20

    # destroy: the server goes, the volume stays (detached, still protected) and is forgotten.
    destroyed = first._run(first.stack.destroy)
    assert cloud.servers == {} and list(cloud.volumes) == [volume["id"]]
    assert volume["server"] is None and volume["protection"]["delete"] is True
    assert f"DELETE /v1/volumes/{volume['id']}" not in writes(api, 0)
    assert destroyed.ops["site-server-data-volume"] == ["delete"]  # the engine's step: no provider call

    # A new stack takes the kept volume back: imported, relabelled, attached to its own server.
    again: dict[str, Any] = {"dataVolume": 0, "dataVolumeId": volume["id"], "dataVolumeKeep": False}
    second = volume_stack(tmp_path / "second", api, "second", again)
    taken = second.up()
    (new_server,) = cloud.servers.values()
    assert taken.ops["site-server-data-volume"][0] == "import", taken.ops
    assert volume["server"] == new_server["id"] and volume["size"] == 20 and volume["name"] == "blog-first-data"
    assert volume["labels"]["stack"] == "second" and volume["protection"]["delete"] is False
    assert f"scsi-0HC_Volume_{volume['id']}" in new_server["user_data"]
    # An empty second run: the import is done, nothing changes.
    assert second.up().changed() == {}
    # dataVolumeKeep false: this destroy deletes it.
    second._run(second.stack.destroy)
    assert cloud.volumes == {} and cloud.servers == {}


# --- the whole program in the lab -----------------------------------------------------------------

ROW = "a row that lives on the data volume"
UPLOAD = "an upload that lives on the data volume\n"


@dataclass
class VolumeSite:
    site: Deployed
    volume_id: int


def _curl(site: Deployed, ip: str, path: str, *extra: str) -> str:
    argv = ["curl", "-sS", "--fail-with-body", "--cacert", site.cafile, "--resolve", f"{DOMAIN}:443:{ip}", *extra]
    result = subprocess.run([*argv, f"https://{DOMAIN}{path}"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def volume_site(
    request: pytest.FixtureRequest, lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VolumeSite]:
    database = request.param
    site = deploy_site(
        lab,
        tmp_path_factory.mktemp("ca") / "root.pem",
        repo=f"blog-{database}",
        fixture="postgres-uv",
        dataVolume="10",
        deployWorkflow="false",
        database=database,
    )
    try:
        (volume,) = site.hetzner.cloud.volumes.values()
        yield VolumeSite(site, volume["id"])
    finally:
        site.hetzner.stop()
        site.github.stop()


def test_the_data_is_written_on_the_mounted_volume(volume_site: VolumeSite) -> None:
    site = volume_site.site
    device = f"/dev/disk/by-id/scsi-0HC_Volume_{volume_site.volume_id}"
    mounted = site.server.run(f"findmnt -n -o SOURCE,FSTYPE --mountpoint {MOUNT}", check=True).stdout.split()
    assert mounted[1] == "ext4" and site.server.run(f"readlink -f {device}", check=True).stdout.strip() == mounted[0]
    fstab = site.server.run("cat /etc/fstab", check=True).stdout
    # cloud-init's line (it adds comment=cloudconfig), or the volume step's: the same fields.
    (entry,) = [line.split() for line in fstab.splitlines() if line.split()[:2] == [device, MOUNT]]
    assert entry[2] == "ext4" and entry[3].startswith("defaults,nofail,discard") and entry[4:] == ["0", "2"], fstab
    print("\nvolume step:", _step_stdout(site.stack, "volume").strip())
    assert _curl(site, site.ip, "/rows/", "--data-urlencode", f"text={ROW}") == "rows 1"
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write(UPLOAD)
        file.flush()
        _curl(site, site.ip, "/upload/", "-F", f"file=@{file.name};filename=kept.txt")
    shared = f"{MOUNT}/{APP}/shared"
    # On the volume's filesystem, not the server's own disk: the database (SQLite's file, or
    # PostgreSQL's cluster through its bind mount) and the upload.
    database = f"{shared}/db.sqlite3" if site.settings.database == "sqlite" else "/var/lib/postgresql/*/main/PG_VERSION"
    on = site.server.run(f"stat -c %d {database} {shared}/media/uploads/kept.txt {MOUNT}", check=True)
    assert len(set(on.stdout.split())) == 1, on.stdout
    assert site.server.run(f"stat -c %d /home/{APP}", check=True).stdout != on.stdout.split()[0] + "\n"
    assert site.server.run(f"stat -c %U {MOUNT}/{APP}", check=True).stdout.strip() == APP
    line = site.stack.cli("stack", "output", "dataVolume").stdout.strip()
    assert f"(id {volume_site.volume_id}, fsn1, 10 GB) at {MOUNT}: pulumi destroy keeps it" in line, line


NEW_STACK = "lab2"


def test_destroy_keeps_it_and_a_new_stack_serves_the_same_rows(
    volume_site: VolumeSite, lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> None:
    site, volume_id = volume_site.site, volume_site.volume_id
    cloud = site.hetzner.cloud
    destroyed = site.stack.destroy(echo=None)
    assert cloud.servers == {} and volume_id in cloud.volumes and cloud.volumes[volume_id]["server"] is None
    # destroy prints no stack output; the engine's own line says it keeps the volume.
    assert "hcloud:index:Volume blog-server-data-volume deleted" in destroyed.output
    (kept_line,) = [line for line in destroyed.output.splitlines() if "blog-server-data-volume deleted" in line]
    assert kept_line.endswith("[retain]"), kept_line
    stack = CliStack(Path(tempfile.mkdtemp(prefix="stack-volume-", dir=lab.run_dir)), stack=NEW_STACK)
    config: dict[str, str | None] = {**site.config, "django-vps:dataVolume": None,
                                     "django-vps:dataVolumeId": str(volume_id)}  # fmt: skip
    stack.configure(config)
    up = stack.up(echo=None)
    assert up.ops["blog-server-data-volume"][0] == "import", up.ops.get("blog-server-data-volume")
    (server,) = cloud.servers.values()
    ip = server["ipv4"]
    kept = cloud.volumes[volume_id]
    assert kept["server"] == server["id"] and kept["labels"]["stack"] == NEW_STACK
    assert _curl(site, ip, "/rows/") == "rows 1"
    assert _curl(site, ip, "/media/uploads/kept.txt") == UPLOAD
    assert stack.up(echo=None).changed() == {}
    stack.destroy(echo=None)
    assert volume_id in cloud.volumes  # kept again (dataVolumeKeep stays true)


def _step_stdout(stack: CliStack, role: str) -> str:
    from tests.e2e.site import _plain

    state = json.loads(stack.cli("stack", "export", "--show-secrets").stdout)
    (step,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith(f"-host-{role}")]
    return _plain(step["outputs"]).get("stdout", "")


# --- the stand-in's model alone -------------------------------------------------------------------


def test_the_stand_ins_volumes_behave_as_hetzners() -> None:
    from tests.e2e.testhost.hetzner_api import ApiError, HetznerCloud

    cloud = HetznerCloud()
    server = cloud.finish_server(cloud.create_server({"name": "s1", "server_type": "cx23", "image": "debian-12",
                                                      "location": "fsn1"}), "198.51.100.50")["server"]  # fmt: skip
    made = cloud.create_volume({"name": "data", "size": 10, "location": "fsn1", "format": "ext4"})
    volume = made["volume"]
    assert volume["linux_device"] == f"/dev/disk/by-id/scsi-0HC_Volume_{volume['id']}" and volume["server"] is None
    assert made["next_actions"] == []
    for body, code in (({"name": "data", "size": 10, "location": "fsn1"}, "uniqueness_error"),
                       ({"name": "small", "size": 5, "location": "fsn1"}, "invalid_input"),
                       ({"name": "nowhere", "size": 10}, "invalid_input")):  # fmt: skip
        with pytest.raises(ApiError) as caught:
            cloud.create_volume(body)
        assert caught.value.code == code
    vid = str(volume["id"])
    cloud.volume_action(vid, "attach", {"server": server["id"]})
    assert cloud.get_server(str(server["id"]))["server"]["volumes"] == [volume["id"]]
    with pytest.raises(ApiError, match="already attached"):
        cloud.volume_action(vid, "attach", {"server": server["id"]})
    with pytest.raises(ApiError, match=r"invalid input in field 'size'"):
        cloud.volume_action(vid, "resize", {"size": 10})  # Hetzner never shrinks, nor keeps the size
    cloud.volume_action(vid, "resize", {"size": 20})
    cloud.volume_action(vid, "change_protection", {"delete": True})
    with pytest.raises(ApiError, match="delete protected"):
        cloud.delete_volume(vid)
    # A deleted server's volumes are detached, and stay.
    cloud.delete_server(str(server["id"]))
    assert cloud.get_volume(vid)["volume"]["server"] is None and cloud.get_volume(vid)["volume"]["size"] == 20
    other = cloud.finish_server(cloud.create_server({"name": "s2", "server_type": "cx23", "image": "debian-12",
                                                     "location": "nbg1"}), "198.51.100.51")["server"]  # fmt: skip
    with pytest.raises(ApiError, match="same location"):
        cloud.volume_action(vid, "attach", {"server": other["id"]})
    cloud.volume_action(vid, "change_protection", {"delete": False})
    cloud.delete_volume(vid)
    assert cloud.volumes == {}
