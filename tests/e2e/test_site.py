"""The whole program, Hetzner mode, against a real Debian server: `pulumi up` (the real __main__.py on
the lab engine) takes a bare server booted with the program's cloud-init to serving the blog over
HTTPS from pebble, then the CI path, a second run and a reboot."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from components.host import STEPS
from tests.e2e import web
from tests.e2e.engine import SERVER_IP
from tests.e2e.site import APP, DOMAIN, FIXTURES, Deployed, deploy_site
from tests.e2e.testhost import Lab
from tests.support.program import run_program

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def deployed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    site = deploy_site(
        lab, tmp_path_factory.mktemp("pebble") / "root.pem", logSize="1", djangoEnv=json.dumps(["GREETING=hello"])
    )
    yield site
    lab.remove(site.engine.server_name)


def test_https_serves_the_page_with_a_certificate_from_the_acme_server(deployed: Deployed) -> None:
    response = deployed.https("/")
    assert response.status == 200
    assert "Hello from django-vps" in response.body  # read from the database: migrate ran
    assert deployed.exports["url"] == f"https://{DOMAIN}"
    assert deployed.exports["ipv4"] == SERVER_IP


def test_http_redirects_to_https(deployed: Deployed) -> None:
    response = web.wait_for_redirect(SERVER_IP, DOMAIN, "/some/page?x=1")
    assert response.status == 301
    assert response.headers["location"] == f"https://{DOMAIN}/some/page?x=1"


def test_static_and_media_are_served_by_nginx_from_disk(deployed: Deployed) -> None:
    css = deployed.https("/static/posts/site.css")
    media = deployed.https("/media/hello.txt")
    page = deployed.https("/")
    assert css.status == 200
    assert css.body == (FIXTURES / "blog-uv/posts/static/posts/site.css").read_text()
    assert media.status == 200 and media.body.strip() == "media from disk"
    # Django's SecurityMiddleware marks its responses; nginx's file responses carry an ETag instead.
    assert page.headers.get("cross-origin-opener-policy") == "same-origin"
    for response in (css, media):
        assert "cross-origin-opener-policy" not in response.headers
        assert "etag" in response.headers
    access_log = deployed.sh(f"cat /var/log/supervisor/{APP}.out.log")
    assert '"GET / HTTP' in access_log
    assert "/static/" not in access_log and "/media/" not in access_log


def test_supervisor_runs_gunicorn_as_the_app_user_on_a_private_socket(deployed: Deployed) -> None:
    status = deployed.sh(f"supervisorctl status {APP}")
    assert "RUNNING" in status
    master = int(re.search(r"pid (\d+)", status).group(1))  # type: ignore[union-attr]
    assert deployed.sh(f"ps -o user= -p {master}").strip() == APP
    assert "gunicorn" in deployed.sh(f"ps -o args= -p {master}")
    mode = deployed.sh(f"stat -c '%a %U %G' /home/{APP}/run/{APP}.sock").split()
    assert mode[1:] == [APP, APP]
    assert int(mode[0], 8) & 0o007 == 0, f"socket mode {mode[0]} lets other users in"
    assert deployed.sh(f"stat -c %a /home/{APP}/{APP}/shared/.env").strip() == "600"


def test_an_exception_lands_in_the_rotating_log_file(deployed: Deployed) -> None:
    assert deployed.https("/boom/").status == 500
    log = deployed.sh(f"cat /home/{APP}/{APP}/shared/logs/{APP}.log")
    assert "RuntimeError: django-vps boom" in log


def test_the_ci_path_deploys_a_new_commit(deployed: Deployed) -> None:
    views = (FIXTURES / "blog-uv/posts/views.py").read_text().replace("<h1>blog</h1>", "<h1>blog v2</h1>")
    deployed.lab.forge().push_commit(APP, {"posts/views.py": views}, "v2 heading")
    result = deployed.run_workflow()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deployed" in result.stdout
    web.wait_for(SERVER_IP, DOMAIN, "/", "blog v2", cafile=deployed.cafile)


def _masters(deployed: Deployed) -> dict[str, str]:
    gunicorn = re.search(r"pid (\d+)", deployed.sh(f"supervisorctl status {APP}")).group(1)  # type: ignore[union-attr]
    nginx = deployed.sh("cat /run/nginx.pid").strip()
    return {"gunicorn": gunicorn, "nginx": nginx}


def test_a_second_run_changes_and_restarts_nothing(deployed: Deployed) -> None:
    before = _masters(deployed)
    unchanged = deployed.engine.new_run()
    run_program(deployed.engine, deployed.config)
    assert unchanged.executed == [], "a re-render must give the same triggers"

    forced = deployed.engine.new_run(force_commands=True)
    started = time.monotonic()
    run_program(deployed.engine, deployed.config)
    print(f"\nsecond run with every step forced: {time.monotonic() - started:.1f} s")
    assert len(forced.executed) == len(STEPS)
    assert _masters(deployed) == before
    assert deployed.https("/").status == 200


def test_a_reboot_brings_the_site_back(deployed: Deployed) -> None:
    deployed.server.reboot()
    web.wait_for(SERVER_IP, DOMAIN, "/", "Hello from django-vps", cafile=deployed.cafile, timeout=90)
