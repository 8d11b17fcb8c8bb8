"""The lab: the test network with its proxy, DNS and ACME CA, plus the servers and the forge."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .acme import Pebble, TestDNS
from .common import (
    BRIDGE,
    CACHE_DIR,
    CGROUP_ROOT,
    GATEWAY,
    PROXY_PORT,
    RUN_DIR_PREFIX,
    kill_cgroup,
    make_cgroup,
    sh,
    spawn,
    wait_until,
)
from .forge import Forge
from .github_api import DeployKeyEvent, GitHubAPI, GitHubModel
from .hetzner_api import HetznerAPI, LabMachines
from .hosttools import apt_hosts, ensure_host_tools
from .image import build_image, mounts_under, remove_tree
from .metadata import MetadataService
from .network import create_bridge, delete_netns, own_links, own_netns
from .server import Server
from .volumes import detach_leftovers

if TYPE_CHECKING:
    from .s3 import S3Storage

REGISTRY_HOSTS = ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org")
STATE_FILE = CACHE_DIR / "lab.json"  # lets `python -m tests.e2e.testhost ssh|down` find it


def cleanup_leftovers() -> None:
    """Remove everything of ours a killed run may have left, found by name (dvps-*).

    Processes: every one we start lives under the dvps cgroup, so cgroup.kill ends them all
    without guessing PIDs. Then namespaces, links, mounts and run directories.
    """
    kill_cgroup(CGROUP_ROOT)
    tmp = Path(tempfile.gettempdir())
    # The Hetzner stand-in's volumes: loop devices on files in our run directories.
    detach_leftovers(str(tmp / RUN_DIR_PREFIX))
    for ns in own_netns():
        delete_netns(ns)
    for link in own_links():
        sh(["ip", "link", "del", link], check=False)
    for mnt in sorted(_own_mounts(), reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False)
    for d in tmp.glob(f"{RUN_DIR_PREFIX}*"):
        remove_tree(d)
    STATE_FILE.unlink(missing_ok=True)


def leftovers() -> list[str]:
    """What of ours still exists (empty after a clean teardown): for tests and `status`."""
    found = [f"netns {n}" for n in own_netns()] + [f"link {n}" for n in own_links()]
    found += [f"mount {m}" for m in _own_mounts()]
    if CGROUP_ROOT.exists():
        found.append(f"cgroup {CGROUP_ROOT}")
    found += [f"dir {d}" for d in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*")]
    return found


def _own_mounts() -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if "/dvps-" in p or p.startswith("/run/netns/dvps-")]


class Lab:
    """Context manager (or call start()/teardown() yourself)."""

    def __init__(self, image: Path | None = None) -> None:
        self.image = image
        self.run_dir: Path | None = None
        self.servers: dict[str, Server] = {}
        self._forge: Forge | None = None
        self._metadata: MetadataService | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self.dns: TestDNS
        self.pebble: Pebble
        self.timings: dict[str, float] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Lab:
        cleanup_leftovers()
        ensure_host_tools()
        t0 = time.monotonic()
        self.image = self.image or build_image()
        self.timings["image"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
        # Root filesystems live in RAM: unpacking onto this machine's ext4 takes ~10 s, onto
        # tmpfs ~1 s. A tmpfs only takes the memory its files use.
        sh(["mount", "-t", "tmpfs", "-o", "mode=700,size=16g", f"{RUN_DIR_PREFIX}tmpfs", self.run_dir])
        daemons = make_cgroup(CGROUP_ROOT / "_lab")
        create_bridge()
        self._start_proxy(daemons)
        self.dns = TestDNS(self.run_dir, daemons)
        self.pebble = Pebble(self.run_dir, daemons)
        self._procs += [self.dns.proc, self.pebble.proc]
        self.timings["lab_start"] = time.monotonic() - t0
        self._save_state()
        return self

    def _start_proxy(self, cgroup: Path) -> None:
        assert self.run_dir is not None
        allow = sorted({*apt_hosts(), *REGISTRY_HOSTS})
        argv = [
            sys.executable,
            Path(__file__).with_name("proxy.py"),
            "--listen",
            f"{GATEWAY}:{PROXY_PORT}",
            "--allow",
            *allow,
        ]
        self._procs.append(spawn(cgroup, argv, self.run_dir / "proxy.log"))

        def listening() -> bool:
            return f"{GATEWAY}:{PROXY_PORT}" in sh(["ss", "-ltnH"]).stdout

        wait_until("proxy", listening, 10)

    def teardown(self) -> None:
        """Remove everything this lab made; safe to call twice and after a failed start."""
        t0 = time.monotonic()
        for server in list(self.servers.values()):
            server.teardown()
        self.servers.clear()
        if self._forge:
            self._forge.teardown()
            self._forge = None
        if self._metadata:
            self._metadata.teardown()
            self._metadata = None
        kill_cgroup(CGROUP_ROOT / "_lab")
        for proc in self._procs:
            proc.wait(timeout=10)
        self._procs.clear()
        sh(["ip", "link", "del", BRIDGE], check=False)
        if self.run_dir:
            detach_leftovers(str(self.run_dir) + "/")
            remove_tree(self.run_dir)
            self.run_dir = None
        cleanup_leftovers()  # anything of ours not tracked above (and the state file)
        if CGROUP_ROOT.exists():
            CGROUP_ROOT.rmdir()
        self.timings["teardown"] = time.monotonic() - t0

    def __enter__(self) -> Lab:
        try:
            return self.start()
        except BaseException:
            self.teardown()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown()

    # --- hosts -------------------------------------------------------------------------------

    def server(
        self,
        name: str,
        ip: str,
        *,
        user_data: str | None = None,
        root_authorized_keys: list[str] | tuple[str, ...] = (),
        boot: bool = True,
        image: Path | None = None,
    ) -> Server:
        """A new server from the lab's image (or `image`) at `ip` (198.51.100.x); booted unless
        boot=False."""
        assert self.run_dir is not None and self.image is not None, "lab not started"
        if name in self.servers:
            raise ValueError(f"server {name!r} exists")
        if any(other.ip == ip for other in self.servers.values()):
            # Two namespaces answering ARP for one address: SSH would reach either (and fail its host key).
            raise ValueError(f"{ip} is taken by another server of this lab: remove() it first")
        t0 = time.monotonic()
        srv = Server(
            name,
            ip,
            run_dir=self.run_dir,
            image=image or self.image,
            wfe_ca_pem=self.wfe_ca_pem,
            user_data=user_data,
            root_authorized_keys=root_authorized_keys,
        )
        self.servers[name] = srv
        self.timings[f"{name}_restore"] = time.monotonic() - t0
        if boot:
            t0 = time.monotonic()
            srv.boot()
            self.timings[f"{name}_boot_to_ssh"] = time.monotonic() - t0
        self._save_state()
        return srv

    def remove(self, name: str) -> None:
        """Tear one server down (its address becomes free for another)."""
        self.servers.pop(name).teardown()
        self._save_state()

    def forge(self, ip: str = "198.51.100.3") -> Forge:
        """The git forge (one per lab; a second call returns the same one)."""
        assert self.run_dir is not None, "lab not started"
        if self._forge is None:
            self._forge = Forge(self.run_dir, ip)
        return self._forge

    def metadata(self) -> MetadataService:
        """Hetzner's metadata service at 169.254.169.254 (one per lab, started on first use); the
        Hetzner stand-in registers each server it creates."""
        assert self.run_dir is not None, "lab not started"
        if self._metadata is None:
            self._metadata = MetadataService(self.run_dir)
        return self._metadata

    def hetzner_api(self, images: dict[str, Path] | None = None) -> HetznerAPI:
        """A started stand-in for the Hetzner Cloud API (its `url` is `hcloud:endpoint`): its servers
        boot here from `images` (name -> image; debian-12/13 by default) with the request's user_data,
        which the lab's metadata service (`metadata()`) also serves back to each, and its A records go
        into this lab's DNS. Stop it when done; teardown removes its servers."""
        return HetznerAPI(machines=LabMachines(self, images)).start()

    def github_api(self, owner: str, token: str, repositories: tuple[str, ...] = ()) -> GitHubAPI:
        """A started stand-in for GitHub's REST API (its `url` is the provider's `baseUrl`) for `owner`
        and `token`, holding `repositories`: its deploy keys are authorized on this lab's forge as
        they come and go, read-only ones for fetching only. Stop it when done."""
        forge = self.forge()

        def on_deploy_key(event: DeployKeyEvent) -> None:
            if event.added:
                forge.add_deploy_key(event.key, read_only=event.read_only)
            else:
                forge.remove_deploy_key(event.key)

        model = GitHubModel(owner, token, on_deploy_key=on_deploy_key)
        for name in repositories:
            model.create_repository(name)
        return GitHubAPI(model).start()

    def s3_storage(self) -> S3Storage:
        """A started stand-in for S3-compatible storage at https://<gateway>:<port> (its `endpoint`),
        with one access key (`access_key_id`, `secret_access_key`) and the certificate every lab server
        trusts (pebble's WFE one). Stop it when done."""
        from .s3 import S3Storage

        return S3Storage(self.pebble.wfe_cert_path, self.pebble.wfe_key_path).start()

    # --- DNS and ACME ------------------------------------------------------------------------

    def set_a(self, name: str, ipv4: str) -> None:
        self.dns.set_a(name, ipv4)

    def set_aaaa(self, name: str, ipv6: str) -> None:
        self.dns.set_aaaa(name, ipv6)

    def clear(self, name: str) -> None:
        self.dns.clear(name)

    @property
    def acme_directory(self) -> str:
        return self.pebble.directory

    def acme_ca_pem(self) -> str:
        """pebble's issuing root (regenerated at each lab start): what issued certs chain to."""
        return self.pebble.issuing_root_pem()

    @property
    def wfe_ca_pem(self) -> str:
        """The CA of pebble's own HTTPS endpoint; every server already trusts it."""
        return self.pebble.wfe_ca_pem

    @property
    def proxy_url(self) -> str:
        return f"http://{GATEWAY}:{PROXY_PORT}"

    @property
    def dns_server(self) -> str:
        return GATEWAY

    # --- state for the CLI -------------------------------------------------------------------

    def _save_state(self) -> None:
        STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "run_dir": str(self.run_dir),
            "servers": {n: {"ip": s.ip, "rootfs": str(s.rootfs)} for n, s in self.servers.items()},
        }
        STATE_FILE.write_text(json.dumps(state, indent=2))


def load_state() -> dict[str, object] | None:
    try:
        return json.loads(STATE_FILE.read_text())
    except FileNotFoundError:
        return None


__all__ = ["Lab", "cleanup_leftovers", "leftovers", "load_state", "mounts_under"]
