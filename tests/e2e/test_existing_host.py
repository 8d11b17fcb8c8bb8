"""Existing-host mode against a real server the user already has: a non-root login with
passwordless sudo, a subdomain, the requirements.txt variant of the project; then `pulumi destroy`
removes what is safe to remove and keeps the data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e import web
from tests.e2e.engine import LabEngine
from tests.e2e.site import FIXTURES
from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.keys import new_ed25519
from tests.support.program import run_program

pytestmark = pytest.mark.e2e

IP = "198.51.100.5"
DOMAIN = "www.blog.test"
APP = "shop"


def test_existing_host_is_provisioned_through_sudo_and_torn_down(lab: Lab, tmp_path: Path) -> None:
    server = lab.server("old", IP)
    try:
        _provision_and_destroy(lab, server, tmp_path)
    finally:
        lab.remove("old")


def _provision_and_destroy(lab: Lab, server: Server, tmp_path: Path) -> None:
    login = new_ed25519()
    server.run(
        "useradd --create-home --shell /bin/bash admin"
        " && install -d -m 700 -o admin -g admin /home/admin/.ssh"
        f" && echo '{login.public}' > /home/admin/.ssh/authorized_keys"
        " && chown admin:admin /home/admin/.ssh/authorized_keys"
        " && echo 'admin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/admin",
        check=True,
    )
    forge = lab.forge()
    clone_url = forge.create_repo(APP, FIXTURES / "blog-pip")
    config = {
        "django-vps:domain": DOMAIN,
        "django-vps:repository": f"example/{APP}",
        "django-vps:cloneUrl": clone_url,
        "django-vps:cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
        "django-vps:letsencryptEmail": "admin@blog.test",
        "django-vps:acmeServer": lab.acme_directory,
        "django-vps:existingHost": IP,
        "django-vps:existingHostUser": "admin",
        "django-vps:existingHostKey": server.host_public_key(),
        "django-vps:existingHostPrivateKey": login.private_openssh,
    }
    engine = LabEngine(lab)
    started = time.monotonic()
    exports = run_program(engine, config)
    print(f"\nconverge (existing host, requirements.txt): {time.monotonic() - started:.1f} s")

    assert not any(typ.startswith("hcloud:index/server") for typ, _ in engine.state)
    assert engine.dns["A www.blog.test"]["name"] == "www" and engine.dns["A www.blog.test"]["zone"] == "blog.test"
    assert exports["dnsRecords"] == [
        {"type": "A", "name": "www", "zone": "blog.test", "fqdn": DOMAIN, "value": IP, "ttl": 300}
    ]
    cafile = tmp_path / "root.pem"
    cafile.write_text(lab.acme_ca_pem())
    web.wait_for(IP, DOMAIN, "/", "Hello from django-vps", cafile=str(cafile))
    # requirements.txt was detected: pip made the venv, and no Node.js came without a package.json.
    assert server.run(f"test -x /home/{APP}/{APP}/current/.venv/bin/gunicorn").returncode == 0
    assert server.run("command -v npm").returncode != 0

    said = "\n".join(engine.destroy())
    assert "kept the user shop" in said and "kept the SSH hardening" in said
    assert server.run(f"test -e /etc/nginx/conf.d/{APP}.conf").returncode != 0
    assert APP not in server.run("supervisorctl avail", check=True).stdout
    assert server.run(f"test -e /etc/sudoers.d/django-vps-{APP}").returncode != 0
    assert server.run(f"test -e /home/{APP}/.ssh/authorized_keys").returncode != 0
    # Data stays: the database and the media.
    assert (
        server.run(
            f"test -s /home/{APP}/{APP}/shared/db.sqlite3 && test -s /home/{APP}/{APP}/shared/media/hello.txt"
        ).returncode
        == 0
    )
    # The site is no longer served: nginx answers with its default server only.
    response = web.get(IP, DOMAIN, "/", https=False)
    assert "Hello from django-vps" not in response.body
