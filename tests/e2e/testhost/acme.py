"""pebble (a test ACME CA) and pebble-challtestsrv (the test network's DNS server)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import urllib.request
from pathlib import Path

from .certs import make_wfe_certs
from .common import GATEWAY, spawn, wait_until

ACME_PORT = 14000
MGMT_PORT = 15000
DNS_PORT = 53
DNS_API_PORT = 8055


def _port_open(ip: str, port: int) -> bool:
    try:
        socket.create_connection((ip, port), timeout=0.2).close()
        return True
    except OSError:
        return False


class TestDNS:
    """pebble-challtestsrv as the only DNS server: it answers just the records set here.

    Its default answers (127.0.0.1 / ::1 for any name) are turned off, so an unknown name
    does not resolve, as on the real internet before the zone is published.
    """

    def __init__(self, run_dir: Path, cgroup: Path) -> None:
        self.api = f"http://{GATEWAY}:{DNS_API_PORT}"
        argv = [
            "pebble-challtestsrv",
            "-dns01",
            f"{GATEWAY}:{DNS_PORT}",
            "-management",
            f"{GATEWAY}:{DNS_API_PORT}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-defaultIPv4",
            "",
            "-defaultIPv6",
            "",
        ]
        self.proc = spawn(cgroup, argv, run_dir / "challtestsrv.log")
        wait_until("challtestsrv", lambda: _port_open(GATEWAY, DNS_API_PORT), 10)
        # Older builds ignore an empty -defaultIPv4 flag; the API setting is authoritative.
        self._post("set-default-ipv4", {"ip": ""})
        self._post("set-default-ipv6", {"ip": ""})

    def _post(self, path: str, body: dict[str, object]) -> None:
        req = urllib.request.Request(f"{self.api}/{path}", data=json.dumps(body).encode(), method="POST")
        with _no_proxy_opener().open(req, timeout=5) as resp:
            resp.read()

    @staticmethod
    def _fqdn(name: str) -> str:
        return name if name.endswith(".") else name + "."

    def set_a(self, name: str, ipv4: str) -> None:
        """Make `name` resolve to `ipv4` (replacing earlier A records)."""
        self._post("clear-a", {"host": self._fqdn(name)})
        self._post("add-a", {"host": self._fqdn(name), "addresses": [ipv4]})

    def set_aaaa(self, name: str, ipv6: str) -> None:
        self._post("clear-aaaa", {"host": self._fqdn(name)})
        self._post("add-aaaa", {"host": self._fqdn(name), "addresses": [ipv6]})

    def clear(self, name: str) -> None:
        """Remove every A and AAAA record of `name`."""
        self._post("clear-a", {"host": self._fqdn(name)})
        self._post("clear-aaaa", {"host": self._fqdn(name)})


OCSP_PORT = 4002


class Pebble:
    """pebble on GATEWAY:14000 (ACME) and :15000 (management), validating via the test DNS."""

    def __init__(self, run_dir: Path, cgroup: Path) -> None:
        tls_dir = run_dir / "pebble-wfe"
        self.wfe_ca_path, cert, key = make_wfe_certs(tls_dir, GATEWAY)
        # The lab's other HTTPS stand-ins on the gateway (S3) serve the same certificate.
        self.wfe_cert_path, self.wfe_key_path = cert, key
        config = {
            "pebble": {
                "listenAddress": f"{GATEWAY}:{ACME_PORT}",
                "managementListenAddress": f"{GATEWAY}:{MGMT_PORT}",
                "certificate": str(cert),
                "privateKey": str(key),
                "httpPort": 80,
                "tlsPort": 443,
                # Real CAs name where revocation is published; so does ours (nothing answers there:
                # nginx staples nothing, and testssl.sh sees a certificate with revocation info).
                "ocspResponderURL": f"http://{GATEWAY}:{OCSP_PORT}/",
                "externalAccountBindingRequired": False,
            }
        }
        cfg = run_dir / "pebble.json"
        cfg.write_text(json.dumps(config, indent=2))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        argv = ["pebble", "-config", cfg, "-dnsserver", f"{GATEWAY}:{DNS_PORT}"]
        self.proc = spawn(cgroup, argv, run_dir / "pebble.log", env=env, cwd=run_dir)
        wait_until("pebble", lambda: _port_open(GATEWAY, MGMT_PORT), 15)
        wait_until("pebble", lambda: _port_open(GATEWAY, ACME_PORT), 15)

    @property
    def directory(self) -> str:
        return f"https://{GATEWAY}:{ACME_PORT}/dir"

    @property
    def wfe_ca_pem(self) -> str:
        return self.wfe_ca_path.read_text()

    def issuing_root_pem(self) -> str:
        """The root pebble signs certificates with; new at every start of pebble."""
        ctx = ssl.create_default_context(cafile=str(self.wfe_ca_path))
        opener = _no_proxy_opener(ctx)
        with opener.open(f"https://{GATEWAY}:{MGMT_PORT}/roots/0", timeout=5) as resp:
            return resp.read().decode()


def _no_proxy_opener(ctx: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    return urllib.request.build_opener(*handlers)
