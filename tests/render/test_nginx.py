"""The rendered nginx site, checked and run by the real nginx.

The site's paths are the host's (/home/<user>/<app>, /var/log/nginx, /etc/letsencrypt/live,
/etc/nginx/snippets); the tests rewrite them into a temporary directory with `relocate` (every
rewritten path must occur) and change nothing else. Running: the ports 80/443 become free high
ports on 127.0.0.1. The stand-in app sends its own security headers, so the tests see that the
client gets nginx's, once."""

from __future__ import annotations

import datetime
import grp
import http.client
import json
import os
import pwd
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from components import render
from components.settings import Settings
from tests.render.catalog import ocsp_snippet
from tests.render.conftest import free_port, make_settings, relocate, stop_process, wait_for


def _nginx_conf(prefix: Path, site: Path) -> str:
    """A complete nginx.conf around the site: every path nginx writes is under prefix."""
    user = ""
    if os.geteuid() == 0:
        # Workers would drop to `nobody`, which cannot enter the test's directories.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};\n"
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{
    worker_connections 64;
}}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {site};
}}
"""


# An OCSP responder address that needs no DNS (nothing listens: nginx -t never asks it).
OCSP_URL = "http://127.0.0.1:9/"


def _self_signed(directory: Path, domain: str) -> tuple[Path, Path]:
    """fullchain.pem and privkey.pem as certbot lays them out, plus chain.pem (the issuer: the
    certificate itself); the certificate names an OCSP responder, so stapling can be configured."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    ocsp = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(OCSP_URL))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.AuthorityInformationAccess([ocsp]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True)
    fullchain, privkey = directory / "fullchain.pem", directory / "privkey.pem"
    fullchain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "chain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    privkey.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return fullchain, privkey


class NginxPrefix:
    """A temporary root for one nginx: its conf, the app's files, the logs and the certificate."""

    def __init__(self, prefix: Path, s: Settings) -> None:
        self.prefix, self.s = prefix, s
        (prefix / "temp").mkdir(parents=True)
        (prefix / "log").mkdir()
        self.app_dir = prefix / "app"
        self.socket = prefix / "app.sock"
        self.webroot = prefix / "acme-webroot"
        self.live = prefix / "live"
        self.snippets = prefix / "snippets"

    def ocsp_snippet(self, text: str) -> None:
        """The certbot step's stapling snippet, its certificate path moved as the site's are."""
        self.snippets.mkdir(exist_ok=True)
        snippet = relocate(text, {f"/etc/letsencrypt/live/{self.s.domain}/": f"{self.live}/"})
        (self.snippets / f"django-vps-{self.s.app_name}-ocsp.conf").write_text(snippet)

    def install(self, site_text: str, *, tls: bool, ports: dict[int, int] | None = None) -> Path:
        mapping = {
            # With a data volume shared/ is on it, outside the app directory: here it is where it would be.
            **({f"{self.s.shared_dir}/": f"{self.app_dir}/shared/"} if self.s.data_volume else {}),
            f"{self.s.app_dir}/": f"{self.app_dir}/",
            f"http://unix:{self.s.socket_path};": f"http://unix:{self.socket};",
            "/var/log/nginx/": f"{self.prefix}/log/",
        }
        if tls:
            _self_signed(self.live, self.s.domain)
            mapping[f"/etc/letsencrypt/live/{self.s.domain}/"] = f"{self.live}/"
            mapping["root /var/www/html;"] = f"root {self.webroot};"
            mapping["include /etc/nginx/snippets/"] = f"include {self.snippets}/"
        for old, new in (ports or {}).items():
            # Listening on IPv6 may be impossible in a container; the IPv4 line stays, on loopback.
            mapping[f"    listen [::]:{old}"] = f"    # listen [::]:{old}"
            mapping[f"    listen {old}"] = f"    listen 127.0.0.1:{new}"
        site = self.prefix / "site.conf"
        site.write_text(relocate(site_text, mapping))
        conf = self.prefix / "nginx.conf"
        conf.write_text(_nginx_conf(self.prefix, site))
        return conf


