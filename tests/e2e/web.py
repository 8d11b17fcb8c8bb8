"""HTTP(S) requests from the root namespace to a test server, by IP, with the site's Host name."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


def get(
    ip: str, domain: str, path: str = "/", *, https: bool = True, cafile: str | None = None, timeout: float = 10
) -> Response:
    """GET path from ip with SNI/Host = domain; https verifies the chain against cafile."""
    if https:
        context = ssl.create_default_context(cafile=cafile)
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            domain, 443, context=context, timeout=timeout
        )
        raw = socket.create_connection((ip, 443), timeout=timeout)
        connection.sock = context.wrap_socket(raw, server_hostname=domain)
    else:
        connection = http.client.HTTPConnection(ip, 80, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": domain, "User-Agent": "django-vps-e2e"})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def wait_for(ip: str, domain: str, path: str, expect: str, *, cafile: str, timeout: float = 60) -> Response:
    """Poll until https GET path answers 200 with `expect` in the body (reloads are asynchronous)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = get(ip, domain, path, cafile=cafile)
            if response.status == 200 and expect in response.body:
                return response
            last = f"{response.status}: {response.body[:200]}"
        except OSError as error:
            last = error
        time.sleep(0.5)
    raise AssertionError(f"https://{domain}{path} did not serve {expect!r} within {timeout} s (last: {last})")


def wait_for_redirect(ip: str, domain: str, path: str, *, timeout: float = 5) -> Response:
    """Plain HTTP until it answers 301 (`systemctl reload nginx` returns before the workers of the
    HTTP-only site have gone), or the last answer."""
    deadline = time.monotonic() + timeout
    while (response := get(ip, domain, path, https=False)).status != 301 and time.monotonic() < deadline:
        time.sleep(0.2)
    return response
