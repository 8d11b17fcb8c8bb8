"""Moving this process between network namespaces (setns(2) through libc: os.setns is Python 3.12+).

A lab lives in a network namespace of its own, so every lab uses the same 198.51.100.x addresses.
The process that runs a lab joins that namespace from its main thread: every child process and
every thread started afterwards is in it too (a new task copies its creator's namespaces). The
namespace the process came from stays open as a file descriptor, to go back to at teardown and to
run what must reach the outside world (the proxy's outbound side, debootstrap, go, apt) there.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Iterator, Sequence

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_machine: int | None = None  # the namespace this process was in before it first joined a lab


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns(CLONE_NEWNET): {os.strerror(errno)}")


def _open_current() -> int:
    # thread-self: the calling thread's namespace (setns moves one thread; /proc/self is the leader's).
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def enter(path: str) -> int:
    """Move this process (from its main thread) into the namespace at `path` (/run/netns/NAME);
    returns an fd of the namespace it was in, for `leave`."""
    global _machine
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("join a lab's network namespace from the main thread: other threads would stay behind")
    previous = _open_current()
    if _machine is None:
        _machine = os.dup(previous)
        os.set_inheritable(_machine, False)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
    except BaseException:
        os.close(previous)
        raise
    finally:
        os.close(target)
    return previous


def leave(previous: int) -> None:
    """Go back to the namespace `enter` returned, and close it."""
    try:
        _setns(previous)
    finally:
        os.close(previous)


def machine_path() -> str | None:
    """A path to the namespace this process came from, or None while it has not joined a lab."""
    return None if _machine is None else f"/proc/{os.getpid()}/fd/{_machine}"


def in_machine(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    """argv run in the machine's own namespace (the registries, the Go proxy, the mirrors), wherever
    this process is now. nsenter opens our fd through /proc while we wait for it to start."""
    path = machine_path()
    return [str(a) for a in argv] if path is None else ["nsenter", f"--net={path}", *map(str, argv)]


@contextlib.contextmanager
def joined(path: str) -> Iterator[None]:
    """The calling thread in the namespace at `path` for the block (any thread: a short visit)."""
    previous = _open_current()
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
    finally:
        os.close(target)
    try:
        yield
    finally:
        leave(previous)


def connect(path: str, address: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection made from the namespace at `path`, whichever namespace the caller is in (a
    socket keeps the namespace it was created in)."""
    with joined(path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def current_inode() -> int:
    """The calling thread's network namespace, as an inode number (to compare namespaces)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def stragglers() -> list[str]:
    """The names (comm) of this process's native threads that are in another network namespace than
    the calling thread: started too early to follow it (a thread keeps its own). Python's threads
    carry the process's name and are left out: pytest-xdist's (execnet's) I/O thread is one, and
    harmless; native ones (gRPC's) are not."""
    here = current_inode()
    with open("/proc/self/comm") as f:
        python = f.read().strip()
    names = []
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(f"/proc/self/task/{task}/ns/net").st_ino != here:
                with open(f"/proc/self/task/{task}/comm") as comm:
                    name = comm.read().strip()
                if name != python:
                    names.append(name)
    return names
