"""The test server's root filesystem: a debootstrapped Debian bookworm, cached as a zstd tarball.

The tarball's name carries a hash of the recipe (this file, the package list, the mirror, the
machine's CA certificates), so a changed recipe builds a new image and an unchanged one is only
unpacked (~1-2 s).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from . import netns
from .common import CACHE_DIR, GATEWAY, NET, PROXY_PORT, sh
from .hosttools import debian_mirror, debian_sources, ensure_host_tools

SUITE = "bookworm"  # the default image; "trixie" (Debian 13) builds from the same mirror
# python3-cffi-backend: debootstrap does not resolve virtual packages, and cloud-init's
# python3-cryptography depends on the virtual python3-cffi-backend-api-* it provides.
INCLUDE = "dbus,systemd-sysv,openssh-server,ca-certificates,cloud-init,sudo,iproute2,python3,python3-cffi-backend"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PROXY_URL = f"http://{GATEWAY}:{PROXY_PORT}"
# Hosts reached directly (the test network and whatever names the tests point at it).
# Images of another recipe (another branch's image.py) are kept while used this recently.
IMAGE_KEEP = 2 * 24 * 3600
NO_PROXY = f"localhost,127.0.0.1,::1,{NET}.0/24," + ",".join(f"{NET}.{i}" for i in range(1, 11))

# Gettys would open the machine's real consoles (one did, on the serial line): mask them.
MASKED_UNITS = (
    "console-getty.service",
    "getty@.service",
    "serial-getty@.service",
    "container-getty@.service",
    "getty.target",
)

CLOUD_CFG = """\
# Written by the django-vps test harness: user-data comes from the NoCloud seed only, and the
# network is configured from outside (the namespace's veth), as a Hetzner host's is by DHCP.
datasource_list: [NoCloud, None]
network:
  config: disabled
# Hetzner images log in as root with the keys given at creation.
disable_root: false
apt:
  preserve_sources_list: true
