"""Each Hetzner setting changed after the server exists, on the real Pulumi CLI (issue 10): what the
engine did (its own events: update, replace, nothing) and what the Hetzner stand-in holds after.

First the program's Server and Dns components against the API alone (no machine boots, so each
change takes seconds): serverType and backups update the same server, a type it cannot take and an
unconfirmed location or image change stop the run before anything changes, adminSshKeys touch no
Hetzner resource, and a confirmed change replaces the server create-before-delete with the records
following it. Then the whole program in the lab: the admin user's keys follow adminSshKeys on the
server, and a confirmed replacement ends with a new server provisioned from scratch (every host step
replaced with the server it is deleted_with, so each one's create runs there), DNS and the GitHub
secrets pointing at it, the site serving from it, and the old server (and its data) gone.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi import automation as auto

from tests.e2e import web
from tests.e2e.cli import Run, workspace_options
from tests.e2e.site import APP, DOMAIN, SERVER_IP, Deployed, deploy_site
from tests.e2e.testhost import Lab
from tests.e2e.testhost.hetzner_api import HetznerAPI, NoMachines
from tests.support.figures import figure
from tests.support.keys import new_ed25519

pytestmark = pytest.mark.e2e

TOKEN = "0123456789abcdef" * 4
STACK = "lab"
PREFIX = f"blog-{STACK}"


# --- the components against the API -------------------------------------------------------------


@dataclass
class Inline:
    """A file-backend stack running the program's Server and Dns components inline."""

    stack: auto.Stack

    def _run(self, operation: Callable[..., Any], **kwargs: Any) -> Run:
        lines: list[str] = []
        ops: dict[str, list[str]] = {}

        def on_event(event: auto.events.EngineEvent) -> None:
            step = event.resource_pre_event
            if step is not None and step.metadata is not None:
                ops.setdefault(step.metadata.urn.rsplit("::", 1)[-1], []).append(step.metadata.op.value)

        result = operation(on_output=lines.append, on_event=on_event, color="never", **kwargs)
        summary = getattr(result, "summary", None)
        changes = dict(summary.resource_changes or {}) if summary else dict(result.change_summary or {})
        return Run(changes, ops, "\n".join(lines), 0.0, {k: v.value for k, v in getattr(result, "outputs", {}).items()})

    def up(self) -> Run:
        return self._run(self.stack.up)

    def preview(self) -> Run:
        return self._run(self.stack.preview)

    def refused(self, operation: str = "up") -> str:
        """The run fails: its error, as the CLI prints it."""
        with pytest.raises(auto.CommandError) as caught:
            self._run(getattr(self.stack, operation))
        return str(caught.value)


def inline_stack(directory: Path, api: HetznerAPI, want: dict[str, Any]) -> Inline:
    from components.dns import Dns, DnsArgs
    from components.server import Server, ServerArgs
    from components.settings import HetznerServer, hetzner_labels

    def program() -> None:
        labels = hetzner_labels("blog", pulumi.get_stack())
        spec = HetznerServer(want["serverType"], want["image"], want["location"], want["backups"],
                             tuple(want["adminSshKeys"]), replace_server=want["replaceServer"])  # fmt: skip
        server = Server("site-server", ServerArgs(hetzner=spec, existing=None, name_prefix=PREFIX, labels=labels))
        Dns("site-dns", DnsArgs(domain="blog.test", zone="blog.test", record_name="@", create_zone=False, manage=True,
                                ipv4=server.ipv4, ipv6=server.ipv6, with_ipv6=True, labels=labels))  # fmt: skip
        pulumi.export("ipv4", server.ipv4)

    opts = workspace_options(directory)
    stack = auto.create_or_select_stack(STACK, "hetzner-settings", program, opts=opts)
    stack.set_config("hcloud:token", auto.ConfigValue(TOKEN, secret=True))
    stack.set_config("hcloud:endpoint", auto.ConfigValue(api.url))
    return Inline(stack)


def writes(api: HetznerAPI, since: int) -> list[str]:
    """The API requests since `since` that change something (every method but GET)."""
    return [f"{r.method} {r.path}" for r in api.requests[since:] if r.method != "GET"]


