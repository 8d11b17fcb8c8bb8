"""The test network: the lab's own network namespace holding a bridge (the lab's 198.51.100.1), and
one netns + veth per host plugged into it. No NAT, no default route, nothing in the machine's own
namespace: every lab has the same addresses and none sees another's."""

from __future__ import annotations

import re

from .common import BRIDGE, GATEWAY, LabNames, sh, veth

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")  # "veth-" + name must fit IFNAMSIZ (15)
RESERVED = frozenset({"lab"})  # dvps<N>-lab is the lab's own namespace


def create_lab_netns(names: LabNames) -> str:
    """The lab's namespace with loopback up (the API stand-ins listen on 127.0.0.1) and the bridge."""
    ns = names.lab_netns
    sh(["ip", "netns", "add", ns])
    sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    sh(["ip", "-n", ns, "link", "add", BRIDGE, "type", "bridge"])
    sh(["ip", "-n", ns, "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
    sh(["ip", "-n", ns, "link", "set", BRIDGE, "up"])
    return ns


def _plug(names: LabNames, name: str) -> str:
    if not NAME_RE.match(name) or name in RESERVED:
        raise ValueError(f"host name {name!r}: use 1-10 lowercase letters/digits, not {sorted(RESERVED)}")
    ns, lab = names.netns(name), names.lab_netns
    sh(["ip", "netns", "add", ns])
    # Made from inside the lab's namespace, so the lab-side end is there and the machine sees neither.
    sh(["ip", "-n", lab, "link", "add", veth(name), "type", "veth", "peer", "name", "eth0", "netns", ns])
    sh(["ip", "-n", lab, "link", "set", veth(name), "master", BRIDGE, "up"])
    sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    return ns


def create_host_netns(names: LabNames, name: str, ip: str) -> str:
    """Make netns dvps<N>-<name> whose eth0 (ip/24) is a veth plugged into the lab's bridge."""
    ns = _plug(names, name)
    sh(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])  # the /24 route comes with it
    sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
    return ns


def create_link_netns(names: LabNames, name: str, addresses: list[str], routes: list[str]) -> str:
    """Make netns dvps<N>-<name> plugged into the bridge like a host, but holding only `addresses`
    (CIDR, IPv4 or IPv6; no duplicate address detection) on its eth0 and reaching `routes` on the
    link (with no gateway): for a service at an address outside the lab's /24 (the metadata service)."""
    ns = _plug(names, name)
    for address in addresses:
        sh(["ip", "-n", ns, "addr", "add", address, "dev", "eth0", *(["nodad"] if ":" in address else [])])
    sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
    for route in routes:
        sh(["ip", "-n", ns, "route", "add", route, "dev", "eth0"])
    return ns


def delete_netns(names: LabNames, name: str) -> None:
    # Deleting the netns deletes its eth0 and with it the veth's lab-side end.
    sh(["ip", "netns", "del", names.netns(name)], check=False)
    sh(["ip", "-n", names.lab_netns, "link", "del", veth(name)], check=False)


def own_netns(names: LabNames) -> list[str]:
    out = sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{names.prefix}-")]