def _nginx_test(nginx: str, prefix: Path, conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_site_passes_nginx_t(nginx: str, variant: Settings, tls: bool, tmp_path: Path) -> None:
    root = NginxPrefix(tmp_path, variant)
    conf = root.install(render.nginx_site(variant, tls=tls), tls=tls)
    result = _nginx_test(nginx, tmp_path, conf)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


def test_nginx_t_rejects_a_broken_site(nginx: str, tmp_path: Path) -> None:
    """Control: the check above fails on a bad directive."""
    s = make_settings()
    root = NginxPrefix(tmp_path, s)
    conf = root.install(render.nginx_site(s, tls=False).replace("proxy_redirect off;", "proxy_redirect of;"), tls=False)
    result = _nginx_test(nginx, tmp_path, conf)
    assert result.returncode != 0 and "test failed" in result.stderr


# What Django's SecurityMiddleware and SECURE_HSTS_SECONDS would send; nginx's own must replace them.
APP_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=60",
}
NGINX_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
HSTS = ("Strict-Transport-Security", "max-age=63072000")


class _Echo(BaseHTTPRequestHandler):
    """Stands in for gunicorn: answers with the request line and headers nginx forwarded, and
    security headers of its own (as Django does)."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "path": self.path,
                "method": self.command,
                "host": self.headers.get("Host"),
                "proto": self.headers.get("X-Forwarded-Proto"),
                "for": self.headers.get("X-Forwarded-For"),
                "body_length": len(self.rfile.read(length)) if length else 0,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in APP_SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def address_string(self) -> str:  # a unix socket has no client address
        return "unix"

    def log_message(self, format: str, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def echo_app(short_tmp: Path) -> Iterator[Path]:
    path = short_tmp / "app.sock"
    server = _UnixHTTPServer(str(path), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _start_nginx(nginx: str, prefix: Path, conf: Path, port: int) -> subprocess.Popen:
    assert _nginx_test(nginx, prefix, conf).returncode == 0
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def listening() -> bool:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {process.stderr.read().decode()}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout=60, what="nginx to listen")
    return process


def _get(port: int, path: str, host: str, *, method: str = "GET", body: bytes | None = None, context=None):
    status, headers, body = _request(port, path, host, method=method, body=body, context=context)
    return status, dict(headers), body


def _request(port: int, path: str, host: str, *, method: str = "GET", body: bytes | None = None, context=None):
    """(status, every header line in order, repeated ones included, body)."""
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
    try:
        connection.request(method, path, body=body, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def _security_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    names = {name.lower() for name in (*APP_SECURITY_HEADERS, *NGINX_SECURITY_HEADERS)}
    return sorted((name, value) for name, value in headers if name.lower() in names)


def _release(root: NginxPrefix, name: str, css: str) -> None:
    """releases/<name> with its own collected static file (.django-vps/static, where the release
    check links STATIC_ROOT), beside a decoy where projects keep uncollected sources (static/)."""
    static = root.app_dir / "releases" / name / ".django-vps" / "static"
    static.mkdir(parents=True)
    (static / "x.css").write_text(css)
    sources = root.app_dir / "releases" / name / "static"
    sources.mkdir()
    (sources / "x.css").write_text("decoy: the project's uncollected static/\n")


def _switch(root: NginxPrefix, name: str) -> None:
    """Point `current` at releases/<name> in one step, as deploy.sh does (relative link, rename)."""
    (root.app_dir / "current.next").symlink_to(f"releases/{name}")
    os.replace(root.app_dir / "current.next", root.app_dir / "current")


def _prepare_app(root: NginxPrefix, echo_socket: Path) -> None:
    """The release layout: static files per release behind `current`, media in shared/."""
    _release(root, "r1", "body { color: teal; }\n")
    _switch(root, "r1")
    (root.app_dir / "shared" / "media").mkdir(parents=True)
    (root.app_dir / "shared" / "media" / "y.txt").write_text("uploaded by a user\n")
    root.socket = echo_socket


def _tls_context(root: NginxPrefix, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(root.live / "fullchain.pem"))
    context.check_hostname = False  # connecting to 127.0.0.1; the certificate names the domain
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def _where_files_come_from(
    nginx: str, s: Settings, site: str, *, tls: bool, root: NginxPrefix, echo_socket: Path
) -> dict[str, str]:
    """What the running site answers for a static and a media file, before and after a deploy
    switches `current`, when every place they could wrongly come from holds a decoy of the same
    name; and for paths that only look like them. Each answer: the file's content, or "app"
    when the request reached the app."""
    _prepare_app(root, echo_socket)
    decoys = {
        root.app_dir / "shared" / "static" / "x.css": "decoy: static in shared/\n",
        root.app_dir / "static" / "x.css": "decoy: static beside the releases\n",
        root.app_dir / "releases" / "r1" / "media" / "y.txt": "decoy: media inside a release\n",
        root.app_dir / "current" / "y.txt": "decoy: the release's top level\n",
    }
    for path, text in decoys.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    ports = {80: free_port(), 443: free_port()} if tls else {80: free_port()}
    port = ports[443 if tls else 80]
    conf = root.install(site, tls=tls, ports=ports)
    context = _tls_context(root) if tls else None

    def fetch(path: str) -> str:
        status, headers, body = _get(port, path, s.domain, context=context)
        if headers.get("Content-Type") == "application/json":
            return "app"
        return body.decode() if status == 200 else str(status)

    process = _start_nginx(nginx, root.prefix, conf, port)
    try:
        answers = {path: fetch(path) for path in ("/static/x.css", "/media/y.txt", "/staticfoo", "/mediafoo/y.txt")}
        _release(root, "r2", "body { color: navy; }\n")
        _switch(root, "r2")
        answers["/static/x.css after the switch"] = fetch("/static/x.css")
        answers["/media/y.txt after the switch"] = fetch("/media/y.txt")
    finally:
        stop_process(process)
    return answers


FILES_FROM = {
    "/static/x.css": "body { color: teal; }\n",  # the live release's
    "/media/y.txt": "uploaded by a user\n",  # shared/
    "/staticfoo": "app",
    "/mediafoo/y.txt": "app",
    "/static/x.css after the switch": "body { color: navy; }\n",  # the new release's, no reload
    "/media/y.txt after the switch": "uploaded by a user\n",
}


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_static_comes_from_the_live_release_and_media_from_shared(
    nginx: str, variant: Settings, tls: bool, tmp_path: Path, echo_app: Path
) -> None:
    root = NginxPrefix(tmp_path, variant)
    site = render.nginx_site(variant, tls=tls)
    assert _where_files_come_from(nginx, variant, site, tls=tls, root=root, echo_socket=echo_app) == FILES_FROM


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/current/.django-vps/static/;", "/shared/static/;"),
        ("/shared/media/;", "/current/media/;"),
        ("alias {app_dir}/current/.django-vps/static/;", "alias {app_dir}/static/;"),
        ("/current/.django-vps/static/;", "/current/static/;"),
        ("location /media/ {", "location /media {"),
    ],
    ids=[
        "static-from-shared",
        "media-from-the-release",
        "static-outside-releases",
        "static-uncollected",
        "media-prefix-too-wide",
    ],
)
def test_where_files_come_from_notices_a_wrong_location(
    nginx: str, tmp_path: Path, echo_app: Path, old: str, new: str
) -> None:
    """Control: a site with one location or alias wrong answers differently."""
    s = make_settings()
    site = render.nginx_site(s, tls=False)
    old, new = old.replace("{app_dir}", s.app_dir), new.replace("{app_dir}", s.app_dir)
    assert site.count(old) == 1
    root = NginxPrefix(tmp_path, s)
    found = _where_files_come_from(nginx, s, site.replace(old, new), tls=False, root=root, echo_socket=echo_app)
    assert found != FILES_FROM, found


def test_static_and_media_are_served_at_the_urls_set(nginx: str, tmp_path: Path, echo_app: Path) -> None:
    """staticUrl and mediaUrl move the two locations: the files are served there, and the default
    paths reach the app like any other."""
    s = make_settings(staticUrl="/assets/v2/", mediaUrl="/uploads/")
    root = NginxPrefix(tmp_path, s)
    _prepare_app(root, echo_app)
    port = free_port()
    conf = root.install(render.nginx_site(s, tls=False), tls=False, ports={80: port})
    process = _start_nginx(nginx, root.prefix, conf, port)
    try:
        answers = {}
        for path in ("/assets/v2/x.css", "/uploads/y.txt", "/static/x.css", "/media/y.txt"):
            _status, headers, body = _get(port, path, s.domain)
            answers[path] = "app" if headers.get("Content-Type") == "application/json" else body.decode()
    finally:
        stop_process(process)
    assert answers == {
        "/assets/v2/x.css": "body { color: teal; }\n",
        "/uploads/y.txt": "uploaded by a user\n",
        "/static/x.css": "app",
        "/media/y.txt": "app",
    }


def test_http_site_serves_files_and_proxies_to_the_socket(
    nginx: str, short_tmp: Path, echo_app: Path, tmp_path: Path
) -> None:
    s = make_settings(clientMaxBodySize="1k")
    domain = s.domain
    root = NginxPrefix(tmp_path, s)
    _prepare_app(root, echo_app)
    port = free_port()
    conf = root.install(render.nginx_site(s, tls=False), tls=False, ports={80: port})
    process = _start_nginx(nginx, tmp_path, conf, port)
    try:
        assert _get(port, "/static/x.css", domain)[::2] == (200, b"body { color: teal; }\n")
        assert _get(port, "/media/y.txt", domain)[::2] == (200, b"uploaded by a user\n")
        # A missing static or media file is nginx's 404: it never reaches Django.
        assert _get(port, "/static/missing.css", domain)[0] == 404

        status, _, body = _get(port, "/posts/?page=2", domain)
        assert status == 200
        echoed = json.loads(body)
        assert echoed == {
            "path": "/posts/?page=2",
            "method": "GET",
            "host": domain,
            "proto": "http",
            "for": "127.0.0.1",
            "body_length": 0,
        }
        # /staticfoo is not /static/: proxied, not looked up on disk.
        assert json.loads(_get(port, "/staticfoo", domain)[2])["path"] == "/staticfoo"

        # client_max_body_size: up to the limit reaches the app, above it nginx answers 413.
        status, _, body = _get(port, "/upload/", domain, method="POST", body=b"a" * 1024)
        assert status == 200 and json.loads(body)["body_length"] == 1024
        assert _get(port, "/upload/", domain, method="POST", body=b"a" * 1025)[0] == 413

        # A deploy switches `current`: the next request gets the new release's static file, with
        # no reload of nginx; the media stay where they are.
        _release(root, "r2", "body { color: navy; }\n")
        _switch(root, "r2")
        assert _get(port, "/static/x.css", domain)[::2] == (200, b"body { color: navy; }\n")
        assert _get(port, "/media/y.txt", domain)[::2] == (200, b"uploaded by a user\n")
    finally:
        stop_process(process)
    assert (tmp_path / "log" / f"{s.app_name}.access.log").read_text().count("/static/x.css") == 2


def test_https_site_redirects_and_serves_over_tls(nginx: str, short_tmp: Path, echo_app: Path, tmp_path: Path) -> None:
    s = make_settings()
    domain = s.domain
    root = NginxPrefix(tmp_path, s)
    _prepare_app(root, echo_app)
    (root.webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (root.webroot / ".well-known" / "acme-challenge" / "token123").write_text("token123.thumbprint")
    http_port, https_port = free_port(), free_port()
    conf = root.install(render.nginx_site(s, tls=True), tls=True, ports={80: http_port, 443: https_port})
    process = _start_nginx(nginx, tmp_path, conf, https_port)
    try:
        status, headers, _ = _get(http_port, "/posts/?page=2", domain)
        assert (status, headers["Location"]) == (301, f"https://{domain}/posts/?page=2")
        status, _, body = _get(http_port, "/.well-known/acme-challenge/token123", domain)
        assert (status, body) == (200, b"token123.thumbprint"), "renewals answer the challenge over HTTP"

        context = ssl.create_default_context(cafile=str(root.live / "fullchain.pem"))
        context.check_hostname = False  # connecting to 127.0.0.1; the certificate names the domain
        status, _, body = _get(https_port, "/static/x.css", domain, context=context)
        assert (status, body) == (200, b"body { color: teal; }\n")
        status, _, body = _get(https_port, "/", domain, context=context)
        assert status == 200 and json.loads(body)["proto"] == "https" and json.loads(body)["host"] == domain

    finally:
        stop_process(process)


def _negotiated_protocol(nginx: str, s: Settings, site: str, tmp_path: Path, echo_socket: Path) -> str | None:
    """The protocol a client offering h2 and http/1.1 gets from the running HTTPS site (ALPN)."""
    root = NginxPrefix(tmp_path, s)
    _prepare_app(root, echo_socket)
    http_port, https_port = free_port(), free_port()
    conf = root.install(site, tls=True, ports={80: http_port, 443: https_port})
    process = _start_nginx(nginx, tmp_path, conf, https_port)
    try:
        context = _tls_context(root, alpn=["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", https_port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname=s.domain) as tls,
        ):
            return tls.selected_alpn_protocol()
    finally:
        stop_process(process)


def test_debian_12_site_speaks_http2(nginx: str, tmp_path: Path, echo_app: Path) -> None:
    """Debian 12's nginx (1.22, installed here) takes HTTP/2 as a `listen` flag: the site it gets
    negotiates h2."""
    s = make_settings()
    assert s.image == "debian-12"
    assert _negotiated_protocol(nginx, s, render.nginx_site(s, tls=True), tmp_path, echo_app) == "h2"


def test_without_http2_the_same_check_gets_http1(nginx: str, tmp_path: Path, echo_app: Path) -> None:
    """Control: the Debian 12 site without the http2 flag answers the same client in HTTP/1.1."""
    s = make_settings()
    site = render.nginx_site(s, tls=True)
    assert site.count(" ssl http2;") == 2
    assert _negotiated_protocol(nginx, s, site.replace(" ssl http2;", " ssl;"), tmp_path, echo_app) == "http/1.1"


def test_debian_13_site_turns_http2_on_with_the_directive_debian_12_lacks(
    nginx: str, tmp_path: Path, echo_app: Path
) -> None:
    """nginx 1.25.1+ (Debian 13 has 1.26) deprecates the `listen ... http2` flag for `http2 on`,
    which 1.22 does not know. Here only 1.22 runs (the e2e suite serves this site with Debian 13's
    nginx over HTTP/2): it rejects the Debian 13 site at that directive and nowhere else, and without
    it the site is valid but serves HTTP/1.1 only, so the directive is what turns HTTP/2 on."""
    s = make_settings(image="debian-13")
    site = render.nginx_site(s, tls=True)
    root = NginxPrefix(tmp_path / "as-rendered", s)
    result = _nginx_test(nginx, root.prefix, root.install(site, tls=True))
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if "[emerg]" in line] == [
        f'nginx: [emerg] unknown directive "http2" in {root.prefix}/site.conf:{_line_of(site, "    http2 on;")}'
    ], result.stderr
    without = site.replace("    http2 on;\n", "")
    assert without.count("\n") == site.count("\n") - 1
    root = NginxPrefix(tmp_path / "without", s)
    result = _nginx_test(nginx, root.prefix, root.install(without, tls=True))
    assert result.returncode == 0 and "[warn]" not in result.stderr, result.stderr
    assert _negotiated_protocol(nginx, s, without, tmp_path / "served", echo_app) == "http/1.1"


def _line_of(text: str, line: str) -> int:
    (number,) = [n for n, found in enumerate(text.splitlines(), 1) if found == line]
    return number


# --- security headers, server tokens, HSTS, OCSP stapling ----------------------------------------


def _server_blocks(site: str) -> list[str]:
    blocks = site.split("\nserver {\n")[1:]
    assert blocks and all(block.count("\n}\n") >= 1 for block in blocks)
    return blocks


@pytest.mark.parametrize("hsts", [True, False], ids=["hsts", "no-hsts"])
def test_hsts_only_with_hsts_and_only_on_the_https_server(hsts: bool) -> None:
    s = make_settings(hsts=str(hsts).lower())
    assert s.hsts is hsts
    http_site, https_site = render.nginx_site(s, tls=False), render.nginx_site(s, tls=True)
    redirect, tls_server = _server_blocks(https_site)
    assert "listen 443 ssl" in tls_server and "return 301 https://" in redirect
    line = '    add_header Strict-Transport-Security "max-age=63072000" always;\n'
    assert tls_server.count(line) == (1 if hsts else 0)
    assert "Strict-Transport-Security" not in redirect.replace("proxy_hide_header Strict-Transport-Security", "")
    assert "add_header Strict-Transport-Security" not in http_site
    for block in (*_server_blocks(http_site), redirect, tls_server):
        assert "    server_tokens off;\n" in block
    for site in (http_site, https_site):
        (server,) = [block for block in _server_blocks(site) if "proxy_pass" in block]
        for name, value in NGINX_SECURITY_HEADERS.items():
            assert server.count(f"    add_header {name} {value} always;\n") == 1
        proxied = server.split("    location / {\n", 1)[1].split("\n    }\n", 1)[0]
        for name in ("X-Content-Type-Options", "Referrer-Policy"):
            assert f"        proxy_hide_header {name};" in proxied.splitlines()
        # Without our HSTS, the app's own (Django's SECURE_HSTS_SECONDS) passes through.
        assert ("        proxy_hide_header Strict-Transport-Security;" in proxied.splitlines()) is hsts


@pytest.mark.parametrize("hsts", [True, False], ids=["hsts", "no-hsts"])
@pytest.mark.parametrize("ocsp", [False, True], ids=["no-ocsp-snippet", "ocsp-snippet"])
def test_https_site_passes_nginx_t_with_and_without_the_ocsp_snippet(
    nginx: str, tmp_path: Path, hsts: bool, ocsp: bool
) -> None:
    """The include is a glob: nginx accepts it matching nothing (a certificate without OCSP) and
    loads the certbot step's snippet when there is one, without a warning either way."""
    s = make_settings(hsts=str(hsts).lower())
    root = NginxPrefix(tmp_path, s)
    conf = root.install(render.nginx_site(s, tls=True), tls=True)
    if ocsp:
        root.ocsp_snippet(ocsp_snippet(s))
    result = _nginx_test(nginx, tmp_path, conf)
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr
    if ocsp:
        # Proof that the snippet was read: the same file with a bad directive fails the test.
        root.ocsp_snippet(ocsp_snippet(s).replace("ssl_stapling on;", "ssl_stapling maybe;"))
        broken = _nginx_test(nginx, tmp_path, conf)
        assert broken.returncode != 0 and "ssl_stapling" in broken.stderr


