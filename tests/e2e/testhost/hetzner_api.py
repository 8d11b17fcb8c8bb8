"""A stand-in for the Hetzner Cloud API (`hcloud:endpoint` = `HetznerAPI.url`, ending in /v1).

The state (`HetznerCloud`) lives apart from the HTTP handler, as moto keeps its models apart from
its responses; a `ThreadingHTTPServer` in a thread serves it (`HetznerAPI.start/stop`). The JSON
follows hcloud-go's `hcloud/schema/*.go` (ssh_key, firewall, server, server_type, image, action,
zone, zone_rrset, volume, error) and the endpoints are those terraform-provider-hcloud calls for the
program's resources. What is real: SSH key fingerprints (MD5 of the key blob, as Hetzner shows them), the
uniqueness and token checks, and servers: `POST /servers` boots a lab server from the image with
the request's `user_data` applied by cloud-init (through a `Machines` backend, so the model also
works without a lab), and served back to it by the lab's metadata service at 169.254.169.254, as
Hetzner's does (metadata.py). A records go to the lab's DNS. Volumes are sparse files the lab attaches
to its servers as loop devices at Hetzner's device path, /dev/disk/by-id/scsi-0HC_Volume_<id>
(volumes.py says why that is safe); a server's deletion detaches its volumes, as Hetzner's does.

LIMITATIONS (each one a place where the real API does more):
- every action is answered finished (`"status": "success"`): clients never poll;
- no rate limits, no pagination beyond one page, label selectors are matched on `k=v` and `k`
  only (labels themselves are checked: keys and values of at most 63 characters, alphanumeric at
  both ends), server names are checked as RFC 1123 hostnames (labels of at most 63 characters);
- no IPv6 on the lab network: servers get a 2001:db8::/64 that nothing routes, AAAA records are
  stored and not published;
- a Zone gets SOA and NS RRSets at creation, with the real nameservers' names, but they serve
  nothing; secondary zones are stored, never transferred.

Unknown routes answer JSON 404 and are recorded in `unknown`; tests assert it stays empty.
Request bodies are not logged: user_data carries the server's private host key.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import itertools
import json
import logging
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from .volumes import LoopVolumes

if TYPE_CHECKING:
    from .lab import Lab

log = logging.getLogger(__name__)

TOKEN_LENGTH = 64
USER_DATA_LIMIT = 32 * 1024
NET = "198.51.100"

# --- the catalogue: what a Hetzner project can order ---------------------------------------------

LOCATIONS = {
    "fsn1": (1, "Falkenstein DC Park 1", "DE", "Falkenstein", "eu-central", "fsn1-dc14"),
    "nbg1": (2, "Nuremberg DC Park 1", "DE", "Nuremberg", "eu-central", "nbg1-dc3"),
    "hel1": (3, "Helsinki DC Park 1", "FI", "Helsinki", "eu-central", "hel1-dc2"),
    "ash": (4, "Ashburn, VA", "US", "Ashburn, VA", "us-east", "ash-dc1"),
    "hil": (5, "Hillsboro, OR", "US", "Hillsboro, OR", "us-west", "hil-dc1"),
    "sin": (6, "Singapore", "SG", "Singapore", "ap-southeast", "sin-dc1"),
}
# name: (id, cores, memory GB, disk GB, cpu_type, architecture)
SERVER_TYPES = {
    "cx22": (104, 2, 4.0, 40, "shared", "x86"),
    "cx23": (114, 2, 4.0, 40, "shared", "x86"),
    "cx32": (105, 4, 8.0, 80, "shared", "x86"),
    "cx33": (115, 4, 8.0, 80, "shared", "x86"),
    "cpx11": (22, 2, 2.0, 40, "shared", "x86"),
    "cpx21": (23, 3, 4.0, 80, "shared", "x86"),
    "cpx31": (24, 4, 8.0, 160, "shared", "x86"),
    "cax11": (45, 2, 4.0, 40, "shared", "arm"),
    "cax21": (93, 4, 8.0, 80, "shared", "arm"),
    "ccx13": (96, 2, 8.0, 80, "dedicated", "x86"),
}
# (id, name, os_flavor, os_version, architecture): one image per architecture, as Hetzner lists them.
IMAGES = [
    (114690387, "debian-12", "debian", "12", "x86"),
    (114690389, "debian-12", "debian", "12", "arm"),
    (310557660, "debian-13", "debian", "13", "x86"),
    (310557661, "debian-13", "debian", "13", "arm"),
]
NAMESERVERS = ["hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de."]
RRSET_TYPES = {"A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA", "SRV", "SVCB",
               "TLSA", "TXT"}  # fmt: skip
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
RRSET_NAME_RE = re.compile(r"^(@|\*|(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*)$")


class ApiError(Exception):
    """An error answer: `{"error": {"code", "message", "details"}}` with its HTTP status."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{message} ({code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def _invalid(field_name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_input", f"invalid input in field '{field_name}'",
                    {"fields": [{"name": field_name, "messages": [message]}]})  # fmt: skip


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def _unique(field_name: str, message: str) -> ApiError:
    return ApiError(409, "uniqueness_error", message, {"fields": [{"name": field_name}]})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- SSH public keys ----------------------------------------------------------------------------


