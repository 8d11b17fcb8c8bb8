"""The server: a new Hetzner Cloud server (key, firewall, cloud-init) or one the user already has.

Either way the result is a Connection that pins the host key, so no remote command ever trusts a
host on first use.

What a setting does once the Hetzner server exists. Before it declares anything, the component asks
Hetzner what the stack's server is now (getServers by the stack's labels), so a change that would
lose data stops the run before any resource changes:
- serverType and backups change in place (terraform-provider-hcloud's update: the type is changed
  powered off and Hetzner starts the server again; backups are an action). A type the server
  cannot take (the other architecture, a disk smaller than the server's) is refused up front: the
  provider would fail after powering the server off.
- location and image cannot change on a server (ForceNew: a new one). Unconfirmed, the change is
  refused with one line naming what is lost; with replaceServer the engine replaces the server
  create-before-delete, so its name carries location and image and the two never collide; the host
  steps are replaced with it (host.py) and what takes its address (DNS, GitHub secrets) updates.
  Otherwise location and image stay in ignore_changes, so no replacement can happen unconfirmed.
- cloud-init's user data and the server's SSH keys act at the first boot only: ignored after. The
  admin user's keys are kept by a host step (host.py's admin-keys); Hetzner gets only the
  provisioning key, so no user key can collide with one already in the project.

The data volume (dataVolume), as terraform-provider-hcloud handles it (`internal/volume/resource.go`:
`location` ForceNew, `size` by the resize action, `server_id` by detach/attach;
`resource_attachment.go`: `volume_id` and `server_id` ForceNew, the attachment's id is the volume's):
- the Volume is made unattached in the server's location, formatted ext4 by Hetzner at creation
  (`format`, once: nothing here ever formats), before the server, whose cloud-init names its device
  (`/dev/disk/by-id/scsi-0HC_Volume_<id>`); a VolumeAttachment then attaches it (automount off: the
  mount point is ours, not Hetzner's /mnt/HC_Volume_<id>) and the host's volume step mounts it
  before any step writes data;
- with dataVolumeKeep (the default) it is retainOnDelete (`pulumi destroy` forgets it, the engine
  never calls the provider's delete) and delete-protected at Hetzner; dataVolumeId brings a kept one
  back into a stack (import), where it must be in the server's location and attached to no other
  server;
- the attachment is replaced delete-before-replace with the server: a volume is attached to one
  server at a time, so a replacement detaches it from the old server before the new one takes it;
- the size grows in place (resize, then resize2fs on the host); Hetzner never shrinks a volume,
  so a smaller size is refused before anything changes, as are a location the volume is not in,
  a volume added to a server made without one (its data is on its own disk) and a volume taken away.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud
import pulumi_tls as tls
from pulumi_command import remote

from components import render
from components.settings import ExistingHost, HetznerServer, SettingError, hetzner_server_name

# Bounded waiting for SSH: a new server takes ~30 s to boot; give up after 30 tries of 10 s.
DIAL_ERROR_LIMIT = 30
PER_DIAL_TIMEOUT = 10
FIREWALL_PORTS = ("22", "80", "443")


@dataclass(frozen=True)
class Connection:
    """How every remote command reaches the host."""

    host: pulumi.Output[str]
    """Address to connect to."""
    user: str
    """Login user (root, or a passwordless-sudo user on an existing host)."""
    private_key: pulumi.Output[str]
    """Secret: the provisioning private key."""
    host_key: pulumi.Output[str]
    """The host's pinned SSH public key, "type base64"."""

    def args(self) -> remote.ConnectionArgs:
        return remote.ConnectionArgs(
            host=self.host,
            user=self.user,
            private_key=self.private_key,
            host_key=self.host_key,
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT,
        )


@dataclass(frozen=True)
class ServerArgs:
    """What the server component needs."""

    hetzner: HetznerServer | None
    """A new Hetzner server, or None with existing."""
    existing: ExistingHost | None
    """A server the user already has, or None with hetzner."""
    name_prefix: str
    """The Hetzner key's and firewall's name; the server's adds its location and image."""
    labels: dict[str, str]
    """Hetzner labels on every resource; the stack's server is found again by them."""


@dataclass(frozen=True)
class CurrentServer:
    """The stack's server as Hetzner lists it."""

    id: int
    name: str
    location: str
    image: str
    server_type: str
    disk_gb: int
    has_data_volume: bool = False
    """Made with a data volume (its DATA_VOLUME_LABEL)."""


@dataclass(frozen=True)
class CurrentVolume:
    """A Hetzner Volume as getVolume(s) lists it."""

    id: int
    name: str
    location: str
    size_gb: int
    server_id: int | None


