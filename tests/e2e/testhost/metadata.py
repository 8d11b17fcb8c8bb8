"""A stand-in for Hetzner's server metadata service, for the servers the Hetzner stand-in creates.

On Hetzner Cloud every server reaches http://169.254.169.254/hetzner/v1/ (and, as cloud-init's
Hetzner datasource also tries, http://[fe80::a9fe:a9fe%<nic>]/hetzner/v1/): `userdata` is the
`user_data` the server was created with, `metadata` a YAML document about it, `metadata/<key>`
one value each (hcloud-go's metadata client reads hostname, instance-id, public-ipv4, region,
availability-zone and private-networks). The service tells servers apart by the address a request
comes from, and answers any local process on the server that asks.

Here: netns dvps<N>-meta, plugged into the lab's bridge like every host but with no lab address: only
169.254.169.254/32 and fe80::a9fe:a9fe/64 on its eth0, and a route to the lab's /24. A server the
Hetzner stand-in creates gets a host route to 169.254.169.254 on its eth0 (its link-local IPv6
address reaches fe80::a9fe:a9fe on the shared link as it is); its addresses are registered with
what to answer. A request from any other address gets 404. The lab's own namespace holds
neither address, so nothing there or on this machine is rerouted. The HTTP side is metadata_service.py, its own
process in the netns; the lab writes what it answers to a file, atomically.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .common import NET, LabNames, kill_cgroup, make_cgroup, sh, spawn, wait_until
from .network import create_link_netns, delete_netns

METADATA_IPV4 = "169.254.169.254"
METADATA_IPV6 = "fe80::a9fe:a9fe"
NAME = "meta"


class MetadataService:
    """Create through `Lab.metadata()`; `serve` a server, `forget` it, `teardown` at the end."""

    def __init__(self, names: LabNames, run_dir: Path) -> None:
        self.names = names
        self.dir = run_dir / "metadata"
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state = self.dir / "state.json"
        self._answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._write()
        self.netns = names.netns(NAME)
        self.cgroup = names.cgroup / "_meta"
        create_link_netns(names, NAME, [f"{METADATA_IPV4}/32", f"{METADATA_IPV6}/64"], routes=[f"{NET}.0/24"])
        make_cgroup(self.cgroup)
        service = Path(__file__).with_name("metadata_service.py")
        argv = ["nsenter", f"--net=/run/netns/{self.netns}", sys.executable, service, "--state", self.state]
        self.proc = spawn(self.cgroup, argv, self.dir / "metadata.log")
        wait_until("the metadata service", self._listening, 10)

    def _listening(self) -> bool:
        out = sh(["ip", "netns", "exec", self.netns, "ss", "-ltnH"], check=False).stdout
        return ":80 " in out

    def _write(self) -> None:
        tmp = self.state.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # user_data holds private keys
        with os.fdopen(fd, "w") as f:
            json.dump(self._answers, f)
        os.replace(tmp, self.state)

    def serve(
        self, netns: str, ipv4: str, *, instance_id: int, hostname: str, user_data: str | None,
        datacenter: str, network_zone: str,
    ) -> None:  # fmt: skip
        """Answer the server in `netns` (at ipv4 and its link-local IPv6 address) as Hetzner would."""
        sh(["ip", "-n", netns, "route", "replace", f"{METADATA_IPV4}/32", "dev", "eth0"])
        link = json.loads(sh(["ip", "-n", netns, "-j", "-6", "addr", "show", "dev", "eth0", "scope", "link"]).stdout)
        addresses = [ipv4] + [a["local"] for entry in link for a in entry.get("addr_info", [])]
        metadata = {
            "hostname": hostname,
            "instance-id": instance_id,
            "local-ipv4": "",
            "public-ipv4": ipv4,
            "region": network_zone,
            "availability-zone": datacenter,
            "public-keys": [],
            "vendor_data": "",
        }
        answers = {"userdata": user_data or "", "metadata": metadata}
        with self._lock:
            for address in addresses:
                self._answers[address] = answers
            self._write()

    def forget(self, ipv4: str) -> None:
        with self._lock:
            gone = self._answers.pop(ipv4, None)
            for address in [a for a, answers in self._answers.items() if answers is gone]:
                del self._answers[address]
            self._write()

    def teardown(self) -> None:
        kill_cgroup(self.cgroup)
        self.proc.wait(timeout=10)
        delete_netns(self.names, NAME)