"""


def _recipe_hash(suite: str, mirror: str) -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(f"{suite}|{INCLUDE}|{mirror}|{debian_sources(suite)}".encode())
    for ca in sorted(EXTRA_CA_DIR.glob("*.crt")):
        h.update(ca.read_bytes())
    return h.hexdigest()[:16]


def _prefix(suite: str) -> str:
    # bookworm keeps the original names, so caches made before other suites existed stay valid.
    return "image-" if suite == SUITE else f"image-{suite}-"


def image_path(suite: str = SUITE) -> Path:
    return CACHE_DIR / f"{_prefix(suite)}{_recipe_hash(suite, debian_mirror(suite))}.tar.zst"


def build_image(*, suite: str = SUITE, force: bool = False) -> Path:
    """Return the cached image tarball of Debian `suite`, building it first if the recipe changed.

    Labs side by side share the cache: a build happens under a lock (a second lab waits for it
    rather than building too), the tarball appears whole (renamed into place) and each use touches
    it, so another recipe's build removes only images nobody has used for IMAGE_KEEP seconds.
    """
    ensure_host_tools()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = image_path(suite)
    if out.exists() and not force:
        out.touch()
        return out
    with open(CACHE_DIR / "image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, of any suite: they share the .deb cache
        if out.exists() and not force:
            return out
        _build(out, suite)
    stale = time.time() - IMAGE_KEEP
    for old in CACHE_DIR.glob(f"{_prefix(suite)}*.tar.zst"):
        if old != out and (suite != SUITE or old.name.count("-") == 1) and old.stat().st_mtime < stale:
            old.unlink(missing_ok=True)
    return out


def _build(out: Path, suite: str) -> None:
    mirror = debian_mirror(suite)
    # Not named like any lab's mounts (dvps-*, dvps<N>-*), so no lab's cleanup unmounts a build.
    work = CACHE_DIR / f"build-{suite}"
    remove_tree(work)
    work.mkdir(parents=True)
    # On these machines' ext4 creating many small files costs ~10x more than on tmpfs.
    sh(["mount", "-t", "tmpfs", "-o", "mode=755,size=4g", f"image-build-{suite}", work])
    root = work / "root"
    root.mkdir()
    debs = CACHE_DIR / "debootstrap-cache"  # keeps the .debs: a rebuild skips the downloads
    debs.mkdir(exist_ok=True)
    t0 = time.monotonic()
    try:
        # From the machine's network namespace: the mirror is not reachable from a lab's.
        sh(netns.in_machine(["debootstrap", f"--include={INCLUDE}", f"--cache-dir={debs}", suite, root, mirror]))
        configure(root, suite)
        tmp = out.with_suffix(".tmp")
        subprocess.run(
            f"tar -C {root} --numeric-owner --xattrs -cf - . | zstd -q -T0 -3 -f -o {tmp}",
            shell=True,
            check=True,
        )
        tmp.rename(out)
    finally:
        remove_tree(work)
    print(f"[testhost] built {out.name} in {time.monotonic() - t0:.0f}s")


def configure(root: Path, suite: str) -> None:
    """Everything the test image needs beyond debootstrap; none of it is the product's job."""
    etc = root / "etc"
    for unit in MASKED_UNITS:
        link = etc / "systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # debootstrap copied this machine's hostname and resolver: the server has its own.
    (etc / "hostname").write_text("dvps\n")
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text(f"nameserver {GATEWAY}\n")
    # The registries' TLS is re-signed by this machine's CAs: the server must trust them too.
    ca_dir = root / EXTRA_CA_DIR.relative_to("/")
    ca_dir.mkdir(parents=True, exist_ok=True)
    for ca in EXTRA_CA_DIR.glob("*.crt"):
        shutil.copy(ca, ca_dir / ca.name)
    sh(["chroot", root, "update-ca-certificates", "--fresh"])
    # The same Debian sources as this machine (bookworm, -updates, -security).
    lines = [f"deb {s.uri} {name} {' '.join(s.components)}" for s in debian_sources(suite) for name in s.suites]
    (etc / "apt/sources.list").write_text("\n".join(lines) + "\n")
    (etc / "apt/apt.conf.d/90dvps-proxy").write_text(
        f'Acquire::http::Proxy "{PROXY_URL}";\nAcquire::https::Proxy "{PROXY_URL}";\n'
    )
    # pam_env reads /etc/environment into every SSH session: pip, uv, npm, curl find the proxy.
    env = {
        "http_proxy": PROXY_URL,
        "https_proxy": PROXY_URL,
        "HTTP_PROXY": PROXY_URL,
        "HTTPS_PROXY": PROXY_URL,
        "no_proxy": NO_PROXY,
        "NO_PROXY": NO_PROXY,
        "SSL_CERT_FILE": CA_BUNDLE,
        "PIP_CERT": CA_BUNDLE,
        "REQUESTS_CA_BUNDLE": CA_BUNDLE,
        "CURL_CA_BUNDLE": CA_BUNDLE,
        "NODE_EXTRA_CA_CERTS": CA_BUNDLE,
        "UV_NATIVE_TLS": "1",
    }
    old = (etc / "environment").read_text() if (etc / "environment").exists() else ""
    (etc / "environment").write_text(old + "".join(f'{k}="{v}"\n' for k, v in env.items()))
    # sudo resets the environment and Debian's sudo does not run pam_env: keep the proxy settings
    # for `sudo -u <app user>` (the product's deploys fetch from PyPI that way).
    sudoers = etc / "sudoers.d/dvps-proxy"
    sudoers.write_text(f'Defaults env_keep += "{" ".join(env)}"\n')
    sudoers.chmod(0o440)
    (etc / "cloud/cloud.cfg.d/99_dvps.cfg").write_text(CLOUD_CFG)
    # cloud-init sets LANG=en_US.UTF-8, which fails unless generated (Hetzner's images have it).
    (etc / "locale.gen").write_text("en_US.UTF-8 UTF-8\n")
    sh(["chroot", root, "locale-gen"])
    # Per-server identity is made when a server is created, not shared by every copy.
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    (etc / "machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    sh(["chroot", root, "apt-get", "clean"])


def restore(tarball: Path, dest: Path) -> None:
    """Unpack the image into the empty directory `dest` (~1-2 s)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        f"zstd -q -dc {tarball} | tar -C {dest} --numeric-owner --xattrs -xpf -",
        shell=True,
        check=True,
    )


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts anything below `path` and never crosses into another fs."""
    if not path.exists():
        return
    for mnt in reversed(mounts_under(path)):
        subprocess.run(["umount", "-l", mnt], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def mounts_under(path: Path) -> list[str]:
    prefix = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]