@dataclass(frozen=True)
class VolumePlan:
    """The Volume this run declares."""

    name: str
    size_gb: int
    import_id: str | None
    """The kept volume's id when dataVolumeId brings it in."""


# On a server made with a data volume: what says, when dataVolume is taken away, that its data is there.
DATA_VOLUME_LABEL = "data-volume"


@dataclass(frozen=True)
class ServerType:
    """What decides whether Hetzner can change a server to a type."""

    architecture: str
    disk_gb: int


def find_server(labels: dict[str, str], spec: HetznerServer) -> CurrentServer | None:
    """The stack's server on Hetzner. Two carry the labels only after a replacement that failed before
    the old one was deleted: then the one as configured if there is one, else the newest."""
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    listed = hcloud.get_servers(with_selector=selector).servers or []
    servers = [
        CurrentServer(
            int(s.id), s.name, s.location, s.image, s.server_type, int(s.primary_disk_size),
            DATA_VOLUME_LABEL in (s.labels or {}),
        )
        for s in listed
    ]  # fmt: skip
    if not servers:
        return None
    as_configured = [s for s in servers if (s.location, s.image) == (spec.location, spec.image)]
    return max(as_configured or servers, key=lambda s: s.id)


def _volume(found: object) -> CurrentVolume:
    server_id = getattr(found, "server_id", None)
    return CurrentVolume(
        int(getattr(found, "id")),  # noqa: B009 (the SDK's result classes name it so)
        str(getattr(found, "name")),  # noqa: B009
        str(getattr(found, "location", "") or ""),
        int(getattr(found, "size")),  # noqa: B009
        int(server_id) if server_id else None,
    )


def find_volumes(labels: dict[str, str]) -> list[CurrentVolume]:
    """The stack's data volumes on Hetzner (by its labels)."""
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    return [_volume(v) for v in hcloud.get_volumes(with_selector=selector).volumes or []]


def find_volume(volume_id: int) -> CurrentVolume:
    """A volume by id (getVolume fails, naming the id, when there is none)."""
    return _volume(hcloud.get_volume(id=volume_id))


def volume_name(prefix: str) -> str:
    return f"{prefix}-data"


def plan_volume(
    current: CurrentServer | None,
    spec: HetznerServer,
    prefix: str,
    replacing: bool,
    stack_volumes: list[CurrentVolume],
    kept: CurrentVolume | None,
) -> VolumePlan | None:
    """The data volume this run declares; a change Hetzner or the data cannot take raises a
    SettingError (one line). `stack_volumes` are the volumes with the stack's labels, `kept` the one
    dataVolumeId names."""
    wanted = spec.data_volume
    if wanted is None:
        if current is not None and current.has_data_volume:
            raise SettingError(
                "dataVolume",
                f"is 0, but {current.name} keeps the site's data on its data volume: set dataVolume again (the "
                "data stays there); to leave it, copy the data off (backup.sh) and make a new stack",
            )
        return None
    if current is not None and not current.has_data_volume and not replacing:
        raise SettingError(
            "dataVolume",
            f"{current.name} was made without a data volume and its data (database, media) is on its own disk, "
            "which a volume mounted now would not hold: make a new stack with dataVolume (or replace the server "
            "with replaceServer) and restore a backup there",
        )
    own = next(iter(sorted(stack_volumes, key=lambda v: v.id)), None)
    if kept is not None and own is not None and own.id != kept.id:
        raise SettingError(
            "dataVolumeId",
            f"{kept.id}: the stack's data is on its own data volume {own.name} (id {own.id}); a server takes one "
            f"volume: set dataVolumeId {own.id}, or use the other volume from a new stack",
        )
    volume = kept or own
    if volume is not None and volume.location and volume.location != spec.location:
        raise SettingError(
            "location",
            f"{spec.location}: the data volume {volume.name} (id {volume.id}) is in {volume.location}, and Hetzner "
            f"attaches a volume only to a server of its own location: keep location {volume.location}",
        )
    if kept is not None and kept.server_id is not None and (current is None or kept.server_id != current.id):
        raise SettingError(
            "dataVolumeId",
            f"{kept.id}: the volume {kept.name} is attached to server {kept.server_id}; detach it there first "
            f"(hcloud volume detach {kept.id})",
        )
    size = wanted.size_gb or (volume.size_gb if volume else 0)
    if volume is not None and size < volume.size_gb:
        raise SettingError(
            "dataVolume",
            f"{size} GB would shrink the data volume {volume.name} ({volume.size_gb} GB), which Hetzner cannot do: "
            f"use {volume.size_gb} or more",
        )
    name = kept.name if kept is not None else volume_name(prefix)
    return VolumePlan(name, size, str(kept.id) if kept is not None else None)


def server_type(name: str) -> ServerType:
    found = hcloud.get_server_type(name=name)
    return ServerType(found.architecture, int(found.disk))


