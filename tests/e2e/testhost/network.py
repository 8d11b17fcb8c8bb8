"""The test network: a bridge on the root side, one netns + veth per host. No NAT, no default route."""

from __future__ import annotations

import re

from .common import BRIDGE, GATEWAY, PREFIX, sh

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")  # "dvps-" + name must fit IFNAMSIZ (15)


def create_bridge() -> None:
    sh(["ip", "link", "add", BRIDGE, "type", "bridge"])
    sh(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
    sh(["ip", "link", "set", BRIDGE, "up"])


def create_host_netns(name: str, ip: str) -> str:
    """Make netns dvps-<name> whose eth0 (ip/24) is a veth plugged into the bridge."""
    if not NAME_RE.match(name):
        raise ValueError(f"host name {name!r}: use 1-10 lowercase letters/digits")
    ns = f"{PREFIX}-{name}"
    sh(["ip", "netns", "add", ns])
    sh(["ip", "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns])
    sh(["ip", "link", "set", ns, "master", BRIDGE, "up"])
    sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    sh(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])  # the /24 route comes with it
    sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
    return ns


def create_link_netns(name: str, addresses: list[str], routes: list[str]) -> str:
    """Make netns dvps-<name> plugged into the bridge like a host, but holding only `addresses`
    (CIDR, IPv4 or IPv6; no duplicate address detection) on its eth0 and reaching `routes` on the
    link (with no gateway): for a service at an address outside the lab's /24 (the metadata service)."""
    if not NAME_RE.match(name):
        raise ValueError(f"host name {name!r}: use 1-10 lowercase letters/digits")
    ns = f"{PREFIX}-{name}"
    sh(["ip", "netns", "add", ns])
    sh(["ip", "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns])
    sh(["ip", "link", "set", ns, "master", BRIDGE, "up"])
    sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    for address in addresses:
        sh(["ip", "-n", ns, "addr", "add", address, "dev", "eth0", *(["nodad"] if ":" in address else [])])
    sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
    for route in routes:
        sh(["ip", "-n", ns, "route", "add", route, "dev", "eth0"])
    return ns


def delete_netns(ns: str) -> None:
    # Deleting the netns deletes its eth0 and with it the veth's root-side end.
    sh(["ip", "netns", "del", ns], check=False)
    sh(["ip", "link", "del", ns], check=False)


def own_netns() -> list[str]:
    out = sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{PREFIX}-")]


def own_links() -> list[str]:
    out = sh(["ip", "-o", "link", "show"], check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith(f"{PREFIX}-")]
