"""Names, addresses and small process helpers shared by the test-host modules."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Everything a lab creates carries the prefix of its id, dvps<N> (N in LAB_IDS), so a later lab of
# that id can find and remove the leftovers of a killed one by name alone, and never touches what
# another lab (another id, or the older one-lab harness's "dvps-" names) owns.
PREFIX = "dvps"
LAB_IDS = range(8)
NET = "198.51.100"  # TEST-NET-2, inside each lab's own namespace; the other TEST-NETs are this machine's uplink.
GATEWAY = f"{NET}.1"
PROXY_PORT = 3128
CGROUP_BASE = Path("/sys/fs/cgroup/unified")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "django-vps"
LOCK_DIR = Path("/run")


@dataclass(frozen=True)
class LabNames:
    """The names of everything lab `id` makes on this machine."""

    id: int

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.id}"

    @property
    def lab_netns(self) -> str:
        """The lab's own network namespace: its bridge, the root-side services, the tests' clients."""
        return f"{self.prefix}-lab"

    @property
    def lab_netns_path(self) -> str:
        return f"/run/netns/{self.lab_netns}"

    def netns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def cgroup(self) -> Path:
        return CGROUP_BASE / self.prefix

    @property
    def run_dir_prefix(self) -> str:
        return f"{self.prefix}-run-"

    @property
    def state_file(self) -> Path:
        return CACHE_DIR / f"lab{self.id}.json"

    @property
    def lock_file(self) -> Path:
        """Held (flock) by the lab's process for its whole life: a free lock means no live owner."""
        return LOCK_DIR / f"dvps-lab-{self.id}.lock"


BRIDGE = "br0"  # inside the lab's namespace, where nothing else lives


def veth(host: str) -> str:
    """The lab-side end of a host's veth (inside the lab's namespace; fits IFNAMSIZ with 10 chars)."""
    return f"veth-{host}"


def sh(
    args: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; raise with its stderr on failure."""
    data = input.decode() if isinstance(input, bytes) else input
    proc = subprocess.run([str(a) for a in args], input=data, text=True, capture_output=True, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} -> exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def wait_until(what: str, cond: Callable[[], bool], timeout: float, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def in_cgroup(cgroup: Path, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Wrap argv so the process joins `cgroup` before exec'ing (thread-safe, unlike preexec_fn).

    Teardown can then end it and all its descendants with one write to cgroup.kill, even from a
    later process that never knew its PID.
    """
    return ["/bin/sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *map(str, argv)]


def spawn(
    cgroup: Path, argv: Sequence[str | os.PathLike[str]], log_path: Path, *, append: bool = False, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start a daemon in `cgroup` (so teardown can end it with cgroup.kill), in its own session,
    stdin closed, stdout and stderr into log_path."""
    with open(log_path, "ab" if append else "wb") as log:
        return subprocess.Popen(
            in_cgroup(cgroup, argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, **popen,
        )  # fmt: skip


def make_cgroup(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def kill_cgroup(path: Path, timeout: float = 10.0) -> None:
    """Kill every process under `path`, wait until all nested cgroups are empty, remove them."""
    if not path.is_dir():
        return
    (path / "cgroup.kill").write_text("1")

    def empty() -> bool:
        return "populated 0" in (path / "cgroup.events").read_text()

    wait_until(f"cgroup {path} to empty", empty, timeout)
    # Depth-first: systemd inside creates init.scope, system.slice/... below the server's dir.
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -t[0].count("/")):
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(dirpath)


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None
