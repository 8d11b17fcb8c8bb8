"""A test server: the image unpacked, booted with systemd as PID 1 in its own namespaces.

Safety (see shared/notes/test-host.md): a private /dev with a handful of nodes, /dev/console a
null device node of its own (never the machine's /dev/null, which systemd would chmod), gettys
masked in the image, /proc/sys and /sys read-only (but /proc/sys/net), five capabilities dropped
from the bounding set, and the whole server in its own cgroup2 directory so one write to
cgroup.kill ends it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from . import netns
from .common import PREFIX, LabNames, kill_cgroup, make_cgroup, sh, spawn, wait_until
from .image import remove_tree, restore
from .keys import KeyPair, new_ed25519
from .network import create_host_netns, delete_netns

WFE_CA_NAME = "dvps-pebble-wfe.crt"
DROPPED_CAPS = "-sys_time,-sys_module,-sys_rawio,-sys_boot,-syslog"
BOOT_TIMEOUT = 60.0

# Runs as PID 1 of the new pid namespace (host's /bin/sh), mounts the server's world, pivots
# into it and execs systemd. $1 = the root filesystem.
BOOT_SCRIPT = r"""
set -eu
R="$1"
mount --make-rprivate /
mount --bind "$R" "$R"
cd "$R"
mount -t proc -o nosuid,nodev,noexec proc proc
# Kernel settings are machine-wide: read-only, except the server's own network namespace.
mount --bind proc/sys proc/sys
mount -o remount,bind,ro,nosuid,nodev,noexec proc/sys
mount --bind proc/sys/net proc/sys/net
mount -o remount,bind,rw,nosuid,nodev,noexec proc/sys/net
if [ -e proc/sysrq-trigger ]; then
  mount --bind proc/sysrq-trigger proc/sysrq-trigger
  mount -o remount,bind,ro proc/sysrq-trigger
fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 sys/fs/cgroup
# A private /dev: never the machine's real consoles or disks.
mount -t tmpfs -o mode=755,nosuid,size=16m dvps-dev dev
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
  set -- $n
  mknod -m 666 "dev/$1" c "$2" "$3"