def test_http_site_sends_each_security_header_once(nginx: str, short_tmp: Path, echo_app: Path, tmp_path: Path) -> None:
    """The app's own copies are hidden and nginx's sent, on proxied answers and nginx's own (files,
    404, 413); no HSTS over plain HTTP even though the app sends one; no version in Server."""
    s = make_settings(clientMaxBodySize="1k")
    root = NginxPrefix(tmp_path, s)
    _prepare_app(root, echo_app)
    port = free_port()
    conf = root.install(render.nginx_site(s, tls=False), tls=False, ports={80: port})
    process = _start_nginx(nginx, tmp_path, conf, port)
    expected = sorted(NGINX_SECURITY_HEADERS.items())
    try:
        for path, method, body, status in (
            ("/posts/", "GET", None, 200),
            ("/static/x.css", "GET", None, 200),
            ("/media/y.txt", "GET", None, 200),
            ("/static/missing.css", "GET", None, 404),
            ("/upload/", "POST", b"a" * 2048, 413),
        ):
            answer, headers, _ = _request(port, path, s.domain, method=method, body=body)
            assert answer == status, path
            assert _security_headers(headers) == expected, path
            assert [value for name, value in headers if name.lower() == "server"] == ["nginx"], path
    finally:
        stop_process(process)


