"""The whole program, Hetzner mode, on the real Pulumi CLI: `pulumi up` asks the Hetzner stand-in for
a server (booted from the image with the program's cloud-init) and takes it to serving the blog over
HTTPS from pebble; then the CI path through the workflow GitHub holds, a second run and a reboot;
`pulumi destroy` at the end leaves the stand-ins empty."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from components import render
from components.host import steps_of
from tests.e2e import web
from tests.e2e.site import APP, DOMAIN, FIXTURES, SERVER_IP, Deployed, deploy_site
from tests.e2e.testhost import Lab
from tests.support.figures import figure

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def deployed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    site = deploy_site(
        lab, tmp_path_factory.mktemp("pebble") / "root.pem", logSize="1", djangoEnv=json.dumps(["GREETING=hello"])
    )
    yield site
    hetzner, github = site.hetzner.cloud, site.github.model
    site.remove()
    # `pulumi destroy` took everything the stack made: the server, its keys and firewall, the records
    # (the user's zone stays, with what Hetzner made in it), the key, secrets and workflow on GitHub.
    assert hetzner.resources() == {"ssh_keys": 0, "firewalls": 0, "servers": 0, "zones": 1, "rrsets": 2}
    assert github.managed(APP) == {"keys": [], "secrets": [], "environments": {}, "files": []}
    assert not [name for name in lab.servers if name.startswith("hc")], "the lab server outlived destroy"


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


def test_a_second_run_changes_and_restarts_nothing(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _masters(deployed)
    preview = deployed.stack.preview(echo=None)
    assert set(preview.changes) == {"same"}, preview.changes
    unchanged = deployed.stack.up(echo=None)
    assert unchanged.changed() == {}, unchanged.changed()
    assert set(unchanged.changes) == {"same"}
    assert set(deployed.stack.refresh(echo=None).changes) <= {"same"}

    # Every host script edited: each step is updated (re-run in place), and re-running them all
    # restarts nothing: the scripts converge.
    original = render.render
    monkeypatch.setattr(
        render, "render", lambda t, **c: original(t, **c) + ("# edited\n" if t.startswith("host-") else "")
    )
    forced = deployed.stack.up(echo=None)
    figure(f"second run with every step's script edited (all updated): {forced.seconds:.1f} s")
    # A created server's steps for these settings: admin-keys too, no database or off-site steps.
    steps = {f"{APP}-host-{role}" for role in steps_of(deployed.settings, created=True)}
    assert {name for name, ops in forced.changed().items() if ops == ["update"]} == steps, forced.changed()
    assert _masters(deployed) == before
    assert deployed.https("/").status == 200


def test_a_reboot_brings_the_site_back(deployed: Deployed) -> None:
    deployed.server.reboot()
    web.wait_for(SERVER_IP, DOMAIN, "/", "Hello from django-vps", cafile=deployed.cafile, timeout=90)
