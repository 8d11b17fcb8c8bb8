"""Hetzner Volumes in the lab: a sparse file in the lab's run directory, attached to a test server as
a loop device whose node (and udev's by-id link, `/dev/disk/by-id/scsi-0HC_Volume_<id>`, which
Hetzner's servers have) the stand-in makes in that server's private /dev.

Why this is safe inside the test server (notes/test-host.md's rules stay as they are):
- the server's /dev is a private tmpfs; the only block node ever made there is the one loop device
  attached to the lab's own file, with exactly that device's major:minor (read from /sys), so no path
  in the server reaches the machine's disks;
- udev does not run in the server (/sys is read-only: systemd-udevd's condition fails), so nothing
  there reacts to the node; the by-id link is made here, as Hetzner's udev rule would;
- this machine runs no udev either, so no host-side rule probes or mounts the loop device; the file
  is never a device of the machine: mkfs runs on the file, before any loop device exists;
- each file has at most one loop device, ever: an attach waits until the last one on the file is
  gone (the kernel drops a detached loop device when its last user, a mount inside a server that is
  being removed, lets go), so two servers never mount one filesystem;
- every loop device on a file under the lab's run directories is detached at teardown and by
  `detach_leftovers` (a killed run), found by its backing file, never by number.
It is still not a security boundary (the server keeps CAP_MKNOD and CAP_SYS_ADMIN): only our own
tool runs there.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Server

DEVICE_LINK = "/dev/disk/by-id/scsi-0HC_Volume_{id}"
RELEASE_TIMEOUT = 30.0


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def loops_of(path: Path) -> list[str]:
    """The loop devices whose backing file is `path` (losetup -j)."""
    out = subprocess.run(["losetup", "-j", str(path)], capture_output=True, text=True, check=False).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]


def detach_leftovers(prefix: str) -> None:
    """Detach every loop device whose backing file lies under a path starting with `prefix`."""
    out = subprocess.run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        name, _, back = line.strip().partition(" ")
        if back.strip().startswith(prefix):
            subprocess.run(["losetup", "-d", name], check=False, capture_output=True)


class LoopVolumes:
    """The lab's volumes: files in `directory`, attached to servers as loop devices."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.loops: dict[int, str] = {}
        """Volume id -> its loop device while attached."""

    def file(self, volume_id: int) -> Path:
        return self.directory / f"volume-{volume_id}.img"

    def create(self, volume_id: int, size_gb: int, fs_format: str | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.file(volume_id)
        _run(["truncate", "-s", f"{size_gb}G", str(path)])
        if fs_format == "ext4":
            # On the file, as Hetzner formats a new volume once: lazy init keeps the sparse file small.
            _run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", str(path)])
        elif fs_format is not None:
            raise ValueError(f"the lab formats volumes ext4 only, not {fs_format}")

    def attach(self, volume_id: int, server: Server) -> None:
        path = self.file(volume_id)
        deadline = time.monotonic() + RELEASE_TIMEOUT
        while loops_of(path):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"volume {volume_id}: its loop device {loops_of(path)} is still held by the server it was "
                    "detached from (the lab gives a file one loop device at a time)"
                )
            time.sleep(0.2)
        loop = _run(["losetup", "--find", "--show", str(path)])
        self.loops[volume_id] = loop
        self.plug(volume_id, server)

    def plug(self, volume_id: int, server: Server) -> None:
        """The device node and its by-id link in the running server's /dev (again after each boot)."""
        loop = self.loops[volume_id]
        name = Path(loop).name
        major, minor = Path(f"/sys/block/{name}/dev").read_text().strip().split(":")
        link = DEVICE_LINK.format(id=volume_id)
        if server.pid1:
            server.run(
                f"rm -f /dev/{name} && mknod -m 0660 /dev/{name} b {int(major)} {int(minor)} && "
                f"mkdir -p /dev/disk/by-id && ln -sfn ../../{name} {link}",
                check=True,
            )

    def detach(self, volume_id: int, server: Server | None) -> None:
        loop = self.loops.pop(volume_id, None)
        if loop is None:
            return
        if server is not None and server.pid1:
            # The device leaves the server, as a detached volume's does.
            server.run(f"rm -f {DEVICE_LINK.format(id=volume_id)} /dev/{Path(loop).name}", check=True)
        # Autoclear: the kernel drops it once nothing holds it (a mount in a server being removed).
        subprocess.run(["losetup", "-d", loop], check=False, capture_output=True)

    def resize(self, volume_id: int, size_gb: int) -> None:
        _run(["truncate", "-s", f"{size_gb}G", str(self.file(volume_id))])
        if volume_id in self.loops:
            _run(["losetup", "-c", self.loops[volume_id]])  # the attached server sees the new size

    def delete(self, volume_id: int) -> None:
        self.detach(volume_id, None)
        self.file(volume_id).unlink(missing_ok=True)