def error_line(error: str, key: str) -> str:
    """The one message of the CLI's error output that names `django-vps:<key>`, without a traceback.
    The Automation API's inline runtime reports it twice (logged, then as the program's result, which
    the engine prefixes "an unhandled error occurred:"; pulumi/automation/_server.py,
    pkg/resource/deploy/program_source.go): the same one line."""
    marker = f"django-vps:{key}:"
    found = {line[line.index(marker) :].strip() for line in error.splitlines() if marker in line}
    assert len(found) == 1 and "Traceback" not in error, error
    return found.pop()


@pytest.fixture
def api() -> Iterator[HetznerAPI]:
    with HetznerAPI() as api:
        api.cloud.create_zone({"name": "blog.test", "mode": "primary"})  # the user's zone
        yield api
    assert api.unknown == [], f"requests the stand-in does not know: {api.unknown}"


def test_each_setting_after_creation_on_the_real_engine(api: HetznerAPI, tmp_path: Path) -> None:
    laptop, desktop = new_ed25519().public, new_ed25519().public
    want: dict[str, Any] = {"serverType": "cx23", "image": "debian-12", "location": "fsn1", "backups": False,
                            "adminSshKeys": [laptop], "replaceServer": False}  # fmt: skip
    cli = inline_stack(tmp_path, api, want)
    cloud = api.cloud
    assert isinstance(cloud.machines, NoMachines)
    created = cli.up()
    (server,) = cloud.servers.values()
    first_id = server["id"]
    assert server["name"] == f"{PREFIX}-fsn1-debian-12" and server["labels"]["stack"] == STACK
    # Hetzner holds the provisioning key only; the admin key went to cloud-init.
    (key,) = cloud.ssh_keys.values()
    assert key["name"] == f"{PREFIX}-provisioning" and laptop.split()[1] in server["user_data"]
    assert created.ops["site-server-server"] == ["create"]

    # serverType, bigger: an update of the same server (powered off, changed, started by Hetzner).
    want["serverType"] = "cx33"
    before = len(api.requests)
    run = cli.up()
    assert run.changed() == {"site-server-server": ["update"]}, run.changed()
    assert set(cloud.servers) == {first_id} and server["server_type"] == "cx33" and server["status"] == "running"
    assert writes(api, before) == [f"POST /v1/servers/{first_id}/actions/poweroff",
                                   f"POST /v1/servers/{first_id}/actions/change_type"]  # fmt: skip
    assert server["disk"] == 80  # the disk grew with the type

    # backups: in place, on and off.
    for on in (True, False):
        want["backups"] = on
        run = cli.up()
        assert run.changed() == {"site-server-server": ["update"]}, run.changed()
        assert set(cloud.servers) == {first_id} and bool(server["backup_window"]) is on

    # Types the server cannot take stop the run before anything changes: a smaller disk, the other
    # architecture. The provider would have powered the server off first, then failed.
    for server_type, expected in (
        ("cx23", "django-vps:serverType: cx33 -> cx23 would shrink the server's disk (80 GB -> 40 GB)"),
        ("cax11", "django-vps:serverType: cx33 -> cax11 changes the architecture (x86 -> arm)"),
    ):
        want["serverType"] = server_type
        before = len(api.requests)
        for operation in ("preview", "up"):
            assert error_line(cli.refused(operation), "serverType").startswith(expected)
        assert writes(api, before) == [] and server["server_type"] == "cx33" and server["status"] == "running"
    want["serverType"] = "cx33"

    # adminSshKeys edited, added, removed: no Hetzner resource changes (the host step does it, below).
    for keys in ([desktop], [laptop, desktop], []):
        want["adminSshKeys"] = keys
        run = cli.up()
        assert run.changed() == {}, run.changed()
    assert list(cloud.ssh_keys) == [key["id"]] and set(cloud.servers) == {first_id}

    # location or image, unconfirmed: one line naming the setting, old and new, what is lost; the
    # engine changes nothing (preview and up alike) and the server stays.
    for setting, value, old in (("location", "nbg1", "fsn1"), ("image", "debian-13", "debian-12")):
        want[setting] = value
        before = len(api.requests)
        for operation in ("preview", "up"):
            line = error_line(cli.refused(operation), setting)
            assert line.startswith(f"django-vps:{setting}: {setting} {old} -> {value} needs a new server"), line
            assert f"the SQLite database, media and all else on {PREFIX}-fsn1-debian-12 do not move" in line
            assert "pulumi config set replaceServer true" in line
        assert writes(api, before) == [] and set(cloud.servers) == {first_id}
        want[setting] = old

    # Confirmed: the engine replaces the server, the new one created (under its own name) before the
    # old one is deleted, and the DNS records follow its address; keys and firewall stay.
    old_ip = server["ipv4"]
    want.update(location="nbg1", replaceServer=True)
    run = cli.up()
    assert run.ops["site-server-server"] == ["create-replacement", "replace", "delete-replaced"], run.ops
    assert run.changed() == {
        "site-server-server": ["create-replacement", "replace", "delete-replaced"],
        "site-dns-a": ["update"],
        "site-dns-aaaa": ["update"],
    }, run.changed()
    assert "replaceServer: location fsn1 -> nbg1: a new server replaces" in run.output
    (new,) = cloud.servers.values()
    assert new["id"] != first_id and new["name"] == f"{PREFIX}-nbg1-debian-12" and new["location"] == "nbg1"
    assert new["ipv4"] != old_ip and run.outputs["ipv4"] == new["ipv4"]
    assert cloud.machines.published[("blog.test", "A")] == [new["ipv4"]]
    assert list(cloud.ssh_keys) == [key["id"]] and new["firewalls"] == set(cloud.firewalls)
    assert new["server_type"] == "cx33"  # as configured

    # The confirmation cannot stay behind: with nothing left to replace the run is refused...
    line = error_line(cli.refused(), "replaceServer")
    assert line.startswith(f"django-vps:replaceServer: is true, but {PREFIX}-nbg1-debian-12 already is nbg1"), line
    # ...and unset, nothing happens.
    want["replaceServer"] = False
    assert cli.up().changed() == {}
    cli.stack.destroy(on_output=lambda line: None)
    assert cloud.resources() == {"ssh_keys": 0, "firewalls": 0, "servers": 0, "zones": 1, "rrsets": 2}


