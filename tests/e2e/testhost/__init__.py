"""End-to-end test host: Debian servers booted with systemd in namespaces, a test network with
an allow-list proxy, DNS and an ACME CA (pebble), and a git forge. See lab.Lab."""

from .forge import Forge
from .hosttools import ensure_host_tools
from .image import build_image
from .lab import Lab, LabBusy, cleanup_leftovers, cleanup_unlocked
from .server import Server

__all__ = [
    "Forge", "Lab", "LabBusy", "Server", "build_image", "cleanup_leftovers", "cleanup_unlocked", "ensure_host_tools",
]  # fmt: skip
