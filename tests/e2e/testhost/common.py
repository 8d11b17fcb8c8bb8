"""Names, addresses and small process helpers shared by the test-host modules."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Everything the harness creates carries this prefix, so a later run can find and remove the
# leftovers of a killed one by name alone.
PREFIX = "dvps"
BRIDGE = f"{PREFIX}-br0"
NET = "198.51.100"  # TEST-NET-2; the other TEST-NETs are this machine's uplink.
GATEWAY = f"{NET}.1"
PROXY_PORT = 3128
CGROUP_ROOT = Path("/sys/fs/cgroup/unified") / PREFIX
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "django-vps"
RUN_DIR_PREFIX = f"{PREFIX}-run-"


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