# --- the whole program in the lab ---------------------------------------------------------------


def ssh_as(ip: str, host_key: str, user: str, private_key: str, command: str = "true") -> int:
    with tempfile.TemporaryDirectory() as home:
        key_file, known = Path(home) / "key", Path(home) / "known_hosts"
        key_file.write_text(private_key)
        key_file.chmod(0o600)
        known.write_text(f"{ip} {host_key}\n")
        options = ["IdentitiesOnly=yes", "BatchMode=yes", "StrictHostKeyChecking=yes",
                   f"UserKnownHostsFile={known}", "ConnectTimeout=10"]  # fmt: skip
        return subprocess.run(
            ["ssh", "-i", str(key_file), *(f"-o{o}" for o in options), f"{user}@{ip}", command],
            capture_output=True, timeout=60, check=False,
        ).returncode  # fmt: skip


@pytest.fixture(scope="module")
def deployed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployed, Any, Any]]:
    laptop, desktop = new_ed25519(), new_ed25519()
    site = deploy_site(lab, tmp_path_factory.mktemp("pebble") / "root.pem", adminSshKeys=json.dumps([laptop.public]))
    try:
        yield site, laptop, desktop
    finally:
        site.remove()
    assert site.hetzner.cloud.resources() == {"ssh_keys": 0, "firewalls": 0, "servers": 0, "zones": 1, "rrsets": 2}
    assert not [name for name in lab.servers if name.startswith("hc")], "a lab server outlived destroy"


def test_admin_ssh_keys_follow_the_setting_on_the_server(deployed: tuple[Deployed, Any, Any]) -> None:
    site, laptop, desktop = deployed
    host_key = site.exports["hostKey"]
    assert ssh_as(site.ip, host_key, "admin", laptop.private_openssh, "sudo -n true") == 0  # cloud-init's
    assert ssh_as(site.ip, host_key, "admin", desktop.private_openssh) != 0
    site.stack.configure({"adminSshKeys": json.dumps([desktop.public])})  # an edit: laptop out, desktop in
    run = site.stack.up(echo=None)
    assert run.changed() == {f"{APP}-host-admin-keys": ["update"]}, run.changed()
    assert ssh_as(site.ip, host_key, "admin", desktop.private_openssh, "sudo -n true") == 0
    assert ssh_as(site.ip, host_key, "admin", laptop.private_openssh) != 0
    keys = site.sh("cat /home/admin/.ssh/authorized_keys; stat -c '%a %U' /home/admin/.ssh/authorized_keys")
    assert desktop.public.split()[1] in keys and laptop.public.split()[1] not in keys
    assert keys.endswith("600 admin\n")
    assert site.stack.up(echo=None).changed() == {}


