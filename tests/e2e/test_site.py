"""The whole program, Hetzner mode, against a real Debian server: `pulumi up` (the real __main__.py on
the lab engine) takes a bare server booted with the program's cloud-init to serving the blog over
HTTPS from pebble, then the CI path, a second run and a reboot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import web
from tests.e2e.engine import SERVER_IP, LabEngine
from tests.e2e.testhost import Lab, Server
from tests.support.program import run_program

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "fixtures"
DOMAIN = "blog.test"
APP = "blog"


@dataclass
class Deployed:
    lab: Lab
    engine: LabEngine
    config: dict[str, str]
    exports: dict[str, Any]
    converge_seconds: float
    cafile: str

    @property
    def server(self) -> Server:
        assert self.engine.server is not None
        return self.engine.server

    def sh(self, command: str) -> str:
        return self.server.run(command, check=True).stdout

    def https(self, path: str = "/") -> web.Response:
        return web.get(SERVER_IP, DOMAIN, path, cafile=self.cafile)


@pytest.fixture(scope="module")
def deployed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    forge = lab.forge()
    clone_url = forge.create_repo(APP, FIXTURES / "blog-uv")
    config = {
        "django-vps:domain": DOMAIN,
        "django-vps:repository": f"example/{APP}",
        "django-vps:cloneUrl": clone_url,
        "django-vps:cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
        "django-vps:letsencryptEmail": "admin@blog.test",
        "django-vps:acmeServer": lab.acme_directory,
        "django-vps:logSize": "1",
        "django-vps:djangoEnv": json.dumps(["GREETING=hello"]),
    }
    engine = LabEngine(lab)
    started = time.monotonic()
    exports = run_program(engine, config)
    converge = time.monotonic() - started
    cafile = tmp_path_factory.mktemp("pebble") / "root.pem"
    cafile.write_text(lab.acme_ca_pem())
    print(
        f"\nconverge (bare server to HTTPS, Hetzner mode): {converge:.1f} s; per step: "
        + ", ".join(f"{k.split('-', 2)[-1]} {v:.1f}" for k, v in engine.log.seconds.items())
    )
    return Deployed(lab, engine, config, exports, converge, str(cafile))


def test_https_serves_the_page_with_a_certificate_from_the_acme_server(deployed: Deployed) -> None:
    response = deployed.https("/")
    assert response.status == 200
    assert "Hello from django-vps" in response.body  # read from the database: migrate ran
    assert deployed.exports["url"] == f"https://{DOMAIN}"
    assert deployed.exports["ipv4"] == SERVER_IP


def test_http_redirects_to_https(deployed: Deployed) -> None:
    # `systemctl reload nginx` returns before the workers with the HTTP-only site have gone.
    deadline = time.monotonic() + 5
    while (response := web.get(SERVER_IP, DOMAIN, "/some/page?x=1", https=False)).status != 301:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
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
    assert page.headers.get("x-content-type-options") == "nosniff"
    for response in (css, media):
        assert "x-content-type-options" not in response.headers
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
    assert deployed.sh(f"stat -c %a /home/{APP}/{APP}/.env").strip() == "600"


def test_an_exception_lands_in_the_rotating_log_file(deployed: Deployed) -> None:
    assert deployed.https("/boom/").status == 500
    log = deployed.sh(f"cat /home/{APP}/{APP}/logs/{APP}.log")
    assert "RuntimeError: django-vps boom" in log


def _run_workflow(deployed: Deployed, home: Path) -> subprocess.CompletedProcess[str]:
    """Execute the committed workflow's steps as a runner would, with the recorded secrets."""
    workflow = yaml.safe_load(deployed.engine.github[".github/workflows/deploy.yml"]["content"])
    secrets = {name: deployed.engine.github[name]["value"] for name in deployed.exports["githubSecrets"]}
    result = None
    for step in workflow["jobs"]["deploy"]["steps"]:
        env = {"HOME": str(home), "PATH": os.environ["PATH"]}
        for key, expression in step.get("env", {}).items():
            env[key] = secrets[re.fullmatch(r"\$\{\{ secrets\.(\w+) \}\}", expression).group(1)]  # type: ignore[union-attr]
        result = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, text=True, capture_output=True, timeout=300)
        assert result.returncode == 0, f"workflow step {step['name']!r} failed:\n{result.stdout}\n{result.stderr}"
    assert result is not None
    return result


def test_the_ci_path_deploys_a_new_commit(deployed: Deployed) -> None:
    views = (FIXTURES / "blog-uv/posts/views.py").read_text().replace("<h1>blog</h1>", "<h1>blog v2</h1>")
    deployed.lab.forge().push_commit(APP, {"posts/views.py": views}, "v2 heading")
    with tempfile.TemporaryDirectory() as home:
        result = _run_workflow(deployed, Path(home))
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
    assert len(forced.executed) == 9
    assert _masters(deployed) == before
    assert deployed.https("/").status == 200


def test_a_reboot_brings_the_site_back(deployed: Deployed) -> None:
    deployed.server.reboot()
    web.wait_for(SERVER_IP, DOMAIN, "/", "Hello from django-vps", cafile=deployed.cafile, timeout=90)
