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
        CurrentServer(int(s.id), s.name, s.location, s.image, s.server_type, int(s.primary_disk_size)) for s in listed
    ]
    if not servers:
        return None
    as_configured = [s for s in servers if (s.location, s.image) == (spec.location, spec.image)]
    return max(as_configured or servers, key=lambda s: s.id)


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
        replacing = plan_replacement(find_server(args.labels, spec), spec)
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
        user_data = pulumi.Output.all(
            host_key.private_key_openssh, host_key.public_key_openssh, provisioning_key.public_key_openssh
        ).apply(
            lambda keys: render.cloud_init(
                keys[0], _public_key(keys[1]), [_public_key(keys[2]), *spec.admin_ssh_keys], spec.admin_user
            )
        )
        self.hcloud_server = hcloud.Server(
            f"{name}-server",
            name=hetzner_server_name(args.name_prefix, spec.location, spec.image),
            server_type=spec.server_type,
            image=spec.image,
            location=spec.location,
            backups=spec.backups,
            labels=args.labels,
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