def test_a_confirmed_replacement_provisions_a_new_server_and_everything_follows(
    deployed: tuple[Deployed, Any, Any],
) -> None:
    site, _, desktop = deployed
    old_id, old_name = next(iter(site.hetzner.cloud.servers)), f"hc{next(iter(site.hetzner.cloud.servers))}"
    assert site.ip == SERVER_IP
    # Data that lives only on the old server's disk.
    site.sh(f"sudo -u {APP} sh -c 'echo only-on-the-old-server > /home/{APP}/{APP}/shared/media/old.txt'")
    assert site.https("/media/old.txt").body.strip() == "only-on-the-old-server"

    site.stack.configure({"location": "hel1"})
    with pytest.raises(auto.CommandError) as caught:
        site.stack.up(echo=None)
    assert error_line(str(caught.value), "location").startswith("django-vps:location: location fsn1 -> hel1 needs a")
    assert set(site.hetzner.cloud.servers) == {old_id} and site.https("/").status == 200

    site.stack.configure({"replaceServer": "true"})
    run = site.stack.up(echo=None)
    figure(f"confirmed replacement, new server provisioned from scratch: {run.seconds:.1f} s")
    changed = run.changed()
    replaced = ["create-replacement", "replace", "delete-replaced"]
    assert changed.pop(f"{APP}-server-server") == replaced, run.ops
    # Every host step is replaced with the server it is deleted_with (the engine cascades a
    # replacement to its deletedWith dependents: pkg/resource/deploy/step_generator.go), so each one's
    # create runs on the new host, and the old ones' delete is nothing (they have none). The DNS
    # records and the secrets that carry the address are updated; nothing else changed.
    from components.host import steps_of

    assert {name: changed.pop(name) for name in [n for n in changed if n.startswith(f"{APP}-host-")]} == {
        f"{APP}-host-{role}": replaced for role in steps_of(site.settings, created=True)
    }
    updated = {f"{APP}-dns-a", f"{APP}-dns-aaaa", f"{APP}-github-ssh-host",
               f"{APP}-github-ssh-known-hosts"}  # fmt: skip
    assert changed == {name: ["update"] for name in updated}, changed
    (new_id,) = site.hetzner.cloud.servers
    new = site.hetzner.cloud.servers[new_id]
    assert new_id != old_id and new["name"] == f"{APP}-lab-hel1-debian-12" and new["location"] == "hel1"
    assert old_name not in site.lab.servers, "the old server outlived the replacement"
    new_ip = run.outputs["ipv4"]
    assert new_ip == new["ipv4"] != SERVER_IP
    site.exports = dict(run.outputs)
    # The site serves from the new server, with its own certificate, the A record on its address,
    # and the workflow reaches it with what GitHub now holds.
    assert site.https("/").status == 200 and "Hello from django-vps" in site.https("/").body
    assert site.secret("SSH_HOST") == new_ip
    assert site.secret("SSH_KNOWN_HOSTS") == f"{new_ip} {run.outputs['hostKey']}"
    assert site.run_workflow().returncode == 0
    assert ssh_as(new_ip, run.outputs["hostKey"], "admin", desktop.private_openssh, "sudo -n true") == 0
    # What was only on the old server's disk did not move (as the README says).
    assert site.https("/media/old.txt").status == 404

    # The confirmation cannot stay behind; unset, the stack is at rest.
    with pytest.raises(auto.CommandError) as caught:
        site.stack.up(echo=None)
    assert error_line(str(caught.value), "replaceServer").startswith("django-vps:replaceServer: is true, but")
    site.stack.configure({"replaceServer": None})
    assert site.stack.up(echo=None).changed() == {}
    assert web.get(new_ip, DOMAIN, "/", cafile=site.cafile).status == 200
