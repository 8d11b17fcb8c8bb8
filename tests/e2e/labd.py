"""The lab as a long-lived daemon, for `tests/lab`: the test network, its DNS and ACME CA, the git
forge, the cloud API stand-ins and the servers live in one process that outlives each command, so
`tests/lab deploy` can run again on the same stack and `tests/lab curl` can look at the result.

Commands reach it over a unix socket (multiprocessing.connection, with an authkey in a 0600 file);
`down` asks it to tear the lab down and exit, or ends it by its PID. The daemon's lab has its own
id and network namespace (it runs beside test runs' labs); the commands join that namespace.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from tests.e2e.testhost import Lab, cleanup_unlocked, netns
from tests.e2e.testhost.common import CACHE_DIR

LAB_DIR = CACHE_DIR / "lab"
SOCKET = LAB_DIR / "labd.sock"
AUTHKEY = LAB_DIR / "labd.key"
PIDFILE = LAB_DIR / "labd.pid"
LOG = LAB_DIR / "labd.log"
GITHUB_OWNER = "lab"
GITHUB_TOKEN = "ghp_lab" + "0" * 33
HCLOUD_TOKEN = "lab" + "0" * 61  # Hetzner tokens are 64 characters


class LabService:
    """What the commands may ask of the running lab."""

    def __init__(self) -> None:
        self.lab = Lab().start()
        self.pushed: set[str] = set()
        self.hosts: dict[str, dict[str, str]] = {}
        self.github = self.lab.github_api(GITHUB_OWNER, GITHUB_TOKEN)
        self.hetzner = self.lab.hetzner_api()

    def info(self) -> dict[str, Any]:
        forge = self.lab.forge()
        assert self.lab.names is not None
        return {
            "lab_id": self.lab.names.id,
            "netns_path": self.lab.names.lab_netns_path,
            "acme_directory": self.lab.acme_directory,
            "acme_ca_pem": self.lab.acme_ca_pem(),
            "forge_ip": forge.ip,
            "forge_host_key": forge.host_public_key(),
            "github_token": GITHUB_TOKEN,
            "github_url": self.github.url,
            "github_owner": GITHUB_OWNER,
            "hcloud_endpoint": self.hetzner.url,
            "hcloud_token": HCLOUD_TOKEN,
        }

    def repository(self, name: str) -> None:
        """The repository on the GitHub stand-in (the program's deploy key, secrets and workflow)."""
        if name.lower() not in self.github.model.repositories:
            self.github.model.create_repository(name)

    def zone(self, name: str) -> None:
        """The user's DNS zone at Hetzner, as it exists before the first `pulumi up`."""
        if not any(zone["name"] == name for zone in self.hetzner.cloud.zones.values()):
            self.hetzner.cloud.create_zone({"name": name, "mode": "primary"})

    def push(self, name: str, source: str) -> str:
        """The work tree `source` as the forge's repository `name` (a new commit on main); its URL."""
        forge = self.lab.forge()
        if name not in self.pushed:
            self.pushed.add(name)
            return forge.create_repo(name, Path(source))
        work = forge.work / name
        for entry in work.iterdir():  # the new tree replaces the old one, deletions included
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        shutil.copytree(source, work, dirs_exist_ok=True, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        forge.push_commit(name, {}, f"Update from {source}")
        return forge.url(name)

    def existing_host(self, name: str, ip: str) -> dict[str, str]:
        """A server the user already has: Debian with an `admin` login that has passwordless sudo."""
        if name in self.hosts:
            return self.hosts[name]
        server = self.lab.server(name, ip)
        login = server.add_sudo_login()
        self.hosts[name] = {"ip": ip, "user": "admin", "host_key": server.host_public_key(),
                            "private_key": login.private_openssh}  # fmt: skip
        return self.hosts[name]

    def set_a(self, name: str, ip: str) -> None:
        self.lab.set_a(name, ip)

    def requests(self) -> dict[str, list[str]]:
        """What the stand-ins were asked, and what they did not know."""
        return {
            "hetzner": [f"{r.method} {r.path} {r.status}" for r in self.hetzner.requests],
            "hetzner unknown": list(self.hetzner.unknown),
            "github": [f"{m} {p} {s}" for m, p, s in self.github.model.requests],
            "github unknown": list(self.github.model.unknown_requests),
        }


def serve() -> None:
    """The daemon: start the lab, then answer (method, args) calls until `shutdown`."""
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    AUTHKEY.touch(mode=0o600)
    AUTHKEY.write_bytes(key)
    SOCKET.unlink(missing_ok=True)
    service = LabService()
    PIDFILE.write_text(f"{os.getpid()}\n")
    with Listener(str(SOCKET), family="AF_UNIX", authkey=key) as listener:
        SOCKET.chmod(0o600)
        print("lab ready", flush=True)
        while True:
            with listener.accept() as connection:
                if not _answer(service, connection):
                    break
    service.lab.teardown()
    for path in (SOCKET, PIDFILE):
        path.unlink(missing_ok=True)


def _answer(service: LabService, connection: Connection) -> bool:
    method, args = connection.recv()
    if method == "shutdown":
        connection.send(("ok", None))
        return False
    try:
        connection.send(("ok", getattr(service, method)(*args)))
    except Exception:
        connection.send(("error", traceback.format_exc()))
    return True


class LabDown(Exception):
    pass


def call(method: str, *args: Any) -> Any:
    """Ask the running lab; LabDown when there is none."""
    if not SOCKET.exists():
        raise LabDown("no lab is up: run `tests/lab up` first")
    try:
        with Client(str(SOCKET), family="AF_UNIX", authkey=AUTHKEY.read_bytes()) as connection:
            connection.send((method, args))
            status, value = connection.recv()
    except (ConnectionRefusedError, FileNotFoundError) as error:
        raise LabDown(f"the lab daemon is gone ({error}): run `tests/lab down`, then `tests/lab up`") from None
    if status == "error":
        raise RuntimeError(f"the lab answered {method} with an error:\n{value}")
    return value


def start(timeout: float = 300) -> None:
    """Start the daemon in its own session and wait until it answers (the image may be built first)."""
    stop()
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with LOG.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.labd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while "lab ready" not in LOG.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            raise RuntimeError(f"the lab did not start:\n{LOG.read_text()[-3000:]}")
        time.sleep(0.2)


def stop() -> None:
    """End the daemon (asked, then by its PID) and everything of the lab's."""
    try:
        call("shutdown")
        deadline = time.monotonic() + 60
        while PIDFILE.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    except (LabDown, RuntimeError, OSError):
        pass
    if PIDFILE.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(PIDFILE.read_text()), signal.SIGKILL)
    for path in (SOCKET, PIDFILE):
        path.unlink(missing_ok=True)
    cleanup_unlocked()  # the daemon's lab if it was killed, and any other killed lab's; never a live one


def join() -> None:
    """Move this process into the running lab's network namespace (the Pulumi CLI, the stand-ins'
    127.0.0.1 addresses, the servers' 198.51.100.x are there); LabDown when there is none."""
    netns.enter(call("info")["netns_path"])


if __name__ == "__main__":
    serve()
