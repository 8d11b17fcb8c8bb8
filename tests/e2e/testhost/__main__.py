"""Developer CLI: python -m tests.e2e.testhost up|ssh [cmd...]|status|down

`up` leaves its lab running (detached: a keeper process holds the lab's id); `ssh` and `down` find
it by its state file. Labs of test runs beside it keep their own ids and are never touched.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import netns
from .common import CACHE_DIR, LAB_IDS, LabNames, kill_cgroup, sh
from .lab import Lab, cleanup_unlocked, leftovers, states

DEV_KEY = CACHE_DIR / "dev-key"
DEV_KNOWN_HOSTS = CACHE_DIR / "dev-known_hosts"
IP = "198.51.100.2"


def _detached() -> list[dict[str, Any]]:
    return [state for state in states() if state.get("detached")]


def up() -> None:
    if not DEV_KEY.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "django-vps-dev", "-f", DEV_KEY])
    if _detached():
        down()  # one dev lab at a time: an earlier `up` is replaced
    lab = Lab().start()
    try:
        srv = lab.server("app", IP, root_authorized_keys=[DEV_KEY.with_suffix(".pub").read_text()])
    except BaseException:
        lab.teardown()
        raise
    DEV_KNOWN_HOSTS.write_text(f"{IP} {srv.host_public_key()}\n")
    lab.detach()  # the lab's daemons and the server run on in their own sessions after this exits
    print(
        f"lab {lab.id}: server 'app' is up at {IP} in netns {lab.names.lab_netns if lab.names else '?'}"
        f" (root key {DEV_KEY}); timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in lab.timings.items())
    )
    print("  python -m tests.e2e.testhost ssh          # a shell on it")
    print(f"  rootfs: {srv.rootfs}   ACME: {lab.acme_directory}   proxy: {lab.proxy_url}")
    print("  python -m tests.e2e.testhost down         # remove everything")


def ssh(cmd: list[str]) -> None:
    found = _detached()
    if not found:
        sys.exit("no lab is up: run `python -m tests.e2e.testhost up` first")
    netns.enter(f"/run/netns/{found[0]['netns']}")  # ssh runs in the lab's network
    argv = [
        "ssh",
        "-i",
        str(DEV_KEY),
        "-o",
        f"UserKnownHostsFile={DEV_KNOWN_HOSTS}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        f"root@{IP}",
        *cmd,
    ]
    os.execvp("ssh", argv)


def status() -> None:
    for state in states() or [None]:
        print("lab:", state if state else "none up")
    for lab_id in LAB_IDS:
        left = leftovers(LabNames(lab_id))
        if left:
            print(f"lab {lab_id} on this machine:", *left, sep="\n  ")


def down() -> None:
    """End the detached lab (its keeper dies with its cgroup, freeing the id), then remove the
    leftovers of every lab id nobody holds; labs of running tests hold theirs and stay."""
    for state in _detached():
        kill_cgroup(LabNames(state["id"]).cgroup)
    cleaned = cleanup_unlocked()
    left = {state["id"] for state in _detached()}
    print(f"down (cleaned lab ids {cleaned or 'none'})" if not left else f"still there: labs {sorted(left)}")
    if left:
        sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.e2e.testhost", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build the image if needed, start a lab with one server at " + IP)
    s = sub.add_parser("ssh", help="ssh into the server (optionally run a command)")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("status", help="the labs on this machine and what of theirs exists")
    sub.add_parser("down", help="end the lab of `up`, and remove the leftovers of killed labs")
    a = p.parse_args()
    if a.command == "up":
        up()
    elif a.command == "ssh":
        ssh(a.cmd)
    elif a.command == "status":
        status()
    else:
        down()


if __name__ == "__main__":
    main()
