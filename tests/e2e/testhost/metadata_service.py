"""The metadata service's HTTP side (see metadata.py), its own process in netns dvps<N>-meta:
`python metadata_service.py --state FILE`. Stdlib only. It answers GET /hetzner/v1/userdata,
/hetzner/v1/metadata and /hetzner/v1/metadata/<key> with what FILE (JSON, address -> answers,
rewritten atomically by the lab) holds for the address the request comes from; 404 otherwise.
It never logs an answer: user data holds private keys.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BASE = "/hetzner/v1/"
# The keys of hcloud-go's metadata client (and cloud-init's), answered one by one under metadata/.
KEYS = ("hostname", "instance-id", "public-ipv4", "region", "availability-zone", "local-ipv4")


def _yaml(metadata: dict[str, Any]) -> str:
    """The metadata document, in the block style Hetzner answers with (flat values only)."""
    lines = []
    for key, value in metadata.items():
        if isinstance(value, list):
            lines.append(f"{key}: []" if not value else f"{key}:\n" + "".join(f"- {json.dumps(v)}\n" for v in value))
        else:
            lines.append(f"{key}: {json.dumps(value) if isinstance(value, str) else value}")
    return "\n".join(lines) + "\n"


def answer(state: dict[str, dict[str, Any]], client: str, path: str) -> tuple[int, str]:
    """(status, body) for GET `path` from `client` (an IPv4 or IPv6 address)."""
    address = ipaddress.ip_address(client.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    found = state.get(str(address))
    if found is None or not path.startswith(BASE):
        return 404, "not found\n"
    rest = path[len(BASE) :].rstrip("/")
    if rest == "userdata":
        return 200, found["userdata"]
    if rest == "metadata":
        return 200, _yaml(found["metadata"])
    key = rest.removeprefix("metadata/")
    if key in KEYS and key in found["metadata"]:
        return 200, str(found["metadata"][key])
    if key == "private-networks":
        return 200, "[]\n"
    return 404, "not found\n"


class _DualStack(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port", type=int, default=80)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = json.loads(args.state.read_text())
            status, body = answer(state, self.client_address[0], self.path.split("?", 1)[0])
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *log_args: Any) -> None:  # never the answers: they hold keys
            print(f"{self.client_address[0]} {format % log_args}", flush=True)

    _DualStack(("::", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
