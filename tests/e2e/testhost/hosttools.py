"""Root-side tools the harness needs, and what the machine's apt sources say."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import netns

# Debian package -> an absolute path it installs (how we tell it is there).
HOST_PACKAGES: dict[str, str] = {
    "debootstrap": "/usr/sbin/debootstrap",
    "pebble": "/usr/bin/pebble-challtestsrv",
    "iproute2": "/usr/bin/ip",
    "openssh-server": "/usr/sbin/sshd",
    "openssh-client": "/usr/bin/ssh-keygen",
    "zstd": "/usr/bin/zstd",
    "git": "/usr/bin/git",
    "util-linux": "/usr/bin/unshare",
    "debian-archive-keyring": "/usr/share/keyrings/debian-archive-keyring.gpg",
}
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def ensure_host_tools() -> None:
    """apt-get install whatever the harness needs and is missing on this (root) machine.

    openssh-server must not start on the machine itself: a temporary policy-rc.d forbids
    invoke-rc.d from starting any daemon during the install (the forge runs its own sshd).
    """
    missing = [pkg for pkg, path in HOST_PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    placed = not POLICY_RC_D.exists()
    if placed:
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        # In the machine's network namespace, wherever this process is (the mirror is outside the labs).
        subprocess.run(netns.in_machine(["apt-get", "update", "-qq"]), check=True, env=env)
        subprocess.run(
            netns.in_machine(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]),
            check=True,
            env=env,
        )
    finally:
        if placed:
            POLICY_RC_D.unlink(missing_ok=True)


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]

    @property
    def host(self) -> str:
        return urlsplit(self.uri).hostname or ""


def _deb822(text: str) -> list[AptSource]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append(AptSource(uri, tuple(fields["suites"].split()), tuple(fields["components"].split())))
    return out


def _one_line(text: str) -> list[AptSource]:
    out = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            out.append(AptSource(words[1], (words[2],), tuple(words[3:])))
    return out


def apt_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """The machine's enabled binary apt sources (both the one-line and the deb822 format)."""
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    out = [s for f in files if f.is_file() for s in _one_line(f.read_text())]
    for f in sorted((etc / "sources.list.d").glob("*.sources")):
        out += _deb822(f.read_text())
    return out


def debian_sources(suite: str = "bookworm") -> list[AptSource]:
    """Sources of Debian `suite` itself and its -updates/-security companions. For a suite this
    machine does not use (trixie on a bookworm machine), the same mirrors under the other name."""
    own = [s for s in apt_sources() if any(x.split("-")[0] == suite for x in s.suites)]
    if own:
        return own
    return [
        AptSource(s.uri, tuple(x.replace("bookworm", suite, 1) for x in s.suites), s.components)
        for s in debian_sources("bookworm")
    ]


def debian_mirror(suite: str = "bookworm") -> str:
    for s in debian_sources(suite):
        if suite in s.suites and "main" in s.components:
            return s.uri
    raise RuntimeError(f"no apt source for Debian {suite} main on this machine")


def apt_hosts() -> list[str]:
    return sorted({s.host for s in apt_sources() if s.host})


def which(cmd: str) -> str:
    path = shutil.which(cmd)
    if not path:
        raise RuntimeError(f"{cmd} not found; run ensure_host_tools()")
    return path