@pytest.mark.parametrize("hsts", [True, False], ids=["hsts", "no-hsts"])
def test_https_site_sends_hsts_once_only_with_hsts(
    nginx: str, short_tmp: Path, echo_app: Path, tmp_path: Path, hsts: bool
) -> None:
    s = make_settings(hsts=str(hsts).lower())
    root = NginxPrefix(tmp_path, s)
    _prepare_app(root, echo_app)
    http_port, https_port = free_port(), free_port()
    conf = root.install(render.nginx_site(s, tls=True), tls=True, ports={80: http_port, 443: https_port})
    process = _start_nginx(nginx, tmp_path, conf, https_port)
    context = ssl.create_default_context(cafile=str(root.live / "fullchain.pem"))
    context.check_hostname = False
    # nginx's HSTS when hsts is on (the app's copy hidden); with hsts off, only the app's own.
    app_hsts = ("Strict-Transport-Security", APP_SECURITY_HEADERS["Strict-Transport-Security"])
    try:
        for path, status in (("/posts/", 200), ("/static/x.css", 200), ("/static/missing.css", 404)):
            answer, headers, _ = _request(https_port, path, s.domain, context=context)
            hsts_header = [HSTS] if hsts else [app_hsts] if path == "/posts/" else []
            assert answer == status, path
            assert _security_headers(headers) == sorted([*NGINX_SECURITY_HEADERS.items(), *hsts_header]), path
            assert [value for name, value in headers if name.lower() == "server"] == ["nginx"], path
        # The plain-HTTP redirect carries no HSTS (browsers ignore it there) and no other header.
        answer, headers, _ = _request(http_port, "/posts/", s.domain)
        assert answer == 301 and _security_headers(headers) == []
        assert [value for name, value in headers if name.lower() == "server"] == ["nginx"]
    finally:
        stop_process(process)


