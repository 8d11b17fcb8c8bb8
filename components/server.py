"""The server: a new Hetzner Cloud server (keys, firewall, cloud-init) or one the user already has.

Either way the result is a Connection that pins the host key, so no remote command ever trusts a
host on first use.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud
import pulumi_tls as tls
from pulumi_command import remote

from components import render
from components.settings import ExistingHost, HetznerServer

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
    server_name: str
    """Hetzner server name (also the key and firewall name prefix)."""
    labels: dict[str, str]
    """Hetzner labels on every resource."""


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
        child = pulumi.ResourceOptions(parent=self)
        provisioning_key = tls.PrivateKey(f"{name}-provisioning-key", algorithm="ED25519", opts=child)
        host_key = tls.PrivateKey(f"{name}-host-key", algorithm="ED25519", opts=child)
        ssh_keys = [
            hcloud.SshKey(
                f"{name}-provisioning",
                name=f"{args.server_name}-provisioning",
                public_key=provisioning_key.public_key_openssh,
                labels=args.labels,
                opts=child,
            )
        ]
        ssh_keys += [
            hcloud.SshKey(
                f"{name}-admin-{index}",
                name=f"{args.server_name}-admin-{index}",
                public_key=key,
                labels=args.labels,
                opts=child,
            )
            for index, key in enumerate(spec.admin_ssh_keys)
        ]
        firewall = hcloud.Firewall(
            f"{name}-firewall",
            name=args.server_name,
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
            name=args.server_name,
            server_type=spec.server_type,
            image=spec.image,
            location=spec.location,
            backups=spec.backups,
            labels=args.labels,
            firewall_ids=[firewall.id.apply(int)],
            ssh_keys=[key.id for key in ssh_keys],
            user_data=pulumi.Output.secret(user_data),
            public_nets=[hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True)],
            opts=pulumi.ResourceOptions(
                parent=self,
                additional_secret_outputs=["userData"],
                # cloud-init runs once at first boot: a new key or image must not rebuild the server.
                ignore_changes=["userData", "sshKeys", "image"],
            ),
        )
        self.ipv4 = self.hcloud_server.ipv4_address
        self.ipv6 = self.hcloud_server.ipv6_address
        self.has_ipv6 = True
        self.connection = Connection(
            host=self.hcloud_server.ipv4_address,
            user=spec.admin_user,
            private_key=provisioning_key.private_key_openssh,
            host_key=host_key.public_key_openssh.apply(_public_key),
        )

    def _use_existing(self, existing: ExistingHost) -> None:
        self.hcloud_server = None
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
