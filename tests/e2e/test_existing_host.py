"""Existing-host mode on the real Pulumi CLI, in the order Pulumi's own integration tests use:
preview, up, an empty preview and up, refresh, state without secrets, an edit of every step under
load, destroy. The host is a real server the user already has (a non-root login with passwordless
sudo), the site a subdomain, the project the requirements.txt variant; the DNS is the user's own
(manageDns off: the test sets the A record, as the user would at their registrar)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from components import render
from components.host import STEPS, TEARDOWN_AFTER
from components.settings import load_settings
from tests.e2e import web
from tests.e2e.cli import CliStack, Run
from tests.e2e.load import steady_load
from tests.e2e.site import FIXTURES
from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.github_api import GitHubAPI
from tests.e2e.testhost.keys import new_ed25519
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

IP = "198.51.100.5"
DOMAIN = "www.blog.test"
APP = "shop"
GITHUB_TOKEN = "ghp_" + "e2e" * 12
OWNER = "example"
API_TOKEN = "api-token-that-must-stay-secret-4711"
INSTALLED = {
    "the nginx site": f"test -s /etc/nginx/conf.d/{APP}.conf",
    "the supervisor program": f"supervisorctl status {APP} | grep -q RUNNING",
    "the CI key": f"grep -q 'restrict,command=' /home/{APP}/.ssh/authorized_keys",
    "the deploy key": f"test -s /home/{APP}/.ssh/deploy_key",
    "the sudo rule": f"test -s /etc/sudoers.d/django-vps-{APP}",
    "the forced command": "test -x {ci_command}",
}


@dataclass
class Site:
    lab: Lab
    server: Server
    stack: CliStack
    github: GitHubAPI
    login_private_key: str
    cafile: str
    first_up: Run

    def https(self, path: str = "/") -> web.Response:
        return web.get(IP, DOMAIN, path, cafile=self.cafile)

    def missing(self) -> list[str]:
        ci_command = load_settings(self.stack.config_values().get).ci_command
        checks = {what: check.format(ci_command=ci_command) for what, check in INSTALLED.items()}
        return [what for what, check in checks.items() if self.server.run(check).returncode != 0]


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = lab.server("old", IP)
    try:
        login = server.add_sudo_login()
        lab.set_a(DOMAIN, IP)
        forge = lab.forge()
        clone_url = forge.create_repo(APP, FIXTURES / "blog-pip")
        github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=(APP,))
        stack = CliStack(tmp_path_factory.mktemp("existing-host"))
        stack.configure(
            {
                "domain": DOMAIN,
                "repository": f"{OWNER}/{APP}",
                "cloneUrl": clone_url,
                "cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
                "letsencryptEmail": "admin@blog.test",
                "acmeServer": lab.acme_directory,
                "manageDns": "false",
                "existingHost": IP,
                "existingHostUser": "admin",
                "existingHostKey": server.host_public_key(),
                "existingHostPrivateKey": login.private_openssh,
                "djangoSecretEnv": json.dumps([f"API_TOKEN={API_TOKEN}"]),
                "github:token": GITHUB_TOKEN,
                "github:baseUrl": github.url,
            }
        )
        preview = stack.preview(echo=None)
        assert preview.changes.get("create", 0) > 20 and set(preview.changes) == {"create"}, preview.changes
        first = stack.up()
        figure(f"converge on the real CLI (existing host, requirements.txt): {first.seconds:.1f} s")
        cafile = tmp_path_factory.mktemp("ca") / "root.pem"
        cafile.write_text(lab.acme_ca_pem())
        yield Site(lab, server, stack, github, login.private_openssh, str(cafile), first)
    finally:
        github.stop()
        lab.remove("old")


def test_up_serves_the_site_over_https(site: Site) -> None:
    assert site.first_up.changes.get("create", 0) > 20, site.first_up.changes
    web.wait_for(IP, DOMAIN, "/", "Hello from django-vps", cafile=site.cafile)  # migrate ran
    # requirements.txt was detected: pip made the venv, and no Node.js came without a package.json.
    assert site.server.run(f"test -x /home/{APP}/{APP}/current/.venv/bin/gunicorn").returncode == 0
    assert site.server.run("command -v npm").returncode != 0
    assert site.missing() == []
    assert site.github.model.unknown_requests == []


def test_nothing_to_do_after_up(site: Site) -> None:
    """The engine itself says so: preview plans nothing, up changes nothing and runs no command."""
    preview = site.stack.preview(echo=None)
    assert set(preview.changes) == {"same"}, preview.changes
    again = site.stack.up(echo=None)
    assert set(again.changes) == {"same"}, again.changes
    assert again.changed() == {}
    figure(f"no-op up on the real CLI: {again.seconds:.1f} s")


def test_refresh_finds_no_drift(site: Site) -> None:
    refreshed = site.stack.refresh(echo=None)
    assert set(refreshed.changes) <= {"same"}, refreshed.changes


def _fragments(secret: str) -> list[str]:
    """Pieces of a secret long enough to be unmistakable: a key's base64 lines, or the whole value."""
    lines = [line for line in secret.splitlines() if len(line) >= 20 and "PRIVATE KEY" not in line]
    return lines or [secret]


