"""Debian 13 (trixie) end to end: the same program on a trixie server (nginx 1.26 with `http2 on`,
Python 3.13), from the same mirror: HTTPS, the redirect, a deploy through the CI key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import web
from tests.e2e.engine import SERVER_IP
from tests.e2e.site import DOMAIN, Deployed, deploy_site
from tests.e2e.testhost import Lab, build_image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trixie(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    image = build_image(suite="trixie")
    site = deploy_site(lab, tmp_path_factory.mktemp("pebble") / "root.pem", repo="trixie", server_image=image,
                       **{"image": "debian-13"})  # fmt: skip
    yield site
    lab.remove(site.engine.server_name)


def test_debian_13_serves_the_site_over_https_with_http2(trixie: Deployed) -> None:
    assert "13" in trixie.sh("cat /etc/debian_version").split(".")[0]
    response = web.wait_for(SERVER_IP, DOMAIN, "/", "Hello from django-vps", cafile=trixie.cafile)
    assert response.headers["strict-transport-security"] == "max-age=63072000"
    site = trixie.sh("cat /etc/nginx/conf.d/blog.conf")
    assert "http2 on;" in site and "ssl http2" not in site
    assert "warn" not in trixie.server.run("nginx -t").stderr
    assert web.wait_for_redirect(SERVER_IP, DOMAIN, "/x").status == 301


def test_debian_13_deploys_through_the_ci_key(trixie: Deployed) -> None:
    result = trixie.ci_ssh("/home/blog/bin/deploy.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dependencies unchanged" in result.stdout