done
mkdir dev/pts dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts dev/pts
ln -s pts/ptmx dev/ptmx
# A console of its own that discards: systemd chowns and chmods /dev/console (root:tty 0600), which
# on a bind mount of the machine's /dev/null broke /dev/null for every other user of the machine.
mknod -m 666 dev/console c 1 3
ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin
ln -s /proc/self/fd/1 dev/stdout
ln -s /proc/self/fd/2 dev/stderr
mount -t tmpfs -o mode=1777,nosuid,nodev shm dev/shm
mkdir -p .dvps-oldroot
pivot_root . .dvps-oldroot
cd /
umount -l /.dvps-oldroot
rmdir /.dvps-oldroot
exec /usr/bin/env -i container=dvps TERM=linux \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /usr/bin/setpriv --bounding-set DROPPED_CAPS /lib/systemd/systemd
""".replace("DROPPED_CAPS", DROPPED_CAPS)


class Server:
    """One test server. Create through `Lab.server(...)`."""

    def __init__(
        self,
        name: str,
        ip: str,
        *,
        names: LabNames,
        run_dir: Path,
        image: Path,
        wfe_ca_pem: str,
        user_data: str | None = None,
        root_authorized_keys: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.ip = ip
        self.dir = run_dir / "servers" / name
        self.rootfs = self.dir / "root"
        self.names = names
        self.netns = names.netns(name)
        self.cgroup = names.cgroup / name
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid1: int | None = None
        restore(image, self.rootfs)
        self._personalise(user_data, list(root_authorized_keys), wfe_ca_pem)
        create_host_netns(names, name, ip)

    # --- preparing the root filesystem -------------------------------------------------------

    def _personalise(self, user_data: str | None, keys: list[str], wfe_ca_pem: str) -> None:
        etc = self.rootfs / "etc"
        (etc / "hostname").write_text(f"{self.name}\n")
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n::1\tlocalhost ip6-localhost\n")
        # Fresh host keys per server (the image carries none): ~1 s, mostly RSA.
        sh(["ssh-keygen", "-A", "-f", self.rootfs])
        if keys:
            ssh_dir = self.rootfs / "root/.ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            (ssh_dir / "authorized_keys").write_text("".join(k.strip() + "\n" for k in keys))
            (ssh_dir / "authorized_keys").chmod(0o600)
        if user_data is not None:
            seed = self.rootfs / "var/lib/cloud/seed/nocloud"
            seed.mkdir(parents=True, exist_ok=True)
            (seed / "user-data").write_text(user_data)
            instance = f"{PREFIX}-{self.name}-{os.urandom(4).hex()}"
            (seed / "meta-data").write_text(f"instance-id: {instance}\nlocal-hostname: {self.name}\n")
        # certbot must trust pebble's HTTPS endpoint: same as update-ca-certificates would do.
        ca_dir = self.rootfs / "usr/local/share/ca-certificates"
        ca_dir.mkdir(parents=True, exist_ok=True)
        (ca_dir / WFE_CA_NAME).write_text(wfe_ca_pem)
        with open(self.rootfs / "etc/ssl/certs/ca-certificates.crt", "a") as bundle:
            bundle.write(wfe_ca_pem)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def pid1(self) -> int | None:
        """systemd's PID as seen from the root side, or None when stopped."""
        if self._pid1 is not None and Path(f"/proc/{self._pid1}").exists():
            return self._pid1
        return None

    def boot(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Start systemd and return once sshd accepts connections on :22."""
        if self.pid1:
            raise RuntimeError(f"{self.name} is already running")
        make_cgroup(self.cgroup)
        script = self.dir / "boot.sh"
        script.write_text(BOOT_SCRIPT)
        argv = [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--uts",
            "--ipc",
            "--cgroup",
            "--propagation",
            "private",
            "/bin/sh",
            script,
            self.rootfs,
        ]
        # Joins the cgroup *before* unshare --cgroup: that directory becomes the server's root.
        self._proc = spawn(self.cgroup, argv, self.dir / "console.log", append=True)
        self._pid1 = None
        wait_until(f"{self.name}'s PID 1", self._find_pid1, 10)
        deadline = time.monotonic() + timeout
        while not self._ssh_banner():
            if self._proc.poll() is not None:
                tail = (self.dir / "console.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} stopped while booting:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: sshd not up after {timeout:.0f}s")
            time.sleep(0.1)

    def _find_pid1(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            tail = (self.dir / "console.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} stopped while booting:\n{tail}")
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        try:
            pids = children.read_text().split()
        except FileNotFoundError:
            return False
        if pids:
            self._pid1 = int(pids[0])
        return bool(pids)

    def _ssh_banner(self) -> bool:
        try:
            # From the lab's namespace, whichever one the calling thread is in.
            with netns.connect(self.names.lab_netns_path, (self.ip, 22), timeout=1) as s:
                s.settimeout(2)
                return s.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """Power off cleanly (systemd's poweroff), keeping the root filesystem."""
        pid = self.pid1
        if pid:
            os.kill(pid, signal.SIGRTMIN + 4)  # systemd: start poweroff.target
            with contextlib.suppress(TimeoutError):
                wait_until(f"{self.name} to power off", lambda: self.pid1 is None, timeout)
        self._end_cgroup()

    def reboot(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Stop, then boot again on the same root filesystem."""
        self.stop()
        self.boot(timeout)

    def wait_stopped(self, timeout: float = 60.0) -> None:
        """Wait for PID 1 to end by itself (after `systemctl reboot/poweroff` inside)."""
        wait_until(f"{self.name} to stop", lambda: self.pid1 is None, timeout)
        self._end_cgroup()

    def _end_cgroup(self) -> None:
        kill_cgroup(self.cgroup)
        if self._proc is not None:
            self._proc.wait(timeout=10)
            self._proc = None
        self._pid1 = None

    def teardown(self) -> None:
        """Kill everything, remove the netns and the root filesystem."""
        self._end_cgroup()
        delete_netns(self.names, self.name)
        remove_tree(self.dir)

    # --- looking inside ----------------------------------------------------------------------

    def host_public_key(self, kind: str = "ed25519") -> str:
        """'ssh-<kind> AAAA…' as on disk now (cloud-init may have replaced the image's keys)."""
        line = (self.rootfs / f"etc/ssh/ssh_host_{kind}_key.pub").read_text().split()
        return f"{line[0]} {line[1]}"

    def environment(self) -> dict[str, str]:
        """The server's /etc/environment (proxy and CA settings), as pam_env gives SSH sessions."""
        env = {}
        for line in (self.rootfs / "etc/environment").read_text().splitlines():
            key, eq, value = line.partition("=")
            if eq and not line.startswith("#"):
                env[key.strip()] = value.strip().strip('"')
        return env

    def add_sudo_login(self, user: str = "admin") -> KeyPair:
        """A login the way a server someone already has comes: `user` with a new key and
        passwordless sudo. Returns the key pair."""
        login = new_ed25519()
        self.run(
            f"useradd --create-home --shell /bin/bash {user}"
            f" && install -d -m 700 -o {user} -g {user} /home/{user}/.ssh"
            f" && echo '{login.public}' > /home/{user}/.ssh/authorized_keys"
            f" && chown {user}:{user} /home/{user}/.ssh/authorized_keys"
            f" && echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{user}",
            check=True,
        )
        return login

    def run(self, cmd: str, *, check: bool = False, timeout: float | None = 300) -> subprocess.CompletedProcess[str]:
        """Run `cmd` with /bin/sh inside the running server as root (for test assertions)."""
        pid = self.pid1
        if not pid:
            raise RuntimeError(f"{self.name} is not running")
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
            **self.environment(),
        }
        argv = [
            "nsenter",
            "-t",
            str(pid),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "-C",
            "-r",
            "-w",
            "/usr/bin/env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            "/bin/sh",
            "-c",
            cmd,
        ]
        proc = subprocess.run(argv, text=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: {shlex.quote(cmd)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc
