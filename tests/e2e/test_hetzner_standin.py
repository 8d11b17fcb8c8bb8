"""The Hetzner side in the real wire format: the API stand-in (tests/e2e/testhost/hetzner_api.py) on
its own, then the real Pulumi CLI driving the hcloud stand-in plugin (tests/e2e/providers/hcloud.py)
against it with a small inline program, and one server booted in the lab through `hcloud.Server`."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_hcloud as hcloud
import pytest
import yaml
from pulumi import automation as auto

from tests.e2e.cli import workspace_options
from tests.e2e.testhost import Lab
from tests.e2e.testhost.hetzner_api import HetznerAPI, NoMachines
from tests.e2e.testhost.metadata_service import answer
from tests.support.keys import new_ed25519

pytestmark = pytest.mark.e2e

TOKEN = "0123456789abcdef" * 4
# Plain HTTP to loopback: the machine's proxy settings must not apply.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(api: HetznerAPI, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api.url + path, data=data, method=method, headers=headers)
    try:
        with OPENER.open(request, timeout=30) as response:
            raw, status, kind = response.read(), response.status, response.headers.get("Content-Type")
    except urllib.error.HTTPError as error:
        raw, status, kind = error.read(), error.code, error.headers.get("Content-Type")
    assert not raw or kind == "application/json", f"{method} {path}: {kind}"
    return status, json.loads(raw) if raw else None


@pytest.fixture
def api() -> Iterator[HetznerAPI]:
    with HetznerAPI() as api:
        yield api
    assert api.unknown == [], f"requests the stand-in does not know: {api.unknown}"


# --- the API on its own -------------------------------------------------------------------------


def test_the_token_must_be_64_characters(api: HetznerAPI) -> None:
    for token in (None, TOKEN[:-1], TOKEN + "0"):
        status, body = call(api, "GET", "/ssh_keys", token=token)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert call(api, "GET", "/ssh_keys")[0] == 200


def test_a_key_is_stored_trimmed_with_the_md5_fingerprint_ssh_keygen_shows(api: HetznerAPI, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", tmp_path / "k"], check=True)
    public_key = (tmp_path / "k.pub").read_text()
    shown = subprocess.run(["ssh-keygen", "-E", "md5", "-lf", tmp_path / "k.pub"], check=True, text=True,
                           capture_output=True).stdout.split()[1]  # fmt: skip
    status, body = call(api, "POST", "/ssh_keys", {"name": "laptop", "public_key": f"  {public_key}\n"})
    assert status == 201
    key = body["ssh_key"]
    assert key["fingerprint"] == shown.removeprefix("MD5:")
    assert key["public_key"] == public_key.strip()
    assert set(key) == {"id", "name", "fingerprint", "public_key", "labels", "created"}
    assert call(api, "GET", f"/ssh_keys/{key['id']}")[1] == {"ssh_key": key}
    status, body = call(api, "POST", "/ssh_keys", {"name": "broken", "public_key": "ssh-ed25519 bm90IGEga2V5"})
    assert (status, body["error"]["code"]) == (400, "invalid_input")


def test_a_second_key_with_the_same_fingerprint_or_name_is_a_uniqueness_error(api: HetznerAPI) -> None:
    first, second = new_ed25519().public, new_ed25519().public
    assert call(api, "POST", "/ssh_keys", {"name": "a", "public_key": first})[0] == 201
    for body in ({"name": "b", "public_key": first + " other comment"}, {"name": "a", "public_key": second}):
        status, answer = call(api, "POST", "/ssh_keys", body)
        assert (status, answer["error"]["code"]) == (409, "uniqueness_error"), answer
    assert len(call(api, "GET", "/ssh_keys")[1]["ssh_keys"]) == 1


def test_an_rrset_that_exists_is_a_uniqueness_error_and_a_records_are_published(api: HetznerAPI) -> None:
    assert call(api, "POST", "/zones", {"name": "blog.test", "mode": "primary"})[0] == 201
    rrsets = call(api, "GET", "/zones/blog.test/rrsets")[1]["rrsets"]
    assert {r["id"] for r in rrsets} == {"@/SOA", "@/NS"}  # made with the zone, as Hetzner does
    record = {"name": "@", "type": "A", "ttl": 300, "records": [{"value": "198.51.100.7"}]}
    status, body = call(api, "POST", "/zones/blog.test/rrsets", record)
    assert status == 201 and body["rrset"]["id"] == "@/A" and body["action"]["status"] == "success"
    machines = api.cloud.machines
    assert isinstance(machines, NoMachines)
    assert machines.published[("blog.test", "A")] == ["198.51.100.7"]
    status, body = call(api, "POST", "/zones/blog.test/rrsets", record)
    assert (status, body["error"]["code"]) == (409, "uniqueness_error")
    status, _ = call(
        api, "POST", "/zones/blog.test/rrsets/@/A/actions/set_records", {"records": [{"value": "198.51.100.8"}]}
    )
    assert status == 201 and machines.published[("blog.test", "A")] == ["198.51.100.8"]
    assert call(api, "DELETE", "/zones/blog.test/rrsets/@/A")[0] == 200
    assert ("blog.test", "A") not in machines.published


def test_an_unknown_route_answers_json_404_and_is_recorded(api: HetznerAPI) -> None:
    status, body = call(api, "GET", "/load_balancers")  # (volumes are served since dataVolume)
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert call(api, "PATCH", "/ssh_keys/1")[0] == 404
    assert api.unknown == ["GET /v1/load_balancers", "PATCH /v1/ssh_keys/1"]
    assert call(api, "GET", "/ssh_keys/12345")[1]["error"]["code"] == "not_found"  # a known route: not recorded
    api.unknown.clear()


# --- the real CLI -------------------------------------------------------------------------------


def stack(directory: Path, program: Callable[[], None]) -> auto.Stack:
    """A file-backend stack running `program` inline with the stand-in plugins."""
    opts = workspace_options(directory)
    return auto.create_or_select_stack("lab", "hetzner-standin", program, opts=opts)


def changes(result: auto.UpResult | auto.DestroyResult) -> dict[str, int]:
    return dict(result.summary.resource_changes or {})


def rules(ports: list[str]) -> list[hcloud.FirewallRuleArgs]:
    return [
        hcloud.FirewallRuleArgs(direction="in", protocol="tcp", port=p, source_ips=["0.0.0.0/0", "::/0"]) for p in ports
    ]


def test_the_cli_creates_updates_in_place_replaces_and_destroys(api: HetznerAPI, tmp_path: Path) -> None:
    public_key = new_ed25519().public + "\n"  # as pulumi-tls gives it, with its newline
    want: dict[str, Any] = {"key": public_key, "labels": {"app": "blog"}, "ports": ["22", "80"],
                            "address": "198.51.100.7", "type": "cx23", "key_first": False}  # fmt: skip

    def program() -> None:
        provider = hcloud.Provider("hetzner", token=pulumi.Output.secret(TOKEN), endpoint=api.url)
        opts = pulumi.ResourceOptions(provider=provider)
        key_opts = pulumi.ResourceOptions(provider=provider, delete_before_replace=want["key_first"])
        # As components/server.py does: the keys only matter at the first boot.
        server_opts = pulumi.ResourceOptions(provider=provider, ignore_changes=["sshKeys"])
        labels = want["labels"]
        key = hcloud.SshKey("key", name="lab-key", public_key=want["key"], labels=labels, opts=key_opts)
        firewall = hcloud.Firewall("firewall", name="lab", labels=labels, rules=rules(want["ports"]), opts=opts)
        zone = hcloud.Zone("zone", name="lab.test", mode="primary", ttl=300, opts=opts)
        record = hcloud.ZoneRrsetRecordArgs(value=want["address"])
        hcloud.ZoneRrset("www", zone=zone.name, name="www", type="A", ttl=300, records=[record], opts=opts)
        server = hcloud.Server(
            "server",
            name="lab-vps",
            server_type=want["type"],
            image="debian-12",
            location="fsn1",
            ssh_keys=[key.id],
            firewall_ids=[firewall.id.apply(int)],
            labels=labels,
            user_data="#cloud-config\n",
            opts=server_opts,
        )
        pulumi.export("fingerprint", key.fingerprint)
        pulumi.export("ipv4", server.ipv4_address)
        pulumi.export("serverType", server.server_type)

    lines: list[str] = []
    cli = stack(tmp_path, program)
    cloud = api.cloud
    assert isinstance(cloud.machines, NoMachines)

    result = cli.up(on_output=lines.append)
    assert changes(result) == {"create": 7}, "\n".join(lines)  # the stack, the provider, 5 resources
    (key,) = cloud.ssh_keys.values()
    assert result.outputs["fingerprint"].value == key["fingerprint"]
    assert key["public_key"] == public_key.strip()
    (server,) = cloud.servers.values()
    assert result.outputs["ipv4"].value == server["ipv4"] and server["firewalls"] == set(cloud.firewalls)
    assert cloud.machines.published[("www.lab.test", "A")] == ["198.51.100.7"]
    ids = {kind: set(getattr(cloud, kind)) for kind in ("ssh_keys", "firewalls", "servers", "zones")}

    assert changes(cli.up(on_output=lines.append)) == {"same": 7}, "\n".join(lines)
    cli.refresh(on_output=lines.append, expect_no_changes=True)

    # Deleted behind Pulumi's back: refresh asks the API and drops it, the next up makes it again.
    assert call(api, "DELETE", "/zones/lab.test/rrsets/www/A")[0] == 200
    assert changes(cli.refresh(on_output=lines.append)) == {"same": 6, "delete": 1}, "\n".join(lines)
    assert changes(cli.up(on_output=lines.append)) == {"same": 6, "create": 1}, "\n".join(lines)
    assert cloud.machines.published[("www.lab.test", "A")] == ["198.51.100.7"]

    # Labels, a rule, a record and the server type: all in place, as the real provider does them.
    want.update(labels={"app": "blog", "stage": "lab"}, ports=["22", "80", "443"], address="198.51.100.8", type="cx33")
    before = len(api.requests)
    result = cli.up(on_output=lines.append)
    assert changes(result) == {"same": 3, "update": 4}, "\n".join(lines)
    assert {kind: set(getattr(cloud, kind)) for kind in ids} == ids
    calls = {f"{r.method} {r.path}" for r in api.requests[before:]}
    server_id, firewall_id = next(iter(ids["servers"])), next(iter(ids["firewalls"]))
    assert {f"PUT /v1/ssh_keys/{key['id']}", f"POST /v1/firewalls/{firewall_id}/actions/set_rules",
            "POST /v1/zones/lab.test/rrsets/www/A/actions/set_records",
            f"POST /v1/servers/{server_id}/actions/poweroff",
            f"POST /v1/servers/{server_id}/actions/change_type"} <= calls  # fmt: skip
    assert f"POST /v1/servers/{server_id}/actions/poweron" not in calls  # the API starts it again
    assert not [c for c in calls if c.startswith("DELETE")]
    assert result.outputs["serverType"].value == "cx33" and cloud.servers[server_id]["status"] == "running"
    assert [r["port"] for r in cloud.firewalls[firewall_id]["rules"]] == ["22", "80", "443"]
    assert cloud.machines.published[("www.lab.test", "A")] == ["198.51.100.8"]

    # A new public key replaces the key (ForceNew). Created before the old one is deleted, the new
    # key's name is still taken, as on Hetzner. Deleting first works, and the engine then replaces
    # the server that references the key as well (it does not consult ignore_changes for that).
    want["key"] = new_ed25519().public
    with pytest.raises(auto.CommandError, match="SSH key with the same name already exists"):
        cli.up(on_output=lines.append)
    want["key_first"] = True
    result = cli.up(on_output=lines.append)
    assert changes(result) == {"same": 5, "replace": 2}, "\n".join(lines)
    (new_key,) = cloud.ssh_keys.values()
    assert new_key["id"] != key["id"] and new_key["public_key"] == want["key"]
    assert set(cloud.servers) != ids["servers"]

    assert changes(cli.destroy(on_output=lines.append)) == {"delete": 7}
    assert cloud.resources() == {"ssh_keys": 0, "firewalls": 0, "servers": 0, "zones": 0, "rrsets": 0}
    assert cloud.machines.published == {}


def test_the_programs_server_and_dns_components_converge_against_the_stand_in(api: HetznerAPI, tmp_path: Path) -> None:
    """components/server.py and components/dns.py as the program builds them (default provider
    from the stack's hcloud: config), in a zone the user already has at Hetzner."""
    from components.dns import Dns, DnsArgs
    from components.server import Server, ServerArgs
    from components.settings import HetznerServer

    assert call(api, "POST", "/zones", {"name": "blog.test", "mode": "primary"})[0] == 201
    admin_key = new_ed25519().public
    want = {"backups": True}

    def program() -> None:
        labels = {"managed-by": "django-vps", "app": "blog", "stack": pulumi.get_stack()}
        spec = HetznerServer(server_type="cx23", image="debian-12", location="fsn1", backups=want["backups"],
                             admin_ssh_keys=(admin_key,))  # fmt: skip
        server = Server("site-server", ServerArgs(hetzner=spec, existing=None, name_prefix="blog-lab", labels=labels))
        args = DnsArgs(domain="blog.test", zone="blog.test", record_name="@", create_zone=False, manage=True,
                       ipv4=server.ipv4, ipv6=server.ipv6, with_ipv6=server.has_ipv6, labels=labels)  # fmt: skip
        Dns("site-dns", args)
        pulumi.export("ipv4", server.ipv4)

    lines: list[str] = []
    cli = stack(tmp_path, program)
    cli.set_config("hcloud:token", auto.ConfigValue(TOKEN, secret=True))
    cli.set_config("hcloud:endpoint", auto.ConfigValue(api.url))
    result = cli.up(on_output=lines.append)
    # stack, 2 components, 2 tls keys, the provisioning SSH key, firewall, server, A, AAAA (default
    # providers uncounted); the admin key reaches the server by cloud-init, not as a Hetzner key.
    assert changes(result) == {"create": 10}, "\n".join(lines)
    cloud = api.cloud
    (server,) = cloud.servers.values()
    assert server["backup_window"] and server["firewalls"] == set(cloud.firewalls) and len(server["keys"]) == 1
    assert result.outputs["ipv4"].value == server["ipv4"]
    assert [r["port"] for r in next(iter(cloud.firewalls.values()))["rules"]] == ["22", "80", "443", None]
    zone_id = next(iter(cloud.zones))
    assert cloud.rrsets[(zone_id, "@", "AAAA")]["records"] == [{"value": server["ipv6"].split("/")[0] + "1"}]
    assert isinstance(cloud.machines, NoMachines)
    assert cloud.machines.published[("blog.test", "A")] == [server["ipv4"]]
    assert changes(cli.up(on_output=lines.append)) == {"same": 10}, "\n".join(lines)
    cli.refresh(on_output=lines.append, expect_no_changes=True)
    want["backups"] = False  # backups: false in the stack's config, in place
    assert changes(cli.up(on_output=lines.append)) == {"same": 9, "update": 1}, "\n".join(lines)
    assert server["backup_window"] is None and set(cloud.servers) == {server["id"]}
    cli.refresh(on_output=lines.append, expect_no_changes=True)

    assert changes(cli.destroy(on_output=lines.append)) == {"delete": 10}
    # The user's zone stays, with what Hetzner made in it.
    assert cloud.resources() == {"ssh_keys": 0, "firewalls": 0, "servers": 0, "zones": 1, "rrsets": 2}
    assert set(cloud.machines.published) == {("blog.test", "SOA"), ("blog.test", "NS")}


# --- one server in the lab ----------------------------------------------------------------------

USER_DATA = """\
#cloud-config
write_files:
  - path: /etc/dvps-standin
    content: "written by cloud-init from the stand-in's user_data\\n"
"""


def test_a_server_boots_in_the_lab_with_its_user_data_and_destroy_removes_it(lab: Lab, tmp_path: Path) -> None:
    api = lab.hetzner_api()
    login = new_ed25519().public
    want = {"type": "cx23"}

    def program() -> None:
        provider = hcloud.Provider("hetzner", token=TOKEN, endpoint=api.url)
        opts = pulumi.ResourceOptions(provider=provider)
        key = hcloud.SshKey("key", name="lab-key", public_key=login, opts=opts)
        server = hcloud.Server("server", name="lab-vps", server_type=want["type"], image="debian-12", location="fsn1",
                               ssh_keys=[key.id], user_data=pulumi.Output.secret(USER_DATA),
                               public_nets=[hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True)],
                               opts=opts)  # fmt: skip
        pulumi.export("id", server.id)
        pulumi.export("ipv4", server.ipv4_address)

    lines: list[str] = []
    try:
        cli = stack(tmp_path, program)
        result = cli.up(on_output=lines.append)
        assert changes(result) == {"create": 4}, "\n".join(lines)
        name = f"hc{result.outputs['id'].value}"
        server = lab.servers[name]
        assert result.outputs["ipv4"].value == server.ip
        done = server.run("cloud-init status --wait >/dev/null; cat /etc/dvps-standin", check=True)
        assert done.stdout == "written by cloud-init from the stand-in's user_data\n"

        # The metadata service serves the server what it was created with, and its metadata (the
        # image has python3, not curl; no proxy: /etc/environment names the lab's).
        def metadata(path: str) -> str:
            fetch = ("import sys, urllib.request as u; sys.stdout.write(u.build_opener(u.ProxyHandler({}))"
                     f".open('http://169.254.169.254/hetzner/v1/{path}', timeout=5).read().decode())")  # fmt: skip
            return server.run(f'python3 -c "{fetch}"', check=True).stdout

        assert metadata("userdata") == USER_DATA
        assert metadata("metadata/hostname") == "lab-vps"
        assert metadata("metadata/instance-id") == result.outputs["id"].value
        assert login in server.run("cat /root/.ssh/authorized_keys", check=True).stdout  # as Hetzner does

        # A bigger type, in place: powered off, changed, started again on the same disk and address.
        first_boot = server.pid1
        want["type"] = "cx33"
        assert changes(cli.up(on_output=lines.append)) == {"same": 3, "update": 1}, "\n".join(lines)
        assert lab.servers[name] is server and server.pid1 not in (None, first_boot)
        assert server.run("cat /etc/dvps-standin", check=True).stdout.startswith("written by cloud-init")

        assert changes(cli.destroy(on_output=lines.append)) == {"delete": 4}
        assert name not in lab.servers and not Path(f"/run/netns/{server.netns}").exists()
        assert api.cloud.resources() == {"ssh_keys": 0, "firewalls": 0, "servers": 0, "zones": 0, "rrsets": 0}
        assert api.unknown == []
    finally:
        api.stop()