def test_without_proxy_hide_header_the_app_copy_comes_through(
    nginx: str, short_tmp: Path, echo_app: Path, tmp_path: Path
) -> None:
    """Control: the checks above can fail. Without the proxy_hide_header lines the client gets
    two X-Content-Type-Options and two Referrer-Policy, the app's and nginx's."""
    s = make_settings()
    root = NginxPrefix(tmp_path, s)
    _prepare_app(root, echo_app)
    port = free_port()
    site = render.nginx_site(s, tls=False)
    stripped = "".join(line for line in site.splitlines(keepends=True) if "proxy_hide_header" not in line)
    assert stripped.count("\n") == site.count("\n") - 3
    conf = root.install(stripped, tls=False, ports={80: port})
    process = _start_nginx(nginx, tmp_path, conf, port)
    try:
        _, headers, _ = _request(port, "/posts/", s.domain)
    finally:
        stop_process(process)
    names = [name.lower() for name, _ in _security_headers(headers)]
    assert names.count("x-content-type-options") == 2 and names.count("referrer-policy") == 2


@pytest.mark.parametrize("guarded", [True, False], ids=["site", "control-without-disable_symlinks"])
def test_a_link_among_the_media_is_not_served(
    nginx: str, short_tmp: Path, echo_app: Path, tmp_path: Path, guarded: bool
) -> None:
    """Media are the app's to write (and were seeded from the commit): a link among them would let
    nginx serve whatever www-data can read, such as the database beside media/. The site refuses
    links there; the control, the same site without `disable_symlinks on;`, serves the database."""
    s = make_settings()
    root = NginxPrefix(tmp_path, s)
    _prepare_app(root, echo_app)
    shared = root.app_dir / "shared"
    (shared / "db.sqlite3").write_text("the database\n")
    (shared / "media" / "leak").symlink_to("../db.sqlite3")
    site = render.nginx_site(s, tls=False)
    assert site.count("        disable_symlinks on;\n") == 1
    if not guarded:
        site = site.replace("        disable_symlinks on;\n", "")
    port = free_port()
    process = _start_nginx(nginx, tmp_path, root.install(site, tls=False, ports={80: port}), port)
    try:
        assert _get(port, "/media/y.txt", s.domain)[::2] == (200, b"uploaded by a user\n")
        status, _, body = _get(port, "/media/leak", s.domain)
    finally:
        stop_process(process)
    if guarded:
        assert status in (403, 404) and b"the database" not in body
    else:
        assert (status, body) == (200, b"the database\n")
