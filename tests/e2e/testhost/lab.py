"""The lab: the test network with its proxy, DNS and ACME CA, plus the servers and the forge; up to
eight labs side by side, each with its own id, names and network namespace."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import netns
from .acme import Pebble, TestDNS
from .common import (
    GATEWAY,
    LAB_IDS,
    PROXY_PORT,
    LabNames,
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
from .network import create_lab_netns, own_netns
from .server import Server
from .volumes import detach_leftovers

if TYPE_CHECKING:
    from .s3 import S3Storage

REGISTRY_HOSTS = ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org")


class LabBusy(RuntimeError):
    """The lab id asked for is held by a live lab."""


def _try_lock(names: LabNames) -> int | None:
    """flock the id's lock file without waiting: the fd (close it to release), or None when taken.
    The fd is close-on-exec, so no child keeps the id after this process dies."""
    names.lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(names.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def acquire(lab_id: int | None = None) -> tuple[int, LabNames]:
    """Lock lab id `lab_id`, or the first free one: (the lock's fd, the id's names)."""
    for candidate in LAB_IDS if lab_id is None else [lab_id]:
        names = LabNames(candidate)
        fd = _try_lock(names)
        if fd is not None:
            return fd, names
    if lab_id is not None:
        raise LabBusy(f"lab {lab_id} is in use ({LabNames(lab_id).lock_file} is locked)")
    raise LabBusy(f"all {len(LAB_IDS)} lab ids are in use: end a lab (tests/lab down) or wait for one")


def cleanup_leftovers(names: LabNames) -> None:
    """Remove everything of lab `names.id` a killed run may have left, found by name (dvps<N>-*).
    Call it only while holding that id's lock: then no live lab owns any of it.

    Processes: every one the lab starts lives under its cgroup, so cgroup.kill ends them all
    without guessing PIDs (the proxy too, though it runs in the machine's namespace). Then its
    namespaces (the lab's own with its bridge and veth ends goes with them), mounts and run dirs.
    """
    kill_cgroup(names.cgroup)
    # The Hetzner stand-in's volumes: loop devices on files in this lab id's run directories.
    detach_leftovers(str(Path(tempfile.gettempdir()) / names.run_dir_prefix))
    for ns in own_netns(names):
        sh(["ip", "netns", "del", ns], check=False)
    for mnt in sorted(_own_mounts(names), reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False)
    for d in Path(tempfile.gettempdir()).glob(f"{names.run_dir_prefix}*"):
        remove_tree(d)
    names.state_file.unlink(missing_ok=True)


def cleanup_unlocked() -> list[int]:
    """Remove the leftovers of every lab id nobody holds (killed labs); the ids cleaned."""
    cleaned = []
    for candidate in LAB_IDS:
        names = LabNames(candidate)
        fd = _try_lock(names)
        if fd is None:
            continue
        try:
            if leftovers(names) or names.state_file.exists():
                cleanup_leftovers(names)
                cleaned.append(candidate)
        finally:
            os.close(fd)
    return cleaned


def leftovers(names: LabNames) -> list[str]:
    """What of lab `names.id` still exists (empty after a clean teardown): for tests and `status`."""
    found = [f"netns {n}" for n in own_netns(names)]
    found += [f"mount {m}" for m in _own_mounts(names)]
    if names.cgroup.exists():
        found.append(f"cgroup {names.cgroup}")
    found += [f"dir {d}" for d in Path(tempfile.gettempdir()).glob(f"{names.run_dir_prefix}*")]
    return found


def _own_mounts(names: LabNames) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if f"/{names.prefix}-" in p]


class Lab:
    """Context manager (or call start()/teardown() yourself).

    start() takes the first free lab id (or `lab_id`), removes that id's leftovers, makes the lab's
    network namespace and moves this process into it (from the main thread): from then on this
    process and everything it starts sees the lab's 198.51.100.0/24, and teardown() moves it back.
    A second Lab started in the same process nests: its teardown returns to the first one's.
    """

    def __init__(self, image: Path | None = None, *, lab_id: int | None = None) -> None:
        self.image = image
        self._want_id = lab_id
        self.names: LabNames | None = None
        self._lock_fd: int | None = None
        self._outer_ns: int | None = None
        self._first = netns.machine_path() is None  # not nested in another lab of this process
        self.run_dir: Path | None = None
        self.servers: dict[str, Server] = {}
        self._forge: Forge | None = None
        self._metadata: MetadataService | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self.dns: TestDNS
        self.pebble: Pebble
        self.timings: dict[str, float] = {}
        self.detached = False

    @property
    def id(self) -> int:
        assert self.names is not None, "lab not started"
        return self.names.id

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Lab:
        self._lock_fd, names = acquire(self._want_id)
        self.names = names
        cleanup_leftovers(names)
        ensure_host_tools()
        t0 = time.monotonic()
        self.image = self.image or build_image()
        self.timings["image"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.run_dir = Path(tempfile.mkdtemp(prefix=names.run_dir_prefix))
        # Root filesystems live in RAM: unpacking onto this machine's ext4 takes ~10 s, onto
        # tmpfs ~1 s. A tmpfs only takes the memory its files use.
        sh(["mount", "-t", "tmpfs", "-o", "mode=700,size=16g", f"{names.run_dir_prefix}tmpfs", self.run_dir])
        daemons = make_cgroup(names.cgroup / "_lab")
        create_lab_netns(names)
        self._outer_ns = netns.enter(names.lab_netns_path)
        left_out = netns.stragglers()
        if left_out and self._first:
            # Their sockets and children stay outside the lab (seen: gRPC's, started by a CLI run
            # before the lab, then "connection refused" from the CLI's resource monitor).
            warnings.warn(f"threads started before the lab stay outside its network: {left_out}", stacklevel=2)
        self._start_proxy(daemons)
        self.dns = TestDNS(self.run_dir, daemons)
        self.pebble = Pebble(self.run_dir, daemons)
        self._procs += [self.dns.proc, self.pebble.proc]
        self.timings["lab_start"] = time.monotonic() - t0
        self._save_state()
        return self

    def _start_proxy(self, cgroup: Path) -> None:
        """The servers' only way out: it listens in the lab (a socket made here, in the lab's
        namespace) and runs in the machine's namespace, where the mirrors and registries are."""
        assert self.run_dir is not None
        allow = sorted({*apt_hosts(), *REGISTRY_HOSTS})
        log = self.run_dir / "proxy.log"
        with socket.create_server((GATEWAY, PROXY_PORT), backlog=128) as listening:
            fd = listening.fileno()
            argv = [sys.executable, Path(__file__).with_name("proxy.py"), "--fd", str(fd), "--allow", *allow]
            self._procs.append(spawn(cgroup, netns.in_machine(argv), log, pass_fds=(fd,)))

        def serving() -> bool:
            if self._procs[-1].poll() is not None:
                raise RuntimeError(f"the proxy exited:\n{log.read_text()}")
            return "proxy on" in log.read_text()

        wait_until("proxy", serving, 10)

    def teardown(self) -> None:
        """Remove everything this lab made; safe to call twice and after a failed start."""
        t0 = time.monotonic()
        try:
            for server in list(self.servers.values()):
                server.teardown()
            self.servers.clear()
            if self._forge:
                self._forge.teardown()
                self._forge = None
            if self._metadata:
                self._metadata.teardown()
                self._metadata = None
            if self.names:
                kill_cgroup(self.names.cgroup / "_lab")
            for proc in self._procs:
                proc.wait(timeout=10)
            self._procs.clear()
        finally:
            if self._outer_ns is not None:
                netns.leave(self._outer_ns)  # before the namespace goes: nothing of ours is left in it
                self._outer_ns = None
            try:
                if self.run_dir:
                    detach_leftovers(str(self.run_dir) + "/")
                    remove_tree(self.run_dir)
                    self.run_dir = None
                if self.names:
                    cleanup_leftovers(self.names)  # anything of ours not tracked above (and the state file)
                    if self.names.cgroup.exists():
                        self.names.cgroup.rmdir()
            finally:
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None
        self.timings["teardown"] = time.monotonic() - t0

    def detach(self) -> None:
        """Let the lab outlive this process (`python -m tests.e2e.testhost up`): a keeper process in
        the lab's cgroup inherits the id's lock, so it stays taken until `down` kills the cgroup."""
        assert self.names is not None and self._lock_fd is not None and self.run_dir is not None
        keeper = ["sleep", "infinity"]
        spawn(self.names.cgroup / "_lab", keeper, self.run_dir / "keeper.log", pass_fds=(self._lock_fd,))
        self.detached = True
        self._save_state()
        if self._outer_ns is not None:
            netns.leave(self._outer_ns)
            self._outer_ns = None
        os.close(self._lock_fd)
        self._lock_fd = None

    def run_in(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run argv in this lab's network namespace (whichever namespace this process is in)."""
        assert self.names is not None, "lab not started"
        return subprocess.run(
            ["nsenter", f"--net={self.names.lab_netns_path}", *argv], text=True, capture_output=True, **kwargs
        )

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
        assert self.names is not None
        srv = Server(
            name,
            ip,
            names=self.names,
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
            assert self.names is not None
            self._forge = Forge(self.names, self.run_dir, ip)
        return self._forge

    def metadata(self) -> MetadataService:
        """Hetzner's metadata service at 169.254.169.254 (one per lab, started on first use); the
        Hetzner stand-in registers each server it creates."""
        assert self.run_dir is not None, "lab not started"
        if self._metadata is None:
            assert self.names is not None
            self._metadata = MetadataService(self.names, self.run_dir)
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
        assert self.names is not None
        self.names.state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "id": self.names.id,
            "pid": os.getpid(),
            "netns": self.names.lab_netns,
            "detached": self.detached,
            "run_dir": str(self.run_dir),
            "servers": {n: {"ip": s.ip, "rootfs": str(s.rootfs)} for n, s in self.servers.items()},
        }
        tmp = self.names.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.names.state_file)


def load_state(lab_id: int) -> dict[str, Any] | None:
    try:
        return json.loads(LabNames(lab_id).state_file.read_text())
    except FileNotFoundError:
        return None


def states() -> list[dict[str, Any]]:
    """The state of every lab that has one (live, or killed and not cleaned yet)."""
    return [state for lab_id in LAB_IDS if (state := load_state(lab_id)) is not None]


__all__ = [
    "Lab", "LabBusy", "acquire", "cleanup_leftovers", "cleanup_unlocked", "leftovers", "load_state", "mounts_under",
    "states",
]  # fmt: skip