def test_state_and_exports_hold_no_secret_in_plaintext(site: Site) -> None:
    secret_key = site.server.run(f"grep ^SECRET_KEY= /home/{APP}/{APP}/shared/.env", check=True).stdout
    secrets = {
        "the login key": site.login_private_key,
        "the deploy key": site.server.run(f"cat /home/{APP}/.ssh/deploy_key", check=True).stdout,
        "the CI key": site.github.model.secret_plaintext(APP, "SSH_KEY", environment="lab"),
        "the GitHub token": GITHUB_TOKEN,
        "SECRET_KEY": secret_key.strip().split("=", 1)[1],
        "djangoSecretEnv": API_TOKEN,
    }
    export = site.stack.cli("stack", "export").stdout
    outputs = site.stack.cli("stack", "output", "--json").stdout
    files = {str(path): path.read_text(errors="replace") for path in site.stack.state_files()}
    assert files, "the file backend wrote no state"
    for name, secret in secrets.items():
        for fragment in _fragments(secret):
            assert fragment not in export, f"{name} in `pulumi stack export`"
            assert fragment not in outputs, f"{name} in the stack outputs"
            for path, text in files.items():
                assert fragment not in text, f"{name} in {path}"
    # ...and they are there, encrypted: the secrets provider's ciphertext, not nothing.
    assert export.count('"ciphertext"') >= 6


def test_changing_settings_and_every_template_under_load_removes_nothing(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifecycle that broke sites: each change is an update in place, no teardown runs."""
    assert web.get(IP, DOMAIN, "/greeting/", cafile=site.cafile).body.startswith("- ")
    forge = site.lab.forge()
    extra_host_key = new_ed25519().public
    site.stack.configure(
        {
            "clientMaxBodySize": "25M",
            "gunicornWorkers": "3",
            "djangoEnv": json.dumps(["GREETING=hola"]),
            "cloneHostKeys": json.dumps(
                [f"{forge.ip} {forge.host_public_key()}", f"mirror.blog.test {extra_host_key}"]
            ),
        }
    )
    original = render.render

    def edited(template: str, **context: object) -> str:
        # A template edit that reaches every host script, the teardowns included.
        text = original(template, **context)
        return text + "# edited\n" if template.startswith("host-") else text

    monkeypatch.setattr(render, "render", edited)
    with steady_load(IP, DOMAIN, "/health/") as load:
        changed = site.stack.up()
    figure(f"config change under load: {load.sent} requests, {load.failed} failed; up {changed.seconds:.1f} s")
    assert load.sent > 100 and load.failed == 0, load.output[-2000:]
    touched = changed.changed()
    steps = {f"{APP}-host-{role}" for role in STEPS} | {f"{APP}-host-teardown-{part}" for part in TEARDOWN_AFTER}
    assert {name for name, ops in touched.items() if ops == ["update"]} >= steps, touched
    assert not [name for name, ops in touched.items() if set(ops) - {"update"}], touched
    assert site.missing() == []
    # The new values are live.
    body = web.get(IP, DOMAIN, "/greeting/", cafile=site.cafile).body
    assert body.startswith("hola "), body
    assert re.search(r"client_max_body_size 25M;", site.server.run(f"cat /etc/nginx/conf.d/{APP}.conf").stdout)
    assert f"mirror.blog.test {extra_host_key}" in site.server.run(f"cat /home/{APP}/.ssh/known_hosts_clone").stdout
    deadline = time.monotonic() + 60
    while True:
        master = site.server.run(f"supervisorctl pid {APP}", check=True).stdout.strip()
        workers = site.server.run(f"pgrep -c -P {master}").stdout.strip()
        if workers == "3" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert workers == "3", f"gunicorn runs {workers} workers, not the 3 configured"


def test_destroy_runs_the_teardowns_and_keeps_the_data(site: Site) -> None:
    destroyed = site.stack.destroy()
    assert set(destroyed.changes) == {"delete"}, destroyed.changes
    server = site.server
    assert site.missing() == list(INSTALLED)
    # Data stays: the database and the media; and the user.
    assert server.run(f"test -s /home/{APP}/{APP}/shared/db.sqlite3").returncode == 0
    assert server.run(f"test -s /home/{APP}/{APP}/shared/media/hello.txt").returncode == 0
    assert server.run(f"id {APP}").returncode == 0
    # The site is no longer served: nginx answers for the domain with its default server only.
    response = web.get(IP, DOMAIN, "/", https=False)
    assert response.status != 301 and "<h1>blog</h1>" not in response.body, response
    # GitHub holds nothing of the stack.
    assert site.github.model.managed(APP) == {"keys": [], "secrets": [], "environments": {}, "files": []}
    assert site.github.model.unknown_requests == []
    assert site.stack.resources() == {}