def plan_replacement(
    current: CurrentServer | None, spec: HetznerServer, type_of: Callable[[str], ServerType] = server_type
) -> bool:
    """Whether this run replaces the server; a change it cannot make raises a SettingError (one line)."""
    if current is None:
        return False
    moves = [
        (key, old, new)
        for key, old, new in (("location", current.location, spec.location), ("image", current.image, spec.image))
        # An image Hetzner no longer lists shows as "": unknown, not a change.
        if old and old != new
    ]
    change = ", ".join(f"{key} {old} -> {new}" for key, old, new in moves)
    if moves and not spec.replace_server:
        raise SettingError(
            moves[0][0],
            f"{change} needs a new server (Hetzner moves no server and changes no image in place), and the "
            f"SQLite database, media and all else on {current.name} do not move: they are deleted with it; copy "
            "them off, then confirm for one run with `pulumi config set replaceServer true`",
        )
    if not moves and spec.replace_server:
        raise SettingError(
            "replaceServer",
            f"is true, but {current.name} already is {current.location}, {current.image} as configured: nothing "
            "to replace; unset it (`pulumi config rm replaceServer`) so that a later change is refused again",
        )
    if moves:
        pulumi.log.warn(
            f"replaceServer: {change}: a new server replaces {current.name}, whose database and media are "
            "deleted at the end of this run; unset replaceServer afterwards"
        )
        return True
    if spec.server_type != current.server_type:
        old, new = type_of(current.server_type), type_of(spec.server_type)
        if old.architecture != new.architecture:
            raise SettingError(
                "serverType",
                f"{current.server_type} -> {spec.server_type} changes the architecture ({old.architecture} -> "
                f"{new.architecture}), which Hetzner cannot do to a server: choose another {old.architecture} type",
            )
        if new.disk_gb < current.disk_gb:
            raise SettingError(
                "serverType",
                f"{current.server_type} -> {spec.server_type} would shrink the server's disk ({current.disk_gb} GB "
                f"-> {new.disk_gb} GB), which Hetzner cannot do (the change would fail with the server powered "
                f"off): choose a type with at least {current.disk_gb} GB",
            )
    return False


def _public_key(openssh: str) -> str:
    """ "type base64" without a comment: the form host_key and known_hosts expect."""
    return " ".join(openssh.split()[:2])


