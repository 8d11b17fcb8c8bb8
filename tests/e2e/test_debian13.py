"""Debian 13 (trixie) end to end on the real CLI: the same program on a trixie server (nginx 1.26 with
`http2 on`, Python 3.13), from the same mirror: HTTPS with HTTP/2 negotiated, the redirect, a deploy
through the CI key."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest

from tests.e2e import web
from tests.e2e.site import DOMAIN, Deployed, deploy_site
from tests.e2e.testhost import Lab

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trixie(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    site = deploy_site(lab, tmp_path_factory.mktemp("pebble") / "root.pem", repo="trixie", image="debian-13")
    yield site
    site.remove()


def negotiated(ip: str, cafile: str, offered: list[str]) -> str | None:
    """The application protocol the server picks by ALPN from what a client offers."""
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(offered)
    with (
        socket.create_connection((ip, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        return tls.selected_alpn_protocol()


def test_debian_13_serves_the_site_over_https_with_http2(trixie: Deployed) -> None:
    assert "13" in trixie.sh("cat /etc/debian_version").split(".")[0]
    response = web.wait_for(trixie.ip, DOMAIN, "/", "Hello from django-vps", cafile=trixie.cafile)
    assert response.headers["strict-transport-security"] == "max-age=63072000"
    assert "warn" not in trixie.server.run("nginx -t").stderr
    assert negotiated(trixie.ip, trixie.cafile, ["h2", "http/1.1"]) == "h2"
    # The control: a client that offers only HTTP/1.1 gets it, so "h2" above is the server's choice.
    assert negotiated(trixie.ip, trixie.cafile, ["http/1.1"]) == "http/1.1"
    assert web.wait_for_redirect(trixie.ip, DOMAIN, "/x").status == 301


def test_debian_13_deploys_through_the_ci_key(trixie: Deployed) -> None:
    result = trixie.ci_ssh(trixie.settings.deploy_script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dependencies unchanged" in result.stdout


def test_a_project_that_needs_python_3_12_runs_on_debian_13s_own(trixie: Deployed) -> None:
    """requires-python >=3.12 (as Django 6 has it): Debian 13's Python 3.13 satisfies it, and the
    deploy says so (on Debian 12 uv would install one: tests/render/test_python_choice.py)."""
    from tests.e2e.site import FIXTURES

    # blog-uv's pyproject.toml and its lock, for >=3.12 (tests/e2e/fixtures/python312).
    files = {name: (FIXTURES / "python312" / name).read_text() for name in ("pyproject.toml", "uv.lock")}
    assert 'requires-python = ">=3.12"' in files["pyproject.toml"]
    trixie.lab.forge().push_commit("trixie", files, "Require Python 3.12")
    result = trixie.ci_ssh(trixie.settings.deploy_script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "==> Python: Python 3.13" in result.stdout and "for the project's >=3.12" in result.stdout, result.stdout
