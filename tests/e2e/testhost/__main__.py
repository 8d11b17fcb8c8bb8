"""Developer CLI: python -m tests.e2e.testhost up|ssh [cmd...]|status|down"""

from __future__ import annotations

import argparse
import os
import sys

from .common import CACHE_DIR, sh
from .lab import Lab, cleanup_leftovers, leftovers, load_state

DEV_KEY = CACHE_DIR / "dev-key"
DEV_KNOWN_HOSTS = CACHE_DIR / "dev-known_hosts"
IP = "198.51.100.2"


def up() -> None:
    if not DEV_KEY.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "django-vps-dev", "-f", DEV_KEY])
    lab = Lab().start()  # removes leftovers (including an earlier `up`) first
    try:
        srv = lab.server("app", IP, root_authorized_keys=[DEV_KEY.with_suffix(".pub").read_text()])
    except BaseException:
        lab.teardown()
        raise
    DEV_KNOWN_HOSTS.write_text(f"{IP} {srv.host_public_key()}\n")
    print(
        f"server 'app' is up at {IP} (root key {DEV_KEY}); timings: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in lab.timings.items())
    )
    print("  python -m tests.e2e.testhost ssh          # a shell on it")
    print(f"  ssh -i {DEV_KEY} -o UserKnownHostsFile={DEV_KNOWN_HOSTS} root@{IP}")
    print(f"  rootfs: {srv.rootfs}   ACME: {lab.acme_directory}   proxy: {lab.proxy_url}")
    print("  python -m tests.e2e.testhost down         # remove everything")
    # The lab's daemons and the server run on in their own sessions after this process exits.


def ssh(cmd: list[str]) -> None:
    if not load_state():
        sys.exit("no lab is up: run `python -m tests.e2e.testhost up` first")
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
    state = load_state()
    print("lab:", state if state else "not up")
    left = leftovers()
    print("ours on this machine:", *(left or ["nothing"]), sep="\n  ")


def down() -> None:
    cleanup_leftovers()
    left = leftovers()
    print("down" if not left else f"still there: {left}")
    if left:
        sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.e2e.testhost", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build the image if needed, start a lab with one server at " + IP)
    s = sub.add_parser("ssh", help="ssh into the server (optionally run a command)")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("status", help="what of ours exists")
    sub.add_parser("down", help="tear everything of ours down (also leftovers of killed runs)")
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
