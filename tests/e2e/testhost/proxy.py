"""An allow-list forward proxy: the test servers' only way out (there is no NAT).

Plain HTTP (apt) is forwarded request by request with keep-alive; CONNECT (pip, uv, npm) is
tunnelled. Only the named hosts on ports 80/443 are allowed; names resolve in the machine's network
namespace, where the proxy runs. Stdlib only: it runs as its own process
(`python proxy.py --listen IP:PORT --allow HOST...`, or `--fd N` for a listening socket it inherits).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
from typing import BinaryIO
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
TIMEOUT = 120


def read_head(f: BinaryIO) -> list[bytes] | None:
    """Read a request/response head; None at a clean EOF before any byte."""
    lines: list[bytes] = []
    size = 0
    while True:
        line = f.readline(MAX_HEAD)
        if not line:
            if lines:
                raise ConnectionError("EOF inside a header")
            return None
        size += len(line)
        if size > MAX_HEAD:
            raise ConnectionError("header too large")
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue  # tolerate stray CRLF between keep-alive requests
            return lines
        lines.append(line.rstrip(b"\r\n"))


def header(lines: list[bytes], name: bytes) -> bytes | None:
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def copy_n(src: BinaryIO, dst: socket.socket, n: int) -> None:
    while n > 0:
        chunk = src.read(min(n, 65536))
        if not chunk:
            raise ConnectionError("short body")
        dst.sendall(chunk)
        n -= len(chunk)


def copy_chunked(src: BinaryIO, dst: socket.socket) -> None:
    while True:
        size_line = src.readline(1024)
        dst.sendall(size_line)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                line = src.readline(MAX_HEAD)
                dst.sendall(line)
                if line in (b"\r\n", b"\n", b""):
                    return
        copy_n(src, dst, size + 2)  # data + CRLF


def copy_until_eof(src: BinaryIO, dst: socket.socket) -> None:
    while chunk := src.read1(65536):  # type: ignore[attr-defined]
        dst.sendall(chunk)


class Proxy:
    def __init__(self, allow: set[str]) -> None:
        self.allow = {h.lower() for h in allow}

    def allowed(self, host: str, port: int) -> bool:
        return host.lower().rstrip(".") in self.allow and port in (80, 443)

    def handle(self, client: socket.socket) -> None:
        client.settimeout(TIMEOUT)
        rfile = client.makefile("rb")
        upstreams: dict[tuple[str, int], tuple[socket.socket, BinaryIO]] = {}
        try:
            while True:
                head = read_head(rfile)
                if head is None:
                    return
                method, target, version = head[0].decode("latin-1").split(" ", 2)
                if method == "CONNECT":
                    self.tunnel(client, rfile, target)
                    return
                if not self.forward(client, rfile, head, method, target, version, upstreams):
                    return
        except (OSError, ValueError, ConnectionError):
            pass
        finally:
            for sock, _ in upstreams.values():
                sock.close()
            client.close()

    def deny(self, client: socket.socket, what: str) -> None:
        body = f"django-vps test proxy: {what} is not on the allow-list\n".encode()
        client.sendall(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        print(f"denied {what}", file=sys.stderr, flush=True)

    def tunnel(self, client: socket.socket, rfile: BinaryIO, target: str) -> None:
        host, _, port_s = target.rpartition(":")
        host = host.strip("[]")
        if not self.allowed(host, int(port_s)):
            self.deny(client, target)
            return
        upstream = socket.create_connection((host, int(port_s)), timeout=TIMEOUT)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def up() -> None:
            with contextlib.suppress(OSError):
                copy_until_eof(rfile, upstream)  # rfile first hands over what it buffered
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=up, daemon=True)
        t.start()
        try:
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            t.join(TIMEOUT)
            upstream.close()

    def forward(
        self,
        client: socket.socket,
        rfile: BinaryIO,
        head: list[bytes],
        method: str,
        target: str,
        version: str,
        upstreams: dict[tuple[str, int], tuple[socket.socket, BinaryIO]],
    ) -> bool:
        """Relay one plain-HTTP request; return whether the client connection stays open."""
        url = urlsplit(target)
        host, port = url.hostname or "", url.port or 80
        if url.scheme != "http" or not self.allowed(host, port):
            self.deny(client, f"{method} {target}")
            return False
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        keep = version == "HTTP/1.1" and (header(head, b"connection") or b"").lower() != b"close"
        out = [f"{method} {path} HTTP/1.1".encode()]
        for line in head[1:]:
            k = line.partition(b":")[0].strip().lower()
            if k not in (b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"):
                out.append(line)
        out.append(b"Connection: keep-alive")
        body_len = int(header(head, b"content-length") or 0)
        if header(head, b"transfer-encoding"):
            self.deny(client, "a chunked request body")
            return False
        key = (host, port)
        for attempt in (0, 1):  # a pooled upstream may have closed meanwhile: retry once fresh
            if key not in upstreams:
                sock = socket.create_connection(key, timeout=TIMEOUT)
                upstreams[key] = (sock, sock.makefile("rb"))
            sock, ufile = upstreams[key]
            try:
                sock.sendall(b"\r\n".join(out) + b"\r\n\r\n")
                copy_n(rfile, sock, body_len)
                rhead = read_head(ufile)
                if rhead is None:
                    raise ConnectionError("upstream closed")
                break
            except (OSError, ConnectionError):
                sock.close()
                del upstreams[key]
                if attempt or body_len:
                    raise
        status = int(rhead[0].split()[1])
        client.sendall(b"\r\n".join(rhead) + b"\r\n\r\n")
        te = (header(rhead, b"transfer-encoding") or b"").lower()
        clen = header(rhead, b"content-length")
        upstream_keep = (header(rhead, b"connection") or b"").lower() != b"close"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif b"chunked" in te:
            copy_chunked(ufile, client)
        elif clen is not None:
            copy_n(ufile, client, int(clen))
        else:  # body ends at EOF: the client cannot reuse its connection either
            copy_until_eof(ufile, client)
            upstream_keep = keep = False
        if not upstream_keep:
            sock.close()
            del upstreams[key]
        return keep and (
            clen is not None or b"chunked" in te or method == "HEAD" or status < 200 or status in (204, 304)
        )


def serve(srv: socket.socket, allow: set[str]) -> None:
    proxy = Proxy(allow)
    print(f"proxy on {srv.getsockname()} allowing {sorted(allow)}", file=sys.stderr, flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=proxy.handle, args=(conn,), daemon=True).start()


def main() -> None:
    p = argparse.ArgumentParser()
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", help="IP:PORT to listen on")
    # A listening socket made in the lab's namespace while this process runs in the machine's: it
    # accepts there, and connects out from here (a socket keeps the namespace it was created in).
    where.add_argument("--fd", type=int, help="an inherited listening socket")
    p.add_argument("--allow", nargs="+", required=True)
    a = p.parse_args()
    if a.fd is not None:
        srv = socket.socket(fileno=a.fd)
    else:
        host, _, port = a.listen.rpartition(":")
        srv = socket.create_server((host, int(port)), backlog=128)
    serve(srv, set(a.allow))


if __name__ == "__main__":
    main()