class Server(pulumi.ComponentResource):
    """A server reachable over SSH with a pinned host key."""

    connection: Connection
    ipv4: pulumi.Output[str | None]
    ipv6: pulumi.Output[str | None]
    has_ipv6: bool
    """Known before the address is: whether an AAAA record is due."""
    hcloud_server: hcloud.Server | None
    """The Hetzner server (host commands are deleted with it), None for an existing host."""
    login_public_key: pulumi.Output[str] | None
    """The provisioning key's public half, "type base64" (a created server's admin user keeps it)."""
    volume: hcloud.Volume | None = None
    """The data volume (dataVolume), None without one."""
    volume_attached: hcloud.VolumeAttachment | None = None
    """Its attachment to the server: the volume step waits for it."""

    def __init__(self, name: str, args: ServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("django-vps:server:Server", name, None, opts)
        if args.hetzner is not None:
            self._create_hetzner(name, args, args.hetzner)
        else:
            assert args.existing is not None
            self._use_existing(args.existing)
        self.register_outputs(
            {"ipv4": self.ipv4, "ipv6": self.ipv6, "host": self.connection.host, "hostKey": self.connection.host_key}
        )

    def _create_hetzner(self, name: str, args: ServerArgs, spec: HetznerServer) -> None:
        # Asked before any child is declared: a refused change leaves everything as it is.
        current = find_server(args.labels, spec)
        replacing = plan_replacement(current, spec)
        wanted = spec.data_volume
        plan = plan_volume(
            current,
            spec,
            args.name_prefix,
            replacing,
            find_volumes(args.labels) if wanted else [],
            find_volume(wanted.volume_id) if wanted and wanted.volume_id else None,
        )
        child = pulumi.ResourceOptions(parent=self)
        provisioning_key = tls.PrivateKey(f"{name}-provisioning-key", algorithm="ED25519", opts=child)
        host_key = tls.PrivateKey(f"{name}-host-key", algorithm="ED25519", opts=child)
        # Hetzner mails a root password for a server made without a key; root login is off anyway.
        ssh_key = hcloud.SshKey(
            f"{name}-provisioning",
            name=f"{args.name_prefix}-provisioning",
            public_key=provisioning_key.public_key_openssh,
            labels=args.labels,
            opts=child,
        )
        firewall = hcloud.Firewall(
            f"{name}-firewall",
            name=args.name_prefix,
            labels=args.labels,
            rules=[
                *(
                    hcloud.FirewallRuleArgs(
                        direction="in",
                        protocol="tcp",
                        port=port,
                        source_ips=["0.0.0.0/0", "::/0"],
                        description=f"tcp {port}",
                    )
                    for port in FIREWALL_PORTS
                ),
                hcloud.FirewallRuleArgs(
                    direction="in", protocol="icmp", source_ips=["0.0.0.0/0", "::/0"], description="icmp"
                ),
            ],
            opts=child,
        )
        server_labels: dict[str, pulumi.Input[str]] = dict(args.labels)
        device: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if plan is not None:
            assert wanted is not None
            self.volume = hcloud.Volume(
                f"{name}-data-volume",
                name=plan.name,
                size=plan.size_gb,
                location=spec.location,
                labels=args.labels,
                delete_protection=wanted.keep,
                # Hetzner formats a new volume once, at creation; a kept one is never formatted again.
                format="ext4" if plan.import_id is None else None,
                automount=False,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    retain_on_delete=wanted.keep,
                    import_=plan.import_id,
                    # Set at creation only (the provider reads neither back).
                    ignore_changes=["format", "automount"],
                ),
            )
            device = self.volume.linux_device
            server_labels[DATA_VOLUME_LABEL] = "yes"
        user_data = pulumi.Output.all(
            host_key.private_key_openssh, host_key.public_key_openssh, provisioning_key.public_key_openssh, device
        ).apply(
            lambda keys: render.cloud_init(
                keys[0],
                _public_key(keys[1]),
                [_public_key(keys[2]), *spec.admin_ssh_keys],
                spec.admin_user,
                data_device=keys[3],
            )
        )
        self.hcloud_server = hcloud.Server(
            f"{name}-server",
            name=hetzner_server_name(args.name_prefix, spec.location, spec.image),
            server_type=spec.server_type,
            image=spec.image,
            location=spec.location,
            backups=spec.backups,
            labels=server_labels,
            firewall_ids=[firewall.id.apply(int)],
            ssh_keys=[ssh_key.id],
            user_data=pulumi.Output.secret(user_data),
            public_nets=[hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True)],
            opts=pulumi.ResourceOptions(
                parent=self,
                additional_secret_outputs=["userData"],
                # cloud-init runs at the first boot only, and a new location or image is a new server:
                # none of these may replace it unless this run is a confirmed replacement, which
                # boots the new server with what is configured now.
                ignore_changes=[] if replacing else ["userData", "sshKeys", "location", "image"],
            ),
        )
        if self.volume is not None:
            self.volume_attached = hcloud.VolumeAttachment(
                f"{name}-data-volume-attachment",
                volume_id=self.volume.id.apply(int),
                server_id=self.hcloud_server.id.apply(int),
                automount=False,
                # One server at a time: a new server takes the volume after the old one let it go.
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )
        self.ipv4 = self.hcloud_server.ipv4_address
        self.ipv6 = self.hcloud_server.ipv6_address
        self.has_ipv6 = True
        self.login_public_key = provisioning_key.public_key_openssh.apply(_public_key)
        self.connection = Connection(
            host=self.hcloud_server.ipv4_address,
            user=spec.admin_user,
            private_key=provisioning_key.private_key_openssh,
            host_key=host_key.public_key_openssh.apply(_public_key),
        )

    def _use_existing(self, existing: ExistingHost) -> None:
        self.hcloud_server = None
        self.login_public_key = None
        ipv4, ipv6 = _addresses(existing.address)
        if ipv4 is None:
            # certbot's check and the DNS wait go by the A record.
            raise pulumi.RunError(
                f"django-vps:existingHost: {existing.address!r} has no IPv4 address; "
                "give an IPv4 address or a hostname with an A record"
            )
        self.has_ipv6 = ipv6 is not None
        self.ipv4 = pulumi.Output.from_input(ipv4)
        self.ipv6 = pulumi.Output.from_input(ipv6)
        self.connection = Connection(
            host=pulumi.Output.from_input(existing.address),
            user=existing.user,
            private_key=existing.private_key,
            host_key=pulumi.Output.from_input(_public_key(existing.host_key)),
        )


def _addresses(address: str) -> tuple[str | None, str | None]:
    """The existing host's IPv4 and IPv6, for its DNS records; a hostname is resolved once."""
    try:
        ip = ipaddress.ip_address(address)
        return (str(ip), None) if ip.version == 4 else (None, str(ip))
    except ValueError:
        pass
    found: dict[int, str] = {}
    for family, *_, sockaddr in socket.getaddrinfo(address, 22, proto=socket.IPPROTO_TCP):
        found.setdefault(family, str(sockaddr[0]))
    return found.get(socket.AF_INET), found.get(socket.AF_INET6)
