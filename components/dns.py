"""DNS: the domain's A and AAAA records in Hetzner DNS, or the list to create by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

RECORD_TTL = 300


@dataclass(frozen=True)
class DnsArgs:
    """Where the domain must point."""

    domain: str
    """The site's domain."""
    zone: str
    """The zone holding it."""
    record_name: str
    """The record's name in the zone: "@" for the apex."""
    create_zone: bool
    """Create the zone (else it already exists at Hetzner)."""
    manage: bool
    """Create the records (else only report them)."""
    ipv4: pulumi.Output[str | None]
    """The server's IPv4."""
    ipv6: pulumi.Output[str | None]
    """The server's IPv6, if it has one."""
    with_ipv6: bool
    """Whether the server has an IPv6 address (known before its value is)."""
    labels: dict[str, str]
    """Hetzner labels."""


class Dns(pulumi.ComponentResource):
    """The A/AAAA records for the domain; `records` lists them either way."""

    records: pulumi.Output[list[dict[str, object]]]
    """[{type, name, zone, value, ttl}], managed here or to be created by hand."""
    rrsets: list[hcloud.ZoneRrset]
    """The managed record sets (certbot waits for them)."""

    def __init__(self, name: str, args: DnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("django-vps:dns:Dns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        wanted = [("A", args.ipv4)] + ([("AAAA", args.ipv6)] if args.with_ipv6 else [])
        self.rrsets = []
        if args.manage:
            zone: pulumi.Input[str] = args.zone
            if args.create_zone:
                zone = hcloud.Zone(
                    f"{name}-zone", name=args.zone, mode="primary", ttl=RECORD_TTL, labels=args.labels, opts=child
                ).name
            self.rrsets = [
                hcloud.ZoneRrset(
                    f"{name}-{kind.lower()}",
                    zone=zone,
                    name=args.record_name,
                    type=kind,
                    ttl=RECORD_TTL,
                    records=[hcloud.ZoneRrsetRecordArgs(value=address.apply(lambda a: a or ""))],
                    labels=args.labels,
                    opts=child,
                )
                for kind, address in wanted
            ]
        self.records = pulumi.Output.all(*(address for _, address in wanted)).apply(
            lambda addresses: [
                {
                    "type": kind,
                    "name": args.record_name,
                    "zone": args.zone,
                    "fqdn": args.domain,
                    "value": address,
                    "ttl": RECORD_TTL,
                }
                for (kind, _), address in zip(wanted, addresses, strict=True)
            ]
        )
        self.register_outputs({"records": self.records})