def parse_public_key(text: str) -> tuple[str, bytes]:
    """(type, blob) of an OpenSSH public key line; the blob's own type must match the line's."""
    parts = text.split()
    if len(parts) < 2:
        raise _invalid("public_key", "invalid public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise _invalid("public_key", "invalid public key") from None
    length = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + length or blob[4 : 4 + length].decode(errors="replace") != parts[0]:
        raise _invalid("public_key", "invalid public key")
    return parts[0], blob


def fingerprint(public_key: str) -> str:
    """Hetzner's fingerprint: the MD5 of the key blob in colon-separated hex (`ssh-keygen -E md5`)."""
    digest = hashlib.md5(parse_public_key(public_key)[1]).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


# --- where servers and DNS records go -----------------------------------------------------------


class Machines(Protocol):
    """What stands behind `POST /servers`: the lab (`LabMachines`), or nothing in model tests."""

    def create(
        self, server_id: int, image: str, user_data: str | None, keys: list[str], start: bool, *, name: str = "",
        location: str = "fsn1",
    ) -> str:  # fmt: skip
        """Make the machine (booted if `start`) and return its IPv4."""
        ...

    def power(self, server_id: int, on: bool) -> None: ...

    def delete(self, server_id: int) -> None: ...

    def publish(self, fqdn: str, rtype: str, values: list[str]) -> None:
        """Make `fqdn` resolve to `values` (none: remove the records of that type)."""
        ...

    def volume_create(self, volume_id: int, size_gb: int, fs_format: str | None) -> None: ...

    def volume_attach(self, volume_id: int, server_id: int) -> None: ...

    def volume_detach(self, volume_id: int, server_id: int) -> None: ...

    def volume_resize(self, volume_id: int, size_gb: int) -> None: ...

    def volume_delete(self, volume_id: int) -> None: ...


class NoMachines:
    """Model-only backend: addresses from 198.51.100.100 up, nothing boots, DNS is not published."""

    def __init__(self) -> None:
        self._next = itertools.count(100)
        self.published: dict[tuple[str, str], list[str]] = {}

    def create(
        self, server_id: int, image: str, user_data: str | None, keys: list[str], start: bool, *, name: str = "",
        location: str = "fsn1",
    ) -> str:  # fmt: skip
        return f"{NET}.{next(self._next)}"

    def power(self, server_id: int, on: bool) -> None:
        return None

    def delete(self, server_id: int) -> None:
        return None

    def publish(self, fqdn: str, rtype: str, values: list[str]) -> None:
        if values:
            self.published[(fqdn, rtype)] = values
        else:
            self.published.pop((fqdn, rtype), None)

    def volume_create(self, volume_id: int, size_gb: int, fs_format: str | None) -> None:
        return None

    def volume_attach(self, volume_id: int, server_id: int) -> None:
        return None

    def volume_detach(self, volume_id: int, server_id: int) -> None:
        return None

    def volume_resize(self, volume_id: int, size_gb: int) -> None:
        return None

    def volume_delete(self, volume_id: int) -> None:
        return None


class LabMachines:
    """Servers are lab servers (`hc<id>`) at the lowest free 198.51.100.x from .2, skipping the
    forge's address; A records go into the lab DNS that pebble validates with."""

    def __init__(self, lab: Lab, images: dict[str, Path] | None = None) -> None:
        self.lab = lab
        self.images = dict(images or {})
        self._lock = threading.Lock()
        assert lab.run_dir is not None, "lab not started"
        # Each API's own directory: its volume ids start again at the model's first id.
        self.volumes = LoopVolumes(Path(tempfile.mkdtemp(prefix="volumes-", dir=lab.run_dir)))
        self._attached: dict[int, int] = {}
        """Volume id -> server id."""

    def _image(self, name: str) -> Path:
        if name not in self.images:
            from .image import SUITE, build_image

            suite = {"debian-12": "bookworm", "debian-13": "trixie"}.get(name)
            if suite is None:
                raise ApiError(422, "unsupported_error", f"the lab has no image {name}")
            # The lab's own image is bookworm; trixie is built (cached) on first use.
            self.images[name] = self.lab.image if suite == SUITE and self.lab.image else build_image(suite=suite)
        return self.images[name]

    def _free_address(self) -> str:
        used = {server.ip for server in self.lab.servers.values()}
        forge = self.lab._forge
        used.add(forge.ip if forge else f"{NET}.3")  # the forge's default address, even before it starts
        for host in range(2, 255):
            if f"{NET}.{host}" not in used:
                return f"{NET}.{host}"
        raise ApiError(412, "resource_unavailable", "no free address left in the lab")

    def create(
        self, server_id: int, image: str, user_data: str | None, keys: list[str], start: bool, *, name: str = "",
        location: str = "fsn1",
    ) -> str:  # fmt: skip
        path = self._image(image)
        with self._lock:  # Lab.server is not thread-safe, and two boots must not take one address
            ip = self._free_address()
            # As on Hetzner, the project's SSH keys given at creation are root's.
            server = self.lab.server(f"hc{server_id}", ip, user_data=user_data, root_authorized_keys=keys,
                                     boot=False, image=path)  # fmt: skip
            # As on Hetzner, the metadata service serves the server its user_data from the first boot.
            _, _, _, _, network_zone, datacenter = LOCATIONS[location]
            self.lab.metadata().serve(
                server.netns, ip, instance_id=server_id, hostname=name or server.name, user_data=user_data,
                datacenter=datacenter, network_zone=network_zone,
            )  # fmt: skip
            if start:
                server.boot()
        return ip

    def power(self, server_id: int, on: bool) -> None:
        server = self.lab.servers[f"hc{server_id}"]
        if on and not server.pid1:
            server.boot()
            # A boot makes a new /dev: the attached volumes' nodes again.
            for volume_id, attached_to in self._attached.items():
                if attached_to == server_id:
                    self.volumes.plug(volume_id, server)
        elif not on and server.pid1:
            server.stop()

    def volume_create(self, volume_id: int, size_gb: int, fs_format: str | None) -> None:
        try:
            self.volumes.create(volume_id, size_gb, fs_format)
        except ValueError as error:
            raise ApiError(422, "unsupported_error", str(error)) from None

    def volume_attach(self, volume_id: int, server_id: int) -> None:
        try:
            self.volumes.attach(volume_id, self.lab.servers[f"hc{server_id}"])
        except TimeoutError as error:
            raise ApiError(423, "locked", str(error)) from None
        self._attached[volume_id] = server_id

    def volume_detach(self, volume_id: int, server_id: int) -> None:
        self._attached.pop(volume_id, None)
        self.volumes.detach(volume_id, self.lab.servers.get(f"hc{server_id}"))

    def volume_resize(self, volume_id: int, size_gb: int) -> None:
        self.volumes.resize(volume_id, size_gb)

    def volume_delete(self, volume_id: int) -> None:
        self.volumes.delete(volume_id)

    def delete(self, server_id: int) -> None:
        with self._lock:
            if f"hc{server_id}" in self.lab.servers:
                self.lab.metadata().forget(self.lab.servers[f"hc{server_id}"].ip)
                self.lab.remove(f"hc{server_id}")

    def publish(self, fqdn: str, rtype: str, values: list[str]) -> None:
        # IPv6 is not routed in the lab: AAAA records stay in the model only.
        if rtype != "A":
            return
        if values:
            self.lab.set_a(fqdn, values[0])
        else:
            self.lab.clear(fqdn)


# --- the model ----------------------------------------------------------------------------------


# The API reference's label rules: a key is an optional DNS-subdomain prefix and "/" before a name
# of at most 63 characters, a value at most 63 (or empty); both begin and end alphanumeric, with
# "-", "_" and "." between.
_LABEL_PART = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
LABEL_KEY_RE = re.compile(rf"^((?=[^/]{{1,253}}/){_LABEL}(\.{_LABEL})*/)?{_LABEL_PART}$")
LABEL_VALUE_RE = re.compile(rf"^({_LABEL_PART})?$")


def _labels(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _invalid("labels", "labels must be an object of strings")
    for key, label in value.items():
        if not LABEL_KEY_RE.match(key):
            raise _invalid("labels", f"label key {key!r} is invalid")
        if not LABEL_VALUE_RE.match(label):
            raise _invalid("labels", f"label value {label!r} of {key!r} is invalid")
    return dict(value)


def _select(labels: dict[str, str], selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        key, eq, value = term.partition("=")
        if (eq and labels.get(key.strip()) != value.strip()) or (not eq and term.strip() not in labels):
            return False
    return True


def _int_id(value: str, what: str) -> int:
    if not value.isdigit():
        raise _not_found(what)
    return int(value)


@dataclass
class HetznerCloud:
    """One Hetzner project's resources; every method is one API operation, answering JSON."""

    machines: Machines = field(default_factory=NoMachines)
    ssh_keys: dict[int, dict[str, Any]] = field(default_factory=dict)
    firewalls: dict[int, dict[str, Any]] = field(default_factory=dict)
    servers: dict[int, dict[str, Any]] = field(default_factory=dict)
    zones: dict[int, dict[str, Any]] = field(default_factory=dict)
    rrsets: dict[tuple[int, str, str], dict[str, Any]] = field(default_factory=dict)
    actions: dict[int, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(100001)
        self._action_ids = itertools.count(5000001)

    def resources(self) -> dict[str, int]:
        """How many of each kind exist (what `pulumi destroy` must bring to zero)."""
        return {"ssh_keys": len(self.ssh_keys), "firewalls": len(self.firewalls), "servers": len(self.servers),
                "zones": len(self.zones), "rrsets": len(self.rrsets)}  # fmt: skip

    def _action(self, command: str, resources: Iterable[tuple[int, str]]) -> dict[str, Any]:
        now = _now()
        action = {"id": next(self._action_ids), "command": command, "status": "success", "progress": 100,
                  "started": now, "finished": now, "error": None,
                  "resources": [{"id": rid, "type": rtype} for rid, rtype in resources]}  # fmt: skip
        self.actions[action["id"]] = action
        return action

    # --- actions --------------------------------------------------------------------------------

    def get_action(self, action_id: str) -> dict[str, Any]:
        action = self.actions.get(_int_id(action_id, "action"))
        if action is None:
            raise _not_found("action")
        return {"action": action}

    def list_actions(self, query: dict[str, list[str]]) -> dict[str, Any]:
        ids = {int(i) for i in query.get("id", []) if i.isdigit()}
        status = set(query.get("status", []))
        found = [
            a for a in self.actions.values() if (not ids or a["id"] in ids) and (not status or a["status"] in status)
        ]
        return _page("actions", found)

    # --- catalogue ------------------------------------------------------------------------------

    @staticmethod
    def _server_type(name: str) -> dict[str, Any]:
        sid, cores, memory, disk, cpu, arch = SERVER_TYPES[name]
        locations = [{"id": LOCATIONS[loc][0], "name": loc, "deprecation": None} for loc in LOCATIONS]
        return {"id": sid, "name": name, "description": name.upper(), "category": "regular_purpose",
                "cores": cores, "memory": memory, "disk": disk, "deprecated": False, "deprecation": None,
                "prices": [], "storage_type": "local", "cpu_type": cpu, "architecture": arch,
                "included_traffic": 21990232555520, "locations": locations}  # fmt: skip

    def list_server_types(self, query: dict[str, list[str]]) -> dict[str, Any]:
        names = [n for n in SERVER_TYPES if not query.get("name") or n in query["name"]]
        return _page("server_types", [self._server_type(n) for n in names])

    def get_server_type(self, id_: str) -> dict[str, Any]:
        for name, spec in SERVER_TYPES.items():
            if str(spec[0]) == id_:
                return {"server_type": self._server_type(name)}
        raise _not_found("server_type")

    @staticmethod
    def _image(spec: tuple[int, str, str, str, str]) -> dict[str, Any]:
        iid, name, flavor, version, arch = spec
        return {"id": iid, "type": "system", "status": "available", "name": name,
                "description": f"Debian {version}", "image_size": None, "disk_size": 5,
                "created": "2025-01-01T00:00:00+00:00", "created_from": None, "bound_to": None,
                "os_flavor": flavor, "os_version": version,
                "rapid_deploy": True, "protection": {"delete": False}, "deprecated": None, "deleted": None,
                "labels": {}, "architecture": arch}  # fmt: skip

    def list_images(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = [
            self._image(spec)
            for spec in IMAGES
            if (not query.get("name") or spec[1] in query["name"])
            and (not query.get("architecture") or spec[4] in query["architecture"])
            and (not query.get("type") or "system" in query["type"])
        ]
        return _page("images", found)

    def get_image(self, id_: str) -> dict[str, Any]:
        for spec in IMAGES:
            if str(spec[0]) == id_:
                return {"image": self._image(spec)}
        raise _not_found("image")

    # --- SSH keys -------------------------------------------------------------------------------

    def _ssh_key(self, key_id: str) -> dict[str, Any]:
        key = self.ssh_keys.get(_int_id(key_id, "SSH key"))
        if key is None:
            raise _not_found("SSH key")
        return key

    def list_ssh_keys(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = [
            k
            for k in self.ssh_keys.values()
            if (not query.get("name") or k["name"] in query["name"])
            and (not query.get("fingerprint") or k["fingerprint"] in query["fingerprint"])
            and _select(k["labels"], (query.get("label_selector") or [None])[0])
        ]
        return _page("ssh_keys", found)

    def create_ssh_key(self, body: dict[str, Any]) -> dict[str, Any]:
        name, public_key = body.get("name"), body.get("public_key")
        if not isinstance(name, str) or not name:
            raise _invalid("name", "name is required")
        if not isinstance(public_key, str):
            raise _invalid("public_key", "public_key is required")
        public_key = public_key.strip()
        print_ = fingerprint(public_key)
        labels = _labels(body.get("labels"))
        if any(k["fingerprint"] == print_ for k in self.ssh_keys.values()):
            raise _unique("public_key", "SSH key with the same fingerprint already exists")
        if any(k["name"] == name for k in self.ssh_keys.values()):
            raise _unique("name", "SSH key with the same name already exists")
        key = {"id": next(self._ids), "name": name, "fingerprint": print_, "public_key": public_key,
               "labels": labels, "created": _now()}  # fmt: skip
        self.ssh_keys[key["id"]] = key
        return {"ssh_key": key}

    def get_ssh_key(self, key_id: str) -> dict[str, Any]:
        return {"ssh_key": self._ssh_key(key_id)}

    def update_ssh_key(self, key_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self._ssh_key(key_id)
        if "name" in body:
            if any(k["name"] == body["name"] and k is not key for k in self.ssh_keys.values()):
                raise _unique("name", "SSH key with the same name already exists")
            key["name"] = body["name"]
        if "labels" in body:
            key["labels"] = _labels(body["labels"])
        return {"ssh_key": key}

    def delete_ssh_key(self, key_id: str) -> None:
        self.ssh_keys.pop(self._ssh_key(key_id)["id"])

    # --- firewalls ------------------------------------------------------------------------------

    def _firewall(self, firewall_id: str | int) -> dict[str, Any]:
        fw = self.firewalls.get(firewall_id if isinstance(firewall_id, int) else _int_id(firewall_id, "firewall"))
        if fw is None:
            raise _not_found("firewall")
        return fw

    def _firewall_json(self, fw: dict[str, Any]) -> dict[str, Any]:
        applied: list[dict[str, Any]] = [
            {"type": "server", "server": {"id": sid}} for sid, s in self.servers.items() if fw["id"] in s["firewalls"]
        ]
        for selector in fw["label_selectors"]:
            matched = [{"type": "server", "server": {"id": sid}} for sid, s in self.servers.items()
                       if _select(s["labels"], selector)]  # fmt: skip
            applied.append({"type": "label_selector", "label_selector": {"selector": selector},
                            "applied_to_resources": matched})  # fmt: skip
        return {"id": fw["id"], "name": fw["name"], "labels": fw["labels"], "created": fw["created"],
                "rules": fw["rules"], "applied_to": applied}  # fmt: skip

    @staticmethod
    def _rules(value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise _invalid("rules", "rules must be a list")
        rules = []
        for rule in value:
            direction, protocol = rule.get("direction"), rule.get("protocol")
            if direction not in ("in", "out"):
                raise _invalid("rules", f"invalid direction {direction!r}")
            if protocol not in ("tcp", "udp", "icmp", "esp", "gre"):
                raise _invalid("rules", f"invalid protocol {protocol!r}")
            port = rule.get("port")
            if (protocol in ("tcp", "udp")) != (port is not None):
                raise _invalid("rules", "port is required for tcp and udp and forbidden otherwise")
            ips = {"source_ips": rule.get("source_ips") or [], "destination_ips": rule.get("destination_ips") or []}
            for key, networks in ips.items():
                for network in networks:
                    try:
                        ipaddress.ip_network(network)
                    except ValueError:
                        raise _invalid("rules", f"{key}: {network!r} is not a network") from None
            if direction == "in" and not ips["source_ips"]:
                raise _invalid("rules", "source_ips are required for direction in")
            rules.append({"direction": direction, "protocol": protocol, "port": port, **ips,
                          "description": rule.get("description")})  # fmt: skip
        return rules

    def _apply_firewall(self, fw: dict[str, Any], targets: Any, remove: bool = False) -> list[dict[str, Any]]:
        actions = []
        for target in targets or []:
            if target.get("type") == "server":
                server = self._server(int(target["server"]["id"]))
                if remove:
                    server["firewalls"].discard(fw["id"])
                else:
                    if fw["id"] in server["firewalls"]:
                        raise ApiError(422, "firewall_already_applied", "firewall already applied to the server")
                    server["firewalls"].add(fw["id"])
                command = "remove_firewall" if remove else "apply_firewall"
                actions.append(self._action(command, [(fw["id"], "firewall"), (server["id"], "server")]))
            elif target.get("type") == "label_selector":
                selector = target["label_selector"]["selector"]
                if remove:
                    fw["label_selectors"] = [s for s in fw["label_selectors"] if s != selector]
                elif selector not in fw["label_selectors"]:
                    fw["label_selectors"].append(selector)
                actions.append(
                    self._action("remove_firewall" if remove else "apply_firewall", [(fw["id"], "firewall")])
                )
            else:
                raise _invalid("apply_to", f"unknown resource type {target.get('type')!r}")
        return actions

    def list_firewalls(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = [self._firewall_json(f) for f in self.firewalls.values()
                 if (not query.get("name") or f["name"] in query["name"])
                 and _select(f["labels"], (query.get("label_selector") or [None])[0])]  # fmt: skip
        return _page("firewalls", found)

    def create_firewall(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid("name", "name is required")
        if any(f["name"] == name for f in self.firewalls.values()):
            raise _unique("name", "name is already used")
        fw = {"id": next(self._ids), "name": name, "labels": _labels(body.get("labels")), "created": _now(),
              "rules": self._rules(body.get("rules") or []), "label_selectors": []}  # fmt: skip
        self.firewalls[fw["id"]] = fw
        actions = [self._action("set_firewall_rules", [(fw["id"], "firewall")])]
        actions += self._apply_firewall(fw, body.get("apply_to"))
        return {"firewall": self._firewall_json(fw), "actions": actions}

    def get_firewall(self, firewall_id: str) -> dict[str, Any]:
        return {"firewall": self._firewall_json(self._firewall(firewall_id))}

    def update_firewall(self, firewall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        fw = self._firewall(firewall_id)
        if "name" in body:
            if any(f["name"] == body["name"] and f is not fw for f in self.firewalls.values()):
                raise _unique("name", "name is already used")
            fw["name"] = body["name"]
        if "labels" in body:
            fw["labels"] = _labels(body["labels"])
        return {"firewall": self._firewall_json(fw)}

    def delete_firewall(self, firewall_id: str) -> None:
        fw = self._firewall(firewall_id)
        if any(fw["id"] in s["firewalls"] for s in self.servers.values()) or fw["label_selectors"]:
            raise ApiError(422, "resource_in_use", "Firewall must not be in use to be deleted")
        self.firewalls.pop(fw["id"])

    def firewall_set_rules(self, firewall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        fw = self._firewall(firewall_id)
        fw["rules"] = self._rules(body.get("rules"))
        applied = [(sid, "server") for sid, s in self.servers.items() if fw["id"] in s["firewalls"]]
        return {"actions": [self._action("set_firewall_rules", [(fw["id"], "firewall"), *applied])]}

    def firewall_apply(self, firewall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"actions": self._apply_firewall(self._firewall(firewall_id), body.get("apply_to"))}

    def firewall_remove(self, firewall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"actions": self._apply_firewall(self._firewall(firewall_id), body.get("remove_from"), remove=True)}

    # --- servers --------------------------------------------------------------------------------

    def _server(self, server_id: str | int) -> dict[str, Any]:
        server = self.servers.get(server_id if isinstance(server_id, int) else _int_id(server_id, "server"))
        if server is None:
            raise _not_found("server")
        return server

    def _server_json(self, s: dict[str, Any]) -> dict[str, Any]:
        lid, description, country, city, zone, dc = LOCATIONS[s["location"]]
        location = {"id": lid, "name": s["location"], "description": description, "country": country, "city": city,
                    "latitude": 0.0, "longitude": 0.0, "network_zone": zone}  # fmt: skip
        server_type = self._server_type(s["server_type"])
        image = self._image(next(spec for spec in IMAGES if spec[0] == s["image"]))
        ipv4 = None
        if s["ipv4"]:
            ipv4 = {"id": s["id"] + 1_000_000, "ip": s["ipv4"], "blocked": False,
                    "dns_ptr": f"static.{'.'.join(reversed(s['ipv4'].split('.')))}.clients.your-server.de"}  # fmt: skip
        ipv6 = None
        if s["ipv6"]:
            ipv6 = {"id": s["id"] + 2_000_000, "ip": s["ipv6"], "blocked": False, "dns_ptr": []}
        return {
            "id": s["id"], "name": s["name"], "status": s["status"], "created": s["created"],
            "public_net": {"ipv4": ipv4, "ipv6": ipv6, "floating_ips": [],
                           "firewalls": [{"id": f, "status": "applied"} for f in sorted(s["firewalls"])]},
            "private_net": [], "server_type": server_type,
            "datacenter": {"id": lid, "name": dc, "description": f"{city} DC", "location": location,
                           "server_types": {"supported": [], "available": [], "available_for_migration": []}},
            "location": location, "image": image, "iso": None, "rescue_enabled": False, "locked": False,
            "backup_window": s["backup_window"], "outgoing_traffic": 0, "ingoing_traffic": 0,
            "included_traffic": server_type["included_traffic"], "protection": dict(s["protection"]),
            "labels": s["labels"], "load_balancers": [], "primary_disk_size": s["disk"],
            "volumes": sorted(v["id"] for v in self.volumes.values() if v["server"] == s["id"]),
            "placement_group": None,
        }  # fmt: skip

    def list_servers(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = [self._server_json(s) for s in self.servers.values()
                 if (not query.get("name") or s["name"] in query["name"])
                 and _select(s["labels"], (query.get("label_selector") or [None])[0])]  # fmt: skip
        return _page("servers", found)

    def _resolve_server_type(self, value: Any) -> str:
        for name, spec in SERVER_TYPES.items():
            if value in (name, spec[0], str(spec[0])):
                return name
        raise _invalid("server_type", f"server type {value!r} not found")

    def create_server(self, body: dict[str, Any]) -> dict[str, Any]:
        """Reserve the server under the model lock; the caller boots it (slow) outside it."""
        name = body.get("name")
        if not isinstance(name, str) or not HOSTNAME_RE.match(name):
            raise _invalid("name", "name must be a valid hostname as per RFC 1123")
        if any(s["name"] == name for s in self.servers.values()):
            raise _unique("name", "server name is already used")
        type_name = self._resolve_server_type(body.get("server_type"))
        arch = SERVER_TYPES[type_name][5]
        image_value = body.get("image")
        image = next((spec for spec in IMAGES if image_value in (spec[0], str(spec[0]))), None)
        image = image or next((spec for spec in IMAGES if spec[1] == image_value and spec[4] == arch), None)
        if image is None:
            raise _invalid("image", f"image {image_value!r} not found")
        if image[4] != arch:
            raise ApiError(412, "image_wrong_architecture", "image has a different architecture than the server type")
        location = body.get("location") or "fsn1"
        if body.get("datacenter"):
            location = next((loc for loc, spec in LOCATIONS.items() if spec[5] == body["datacenter"]), None)
        if location not in LOCATIONS:
            raise _invalid("location", f"location {location!r} not found")
        keys = []
        for ref in body.get("ssh_keys") or []:
            key = next((k for k in self.ssh_keys.values() if ref in (k["id"], str(k["id"]), k["name"])), None)
            if key is None:
                raise _invalid("ssh_keys", f"SSH key {ref!r} not found")
            keys.append(key["public_key"])
        firewalls = set()
        for entry in body.get("firewalls") or []:
            firewalls.add(self._firewall(int(entry["firewall"]))["id"])
        user_data = body.get("user_data")
        if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > USER_DATA_LIMIT):
            raise _invalid("user_data", "user_data must be a string of at most 32 KiB")
        public_net = body.get("public_net") or {}
        sid = next(self._ids)
        server = {
            "id": sid, "name": name, "status": "initializing", "created": _now(), "server_type": type_name,
            "image": image[0], "image_name": image[1], "location": location, "labels": _labels(body.get("labels")),
            "backup_window": None, "protection": {"delete": False, "rebuild": False}, "firewalls": firewalls,
            "ipv4": None, "ipv6": f"2001:db8:{sid % 65536:x}::/64" if public_net.get("enable_ipv6", True) else None,
            "disk": SERVER_TYPES[type_name][3], "user_data": user_data, "keys": keys,
            "start": body.get("start_after_create", True),
        }  # fmt: skip
        self.servers[sid] = server
        return server

    def finish_server(self, server: dict[str, Any], ipv4: str) -> dict[str, Any]:
        server["ipv4"] = ipv4
        server["status"] = "running" if server["start"] else "off"
        sid = server["id"]
        create = self._action("create_server", [(sid, "server")])
        next_actions = [self._action("start_server", [(sid, "server")])] if server["start"] else []
        next_actions += [
            self._action("apply_firewall", [(f, "firewall"), (sid, "server")]) for f in server["firewalls"]
        ]
        return {"server": self._server_json(server), "action": create, "next_actions": next_actions,
                "root_password": None if server["keys"] else "not-a-real-password"}  # fmt: skip

    def get_server(self, server_id: str) -> dict[str, Any]:
        return {"server": self._server_json(self._server(server_id))}

    def update_server(self, server_id: str, body: dict[str, Any]) -> dict[str, Any]:
        server = self._server(server_id)
        if "name" in body:
            if not HOSTNAME_RE.match(str(body["name"])):
                raise _invalid("name", "name must be a valid hostname as per RFC 1123")
            if any(s["name"] == body["name"] and s is not server for s in self.servers.values()):
                raise _unique("name", "server name is already used")
            server["name"] = body["name"]
        if "labels" in body:
            server["labels"] = _labels(body["labels"])
        return {"server": self._server_json(server)}

    def delete_server(self, server_id: str) -> dict[str, Any]:
        server = self._server(server_id)
        if server["protection"]["delete"]:
            raise ApiError(423, "protected", "server is delete protected")
        # Hetzner detaches a deleted server's volumes (they stay, unattached).
        for volume in self.volumes.values():
            if volume["server"] == server["id"]:
                volume["server"] = None
                self.machines.volume_detach(volume["id"], server["id"])
        self.servers.pop(server["id"])
        return {"action": self._action("delete_server", [(server["id"], "server")])}

    def server_action(self, server_id: str, command: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool | None]:
        """The action's answer, and the power state the machine must take (None: unchanged)."""
        server = self._server(server_id)
        sid = server["id"]
        power: bool | None = None
        if command in ("poweron",):
            server["status"], power = "running", True
        elif command in ("poweroff", "shutdown"):
            server["status"], power = "off", False
        elif command == "change_type":
            if server["status"] != "off":
                raise ApiError(409, "conflict", "server must be powered off to change its type")
            new_type = self._resolve_server_type(body.get("server_type"))
            if SERVER_TYPES[new_type][5] != SERVER_TYPES[server["server_type"]][5]:
                raise ApiError(412, "server_type_incompatible", "the architecture cannot change")
            if not body.get("upgrade_disk", True) or SERVER_TYPES[new_type][3] >= server["disk"]:
                server["disk"] = SERVER_TYPES[new_type][3] if body.get("upgrade_disk", True) else server["disk"]
            else:
                raise ApiError(412, "server_type_disk_too_small", "the new type's disk is too small")
            server["server_type"] = new_type
            # Hetzner copies the disk, then starts the server again itself.
            server["status"], power = "running", True
        elif command == "enable_backup":
            server["backup_window"] = "22-02"
        elif command == "disable_backup":
            server["backup_window"] = None
        elif command == "change_protection":
            for key in ("delete", "rebuild"):
                if body.get(key) is not None:
                    server["protection"][key] = bool(body[key])
        command_names = {"poweron": "start_server", "poweroff": "stop_server", "shutdown": "shutdown_server",
                         "change_type": "change_server_type"}  # fmt: skip
        return {"action": self._action(command_names.get(command, command), [(sid, "server")])}, power

    # --- volumes --------------------------------------------------------------------------------

    def _volume(self, volume_id: str | int) -> dict[str, Any]:
        volume = self.volumes.get(volume_id if isinstance(volume_id, int) else _int_id(volume_id, "volume"))
        if volume is None:
            raise _not_found("volume")
        return volume

    def _volume_json(self, v: dict[str, Any]) -> dict[str, Any]:
        lid, description, country, city, zone, _ = LOCATIONS[v["location"]]
        location = {"id": lid, "name": v["location"], "description": description, "country": country, "city": city,
                    "latitude": 0.0, "longitude": 0.0, "network_zone": zone}  # fmt: skip
        return {"id": v["id"], "name": v["name"], "server": v["server"], "status": "available", "location": location,
                "size": v["size"], "format": v["format"], "protection": dict(v["protection"]), "labels": v["labels"],
                "linux_device": f"/dev/disk/by-id/scsi-0HC_Volume_{v['id']}", "created": v["created"]}  # fmt: skip

    def list_volumes(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = [self._volume_json(v) for v in self.volumes.values()
                 if (not query.get("name") or v["name"] in query["name"])
                 and _select(v["labels"], (query.get("label_selector") or [None])[0])]  # fmt: skip
        return _page("volumes", found)

    def create_volume(self, body: dict[str, Any]) -> dict[str, Any]:
        name, size = body.get("name"), body.get("size")
        if not isinstance(name, str) or not HOSTNAME_RE.match(name):
            raise _invalid("name", "name must be a valid hostname as per RFC 1123")
        if any(v["name"] == name for v in self.volumes.values()):
            raise _unique("name", "volume name is already used")
        if not isinstance(size, int) or not 10 <= size <= 10240:
            raise _invalid("size", "size must be an integer from 10 to 10240 (GB)")
        fs_format = body.get("format")
        if fs_format not in (None, "ext4", "xfs"):
            raise _invalid("format", "format must be ext4 or xfs")
        server = None
        if body.get("server") is not None:
            server = self._server(int(body["server"]))
            if body.get("location") is not None:
                raise _invalid("location", "location and server are mutually exclusive")
        elif body.get("automount"):
            raise _invalid("automount", "automount needs a server")
        location = server["location"] if server else body.get("location")
        if isinstance(location, dict):
            location = location.get("name")
        if location not in LOCATIONS:
            raise _invalid("location", f"location {location!r} not found")
        volume = {"id": next(self._ids), "name": name, "size": size, "format": fs_format, "location": location,
                  "server": None, "protection": {"delete": False}, "labels": _labels(body.get("labels")),
                  "created": _now()}  # fmt: skip
        self.machines.volume_create(volume["id"], size, fs_format)
        self.volumes[volume["id"]] = volume
        action = self._action("create_volume", [(volume["id"], "volume")])
        next_actions = []
        if server is not None:
            next_actions.append(self._attach(volume, server))
        return {"volume": self._volume_json(volume), "action": action, "next_actions": next_actions}

    def _attach(self, volume: dict[str, Any], server: dict[str, Any]) -> dict[str, Any]:
        if volume["server"] is not None:
            raise ApiError(422, "volume_already_attached", "volume is already attached to a server")
        if volume["location"] != server["location"]:
            raise ApiError(422, "invalid_input", "volume and server are not in the same location")
        self.machines.volume_attach(volume["id"], server["id"])
        volume["server"] = server["id"]
        return self._action("attach_volume", [(volume["id"], "volume"), (server["id"], "server")])

    def get_volume(self, volume_id: str) -> dict[str, Any]:
        return {"volume": self._volume_json(self._volume(volume_id))}

    def update_volume(self, volume_id: str, body: dict[str, Any]) -> dict[str, Any]:
        volume = self._volume(volume_id)
        if "name" in body:
            if any(v["name"] == body["name"] and v is not volume for v in self.volumes.values()):
                raise _unique("name", "volume name is already used")
            volume["name"] = body["name"]
        if "labels" in body:
            volume["labels"] = _labels(body["labels"])
        return {"volume": self._volume_json(volume)}

    def delete_volume(self, volume_id: str) -> None:
        volume = self._volume(volume_id)
        if volume["protection"]["delete"]:
            raise ApiError(423, "protected", "volume is delete protected")
        if volume["server"] is not None:
            raise ApiError(422, "volume_attached", "volume must be detached before it is deleted")
        self.machines.volume_delete(volume["id"])
        self.volumes.pop(volume["id"])

    def volume_action(self, volume_id: str, command: str, body: dict[str, Any]) -> dict[str, Any]:
        volume = self._volume(volume_id)
        vid = volume["id"]
        if command == "attach":
            return {"action": self._attach(volume, self._server(int(body.get("server") or 0)))}
        if command == "detach":
            if volume["server"] is not None:
                self.machines.volume_detach(vid, volume["server"])
            resources = [(vid, "volume")] + ([(volume["server"], "server")] if volume["server"] else [])
            volume["server"] = None
            return {"action": self._action("detach_volume", resources)}
        if command == "resize":
            size = body.get("size")
            if not isinstance(size, int) or size <= volume["size"] or size > 10240:
                raise _invalid("size", "size must be greater than the volume's and at most 10240 (GB)")
            self.machines.volume_resize(vid, size)
            volume["size"] = size
            return {"action": self._action("resize_volume", [(vid, "volume")])}
        if body.get("delete") is not None:  # change_protection
            volume["protection"]["delete"] = bool(body["delete"])
        return {"action": self._action("change_protection", [(vid, "volume")])}

    # --- zones and RRSets -----------------------------------------------------------------------

    def _zone(self, id_or_name: str) -> dict[str, Any]:
        for zone in self.zones.values():
            if id_or_name in (str(zone["id"]), zone["name"]):
                return zone
        raise _not_found("zone")

    def _zone_json(self, zone: dict[str, Any]) -> dict[str, Any]:
        count = sum(len(r["records"]) for (zid, _, _), r in self.rrsets.items() if zid == zone["id"])
        return {**zone, "record_count": count}

    def list_zones(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = [self._zone_json(z) for z in self.zones.values()
                 if (not query.get("name") or z["name"] in query["name"])
                 and (not query.get("mode") or z["mode"] in query["mode"])
                 and _select(z["labels"], (query.get("label_selector") or [None])[0])]  # fmt: skip
        return _page("zones", found)

    def create_zone(self, body: dict[str, Any]) -> dict[str, Any]:
        name, mode = body.get("name"), body.get("mode")
        if not isinstance(name, str) or not HOSTNAME_RE.match(name) or "." not in name or name != name.lower():
            raise _invalid("name", "name must be a lowercase domain name")
        if mode not in ("primary", "secondary"):
            raise _invalid("mode", "mode must be primary or secondary")
        if any(z["name"] == name for z in self.zones.values()):
            raise _unique("name", "zone name is already used")
        primaries = body.get("primary_nameservers") or []
        if (mode == "secondary") != bool(primaries):
            raise _invalid("primary_nameservers", "required for secondary zones, forbidden for primary ones")
        ttl = body.get("ttl", 3600)
        zone = {
            "id": next(self._ids), "name": name, "created": _now(), "ttl": ttl, "mode": mode,
            "primary_nameservers": [{"port": 53, **p} for p in primaries], "protection": {"delete": False},
            "labels": _labels(body.get("labels")),
            "authoritative_nameservers": {"assigned": NAMESERVERS, "delegated": [],
                                          "delegation_last_check": None, "delegation_status": "unknown"},
            "registrar": "other", "status": "ok",
        }  # fmt: skip
        self.zones[zone["id"]] = zone
        if mode == "primary":
            serial = datetime.now(UTC).strftime("%Y%m%d01")
            soa = f"{NAMESERVERS[0]} dns.hetzner.com. {serial} 86400 10800 3600000 3600"
            self._put_rrset(zone, "@", "SOA", None, {}, [{"value": soa}])
            self._put_rrset(zone, "@", "NS", None, {}, [{"value": ns} for ns in NAMESERVERS])
        return {"zone": self._zone_json(zone), "action": self._action("create_zone", [(zone["id"], "zone")])}

    def get_zone(self, id_or_name: str) -> dict[str, Any]:
        return {"zone": self._zone_json(self._zone(id_or_name))}

    def update_zone(self, id_or_name: str, body: dict[str, Any]) -> dict[str, Any]:
        zone = self._zone(id_or_name)
        if "labels" in body:
            zone["labels"] = _labels(body["labels"])
        return {"zone": self._zone_json(zone)}

    def delete_zone(self, id_or_name: str) -> dict[str, Any]:
        zone = self._zone(id_or_name)
        if zone["protection"]["delete"]:
            raise ApiError(423, "protected", "zone is delete protected")
        for key in [k for k in self.rrsets if k[0] == zone["id"]]:
            self._publish(zone, self.rrsets.pop(key), removed=True)
        self.zones.pop(zone["id"])
        return {"action": self._action("delete_zone", [(zone["id"], "zone")])}

    def zone_action(self, id_or_name: str, command: str, body: dict[str, Any]) -> dict[str, Any]:
        zone = self._zone(id_or_name)
        if command == "change_ttl":
            if not isinstance(body.get("ttl"), int):
                raise _invalid("ttl", "ttl must be an integer")
            zone["ttl"] = body["ttl"]
        elif command == "change_protection":
            if body.get("delete") is not None:
                zone["protection"]["delete"] = bool(body["delete"])
        elif command == "change_primary_nameservers":
            zone["primary_nameservers"] = [{"port": 53, **p} for p in body.get("primary_nameservers") or []]
        return {"action": self._action(command, [(zone["id"], "zone")])}

    def _rrset(self, zone: dict[str, Any], name: str, rtype: str) -> dict[str, Any]:
        rrset = self.rrsets.get((zone["id"], name, rtype))
        if rrset is None:
            raise _not_found("rrset")
        return rrset

    def _publish(self, zone: dict[str, Any], rrset: dict[str, Any], removed: bool = False) -> None:
        fqdn = zone["name"] if rrset["name"] == "@" else f"{rrset['name']}.{zone['name']}"
        values = [] if removed else [r["value"] for r in rrset["records"]]
        self.machines.publish(fqdn, rrset["type"], values)

    def _put_rrset(self, zone: dict[str, Any], name: str, rtype: str, ttl: Any, labels: dict[str, str],
                   records: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
        rrset = {"id": f"{name}/{rtype}", "name": name, "type": rtype, "ttl": ttl, "labels": labels,
                 "protection": {"change": False}, "records": records, "zone": zone["id"]}  # fmt: skip
        self.rrsets[(zone["id"], name, rtype)] = rrset
        self._publish(zone, rrset)
        return rrset

    @staticmethod
    def _records(value: Any, rtype: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not value:
            raise _invalid("records", "at least one record is required")
        records = []
        for record in value:
            text = record.get("value") if isinstance(record, dict) else None
            if not isinstance(text, str) or not text:
                raise _invalid("records", "a record needs a value")
            if rtype in ("A", "AAAA"):
                try:
                    address = ipaddress.ip_address(text)
                except ValueError:
                    raise _invalid("records", f"{text!r} is not an IP address") from None
                if (address.version == 4) != (rtype == "A"):
                    raise _invalid("records", f"{text!r} is not an {rtype} record's address")
            records.append({"value": text, **({"comment": record["comment"]} if record.get("comment") else {})})
        return records

    def list_rrsets(self, id_or_name: str, query: dict[str, list[str]]) -> dict[str, Any]:
        zone = self._zone(id_or_name)
        found = [r for (zid, _, _), r in self.rrsets.items() if zid == zone["id"]
                 and (not query.get("name") or r["name"] in query["name"])
                 and (not query.get("type") or r["type"] in query["type"])]  # fmt: skip
        return _page("rrsets", found)

    def create_rrset(self, id_or_name: str, body: dict[str, Any]) -> dict[str, Any]:
        zone = self._zone(id_or_name)
        if zone["mode"] != "primary":
            raise ApiError(422, "incorrect_zone_mode", "This operation is not supported for this Zone's mode.")
        name, rtype = body.get("name"), body.get("type")
        if not isinstance(name, str) or not RRSET_NAME_RE.match(name):
            raise _invalid("name", "name must be relative to the zone and lowercase (@ for the apex)")
        if rtype not in RRSET_TYPES:
            raise _invalid("type", f"invalid type {rtype!r}")
        if (zone["id"], name, rtype) in self.rrsets:
            raise _unique("name", f"RRSet {name}/{rtype} already exists in zone {zone['name']}")
        ttl = body.get("ttl")
        if ttl is not None and not isinstance(ttl, int):
            raise _invalid("ttl", "ttl must be an integer")
        rrset = self._put_rrset(
            zone, name, rtype, ttl, _labels(body.get("labels")), self._records(body.get("records"), rtype)
        )
        return {"rrset": rrset, "action": self._action("create_rrset", [(zone["id"], "zone")])}

    def get_rrset(self, id_or_name: str, name: str, rtype: str) -> dict[str, Any]:
        return {"rrset": self._rrset(self._zone(id_or_name), name, rtype)}

    def update_rrset(self, id_or_name: str, name: str, rtype: str, body: dict[str, Any]) -> dict[str, Any]:
        rrset = self._rrset(self._zone(id_or_name), name, rtype)
        if rrset["protection"]["change"] and "labels" in body:
            raise ApiError(423, "protected", "rrset is change protected")
        if "labels" in body:
            rrset["labels"] = _labels(body["labels"])
        return {"rrset": rrset}

    def delete_rrset(self, id_or_name: str, name: str, rtype: str) -> dict[str, Any]:
        zone = self._zone(id_or_name)
        rrset = self._rrset(zone, name, rtype)
        if rrset["protection"]["change"]:
            raise ApiError(423, "protected", "rrset is change protected")
        self.rrsets.pop((zone["id"], name, rtype))
        self._publish(zone, rrset, removed=True)
        return {"action": self._action("delete_rrset", [(zone["id"], "zone")])}

    def rrset_action(
        self, id_or_name: str, name: str, rtype: str, command: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        zone = self._zone(id_or_name)
        rrset = self._rrset(zone, name, rtype)
        if rrset["protection"]["change"] and command != "change_protection":
            raise ApiError(423, "protected", "rrset is change protected")
        if command == "set_records":
            rrset["records"] = self._records(body.get("records"), rtype)
        elif command == "add_records":
            rrset["records"] = rrset["records"] + [
                r for r in self._records(body.get("records"), rtype) if r not in rrset["records"]
            ]
            if "ttl" in body:
                rrset["ttl"] = body["ttl"]
        elif command == "remove_records":
            gone = {r["value"] for r in self._records(body.get("records"), rtype)}
            rrset["records"] = [r for r in rrset["records"] if r["value"] not in gone]
        elif command == "change_ttl":
            if body.get("ttl") is not None and not isinstance(body["ttl"], int):
                raise _invalid("ttl", "ttl must be an integer or null")
            rrset["ttl"] = body.get("ttl")
        elif command == "change_protection" and body.get("change") is not None:
            rrset["protection"]["change"] = bool(body["change"])
        if command in ("set_records", "add_records", "remove_records"):
            if rrset["records"]:
                self._publish(zone, rrset)
            else:  # an RRSet without records does not exist
                self.rrsets.pop((zone["id"], name, rtype))
                self._publish(zone, rrset, removed=True)
        name_of = "change_rrset_protection" if command == "change_protection" else f"{command}_rrset"
        return {"action": self._action(name_of, [(zone["id"], "zone")])}


def _page(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    pagination = {"page": 1, "per_page": max(len(items), 25), "previous_page": None, "next_page": None,
                  "last_page": 1, "total_entries": len(items)}  # fmt: skip
    return {key: items, "meta": {"pagination": pagination}}


# --- HTTP ---------------------------------------------------------------------------------------

Handler = Callable[..., Any]
ID = r"([^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"^/v1{pattern}$"), op)
    for method, pattern, op in [
        ("GET", "/actions", "list_actions"),
        ("GET", f"/actions/{ID}", "get_action"),
        ("GET", "/server_types", "list_server_types"),
        ("GET", f"/server_types/{ID}", "get_server_type"),
        ("GET", "/images", "list_images"),
        ("GET", f"/images/{ID}", "get_image"),
        ("GET", "/ssh_keys", "list_ssh_keys"),
        ("POST", "/ssh_keys", "create_ssh_key"),
        ("GET", f"/ssh_keys/{ID}", "get_ssh_key"),
        ("PUT", f"/ssh_keys/{ID}", "update_ssh_key"),
        ("DELETE", f"/ssh_keys/{ID}", "delete_ssh_key"),
        ("GET", "/firewalls", "list_firewalls"),
        ("POST", "/firewalls", "create_firewall"),
        ("GET", f"/firewalls/{ID}", "get_firewall"),
        ("PUT", f"/firewalls/{ID}", "update_firewall"),
        ("DELETE", f"/firewalls/{ID}", "delete_firewall"),
        ("POST", f"/firewalls/{ID}/actions/set_rules", "firewall_set_rules"),
        ("POST", f"/firewalls/{ID}/actions/apply_to_resources", "firewall_apply"),
        ("POST", f"/firewalls/{ID}/actions/remove_from_resources", "firewall_remove"),
        ("GET", "/servers", "list_servers"),
        ("POST", "/servers", "create_server"),
        ("GET", f"/servers/{ID}", "get_server"),
        ("PUT", f"/servers/{ID}", "update_server"),
        ("DELETE", f"/servers/{ID}", "delete_server"),
        ("POST", f"/servers/{ID}/actions/(poweron|poweroff|shutdown|change_type|enable_backup|disable_backup"
                 "|change_protection)", "server_action"),
        ("GET", "/volumes", "list_volumes"),
        ("POST", "/volumes", "create_volume"),
        ("GET", f"/volumes/{ID}", "get_volume"),
        ("PUT", f"/volumes/{ID}", "update_volume"),
        ("DELETE", f"/volumes/{ID}", "delete_volume"),
        ("POST", f"/volumes/{ID}/actions/(attach|detach|resize|change_protection)", "volume_action"),
        ("GET", "/zones", "list_zones"),
        ("POST", "/zones", "create_zone"),
        ("GET", f"/zones/{ID}", "get_zone"),
        ("PUT", f"/zones/{ID}", "update_zone"),
        ("DELETE", f"/zones/{ID}", "delete_zone"),
        ("POST", f"/zones/{ID}/actions/(change_ttl|change_protection|change_primary_nameservers)", "zone_action"),
        ("GET", f"/zones/{ID}/rrsets", "list_rrsets"),
        ("POST", f"/zones/{ID}/rrsets", "create_rrset"),
        ("GET", f"/zones/{ID}/rrsets/{ID}/{ID}", "get_rrset"),
        ("PUT", f"/zones/{ID}/rrsets/{ID}/{ID}", "update_rrset"),
        ("DELETE", f"/zones/{ID}/rrsets/{ID}/{ID}", "delete_rrset"),
        ("POST", f"/zones/{ID}/rrsets/{ID}/{ID}/actions/(set_records|add_records|remove_records|change_ttl"
                 "|change_protection)", "rrset_action"),
    ]
]  # fmt: skip
# Operations that take the query string / the JSON body after their path arguments.
TAKES_QUERY = {"list_actions", "list_server_types", "list_images", "list_ssh_keys", "list_firewalls", "list_servers",
               "list_zones", "list_rrsets", "list_volumes"}  # fmt: skip


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    status: int


class HetznerAPI:
    """The model served over HTTP on 127.0.0.1; `url` is what `hcloud:endpoint` takes."""

    def __init__(self, cloud: HetznerCloud | None = None, *, machines: Machines | None = None) -> None:
        self.cloud = cloud or HetznerCloud(machines=machines or NoMachines())
        self.requests: list[Request] = []
        """Every request answered, in order (method, path, query, status; never a body)."""
        self.unknown: list[str] = []
        """`METHOD /path` of each request no route matched: tests assert it stays empty."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> HetznerAPI:
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

            def _handle(self) -> None:
                status, body = api.handle(self.command, self.path, self.headers.get("Authorization"), self._body())
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hetzner-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HetznerAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, method: str, target: str, authorization: str | None, raw: bytes) -> tuple[int, Any]:
        """One request: (status, JSON body or None for 204)."""
        parts = urlsplit(target)
        path, query = unquote(parts.path), parse_qs(parts.query)
        try:
            status, body = self._dispatch(method, path, query, authorization, raw)
        except ApiError as error:
            status, body = error.status, error.body()
        except Exception as error:  # a bug here must surface as an answer, not a hung client
            log.exception("hetzner stand-in: %s %s", method, path)
            status, body = 500, ApiError(500, "server_error", f"stand-in error: {error}").body()
        self.requests.append(Request(method, path, parts.query, status))
        log.info("%s %s%s -> %s", method, path, f"?{parts.query}" if parts.query else "", status)
        return status, body

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]], authorization: str | None,
                  raw: bytes) -> tuple[int, Any]:  # fmt: skip
        found = next(((op, m) for verb, pattern, op in ROUTES if verb == method and (m := pattern.match(path))), None)
        if found is None:
            self.unknown.append(f"{method} {path}")
            raise ApiError(404, "not_found", f"the Hetzner stand-in has no route {method} {path}")
        op, match = found
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not authorization or not authorization.startswith("Bearer ") or len(token) != TOKEN_LENGTH:
            raise ApiError(401, "unauthorized", "unable to authenticate")
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError(400, "json_error", "invalid JSON in the request body") from None
        args: list[Any] = list(match.groups())
        if op in TAKES_QUERY:
            args.append(query)
        elif method in ("POST", "PUT"):
            if not isinstance(body, dict):
                raise ApiError(400, "json_error", "the request body must be a JSON object")
            args.append(body)
        cloud = self.cloud
        if op == "create_server":
            return self._create_server(args[0])
        with cloud.lock:
            if op == "server_action":
                answer, power = cloud.server_action(*args)
            else:
                answer, power = getattr(cloud, op)(*args), None
            machine_gone = op == "delete_server"
        if power is not None:
            cloud.machines.power(int(args[0]), power)
        if machine_gone:
            cloud.machines.delete(int(args[0]))
        if answer is None:
            return 204, None
        return (201 if method == "POST" else 200), answer  # Hetzner answers 201 to every POST, actions too

    def _create_server(self, body: dict[str, Any]) -> tuple[int, Any]:
        cloud = self.cloud
        with cloud.lock:
            server = cloud.create_server(body)
        try:
            # Booting takes seconds: other requests go on meanwhile.
            ip = cloud.machines.create(server["id"], server["image_name"], server["user_data"], server["keys"],
                                       bool(server["start"]), name=server["name"],
                                       location=server["location"])  # fmt: skip
        except BaseException:
            with cloud.lock:
                cloud.servers.pop(server["id"], None)
            raise
        with cloud.lock:
            return 201, cloud.finish_server(server, ip)