def test_the_metadata_service_answers_each_server_by_its_address() -> None:
    """The metadata stand-in's answers (no lab needed): by the source address, IPv4 (also as an
    IPv4-mapped IPv6 address, as a dual-stack socket sees it) or the server's link-local IPv6 with its
    zone; anything else 404."""
    meta = {"hostname": "blog-server", "instance-id": 100001, "public-ipv4": "198.51.100.2",
            "region": "eu-central", "availability-zone": "fsn1-dc14", "local-ipv4": "", "public-keys": []}  # fmt: skip
    state = {"198.51.100.2": {"userdata": "#cloud-config\n", "metadata": meta},
             "fe80::1:2": {"userdata": "#cloud-config\n", "metadata": meta}}  # fmt: skip
    for client in ("198.51.100.2", "::ffff:198.51.100.2", "fe80::1:2%eth0"):
        assert answer(state, client, "/hetzner/v1/userdata") == (200, "#cloud-config\n"), client
    assert answer(state, "198.51.100.2", "/hetzner/v1/metadata/instance-id") == (200, "100001")
    assert answer(state, "198.51.100.2", "/hetzner/v1/metadata/hostname") == (200, "blog-server")
    assert answer(state, "198.51.100.2", "/hetzner/v1/metadata/private-networks") == (200, "[]\n")
    status, document = answer(state, "198.51.100.2", "/hetzner/v1/metadata")
    assert status == 200 and yaml.safe_load(document) == meta
    assert answer(state, "198.51.100.3", "/hetzner/v1/userdata")[0] == 404
    assert answer(state, "198.51.100.2", "/latest/user-data")[0] == 404
    assert answer(state, "198.51.100.2", "/hetzner/v1/metadata/nothing")[0] == 404
