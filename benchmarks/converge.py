"""Converge benchmark: a bare, booted Debian 12 test server to HTTPS 200 through the program on the
real Pulumi CLI (existing-host mode), beside, in the same run and on servers of their own: the floor
(the same apt install, venv and dependency install and git clone, done directly over SSH with
nothing else) and the same program on the old mock-runtime engine (its steps strictly in order).

Run as root:  uv run python -m benchmarks.converge
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.old_engine import LabEngine, run_remote
from components import render
from tests.e2e import web
from tests.e2e.cli import CliStack
from tests.e2e.testhost import Lab
from tests.e2e.testhost.keys import new_ed25519
from tests.support.program import run_program

FIXTURE = Path(__file__).resolve().parent.parent / "tests/e2e/fixtures/blog-uv"
PROGRAM_IP, FLOOR_IP, OLD_ENGINE_IP = "198.51.100.2", "198.51.100.4", "198.51.100.6"
GITHUB_TOKEN = "ghp_" + "b" * 36
DOMAIN = "blog.test"

FLOOR_SCRIPT = """set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get -q update >/dev/null
apt-get -q install -y --no-install-recommends nginx certbot python3-certbot-nginx supervisor git \
    python3-venv sudo ca-certificates nodejs npm >/dev/null
python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet 'uv=={uv_version}'
install -d -m 700 /root/.ssh
cat > /root/.ssh/forge_key <<'KEY'
{deploy_key}KEY
chmod 600 /root/.ssh/forge_key
echo '{known_host}' > /root/.ssh/known_hosts_forge
GIT_SSH_COMMAND='ssh -i /root/.ssh/forge_key -o UserKnownHostsFile=/root/.ssh/known_hosts_forge' \
    git clone --quiet {clone_url} /srv/blog
cd /srv/blog && /opt/uv/bin/uv sync --quiet --locked --no-dev --group prod --python /usr/bin/python3
"""


def connection(ip: str, key: str, host_key: str, user: str = "root") -> dict[str, str]:
    return {"host": ip, "user": user, "privateKey": key, "hostKey": host_key}


def main() -> None:
    with Lab() as lab, tempfile.TemporaryDirectory() as work:
        forge = lab.forge()
        clone_url = forge.create_repo("blog", FIXTURE)
        known_host = f"{forge.ip} {forge.host_public_key()}"
        root = new_ed25519()
        servers = {
            ip: lab.server(name, ip, root_authorized_keys=[root.public])
            for name, ip in (("floor", FLOOR_IP), ("program", PROGRAM_IP), ("oldengine", OLD_ENGINE_IP))
        }
        cafile = Path(work) / "ca.pem"

        deploy = new_ed25519()
        forge.add_deploy_key(deploy.public)
        started = time.monotonic()
        run_remote(
            connection(FLOOR_IP, root.private_openssh, servers[FLOOR_IP].host_public_key()),
            FLOOR_SCRIPT.format(
                uv_version=render.UV_VERSION,
                deploy_key=deploy.private_openssh,
                known_host=known_host,
                clone_url=clone_url,
            ),
            None,
            "floor",
        )
        floor = time.monotonic() - started

        def config(ip: str) -> dict[str, str]:
            lab.set_a(DOMAIN, ip)
            return {
                "domain": DOMAIN,
                "repository": "example/blog",
                "cloneUrl": clone_url,
                "cloneHostKeys": json.dumps([known_host]),
                "letsencryptEmail": "admin@blog.test",
                "acmeServer": lab.acme_directory,
                "existingHost": ip,
                "existingHostKey": servers[ip].host_public_key(),
                "existingHostPrivateKey": root.private_openssh,
                "manageDns": "false",
                "github:token": GITHUB_TOKEN,
            }

        github = lab.github_api("example", GITHUB_TOKEN, repositories=("blog",))
        stack = CliStack(Path(work) / "stack")
        stack.configure({**config(PROGRAM_IP), "github:baseUrl": github.url})
        started = time.monotonic()
        first = stack.up(echo=None)
        cafile.write_text(lab.acme_ca_pem())
        web.wait_for(PROGRAM_IP, DOMAIN, "/", "Hello from django-vps", cafile=str(cafile), timeout=30)
        converge = time.monotonic() - started
        noop = stack.up(echo=None)
        assert noop.changed() == {}, noop.changed()
        original = render.render
        render.render = lambda template, **context: (  # type: ignore[assignment]
            original(template, **context) + ("# edited\n" if template.startswith("host-") else "")
        )
        try:
            every = stack.up(echo=None)
        finally:
            render.render = original  # type: ignore[assignment]

        old = {f"django-vps:{key}" if ":" not in key else key: value for key, value in config(OLD_ENGINE_IP).items()}
        engine = LabEngine(lab)
        started = time.monotonic()
        run_program(engine, old)
        web.wait_for(OLD_ENGINE_IP, DOMAIN, "/", "Hello from django-vps", cafile=str(cafile), timeout=30)
        old_converge = time.monotonic() - started

        # Hetzner mode: from nothing (the Hetzner stand-in boots the server with the program's cloud-init)
        # to HTTPS 200, through the real CLI; the lab DNS gets its A record from the stand-in.
        hetzner = lab.hetzner_api()
        hetzner.cloud.create_zone({"name": DOMAIN, "mode": "primary"})
        github.model.create_repository("blog-hetzner")
        hetzner_stack = CliStack(Path(work) / "hetzner-stack")
        hetzner_config = {k: v for k, v in config(PROGRAM_IP).items() if not k.startswith("existingHost")}
        hetzner_stack.configure(
            {
                **hetzner_config,
                "manageDns": None,
                "repository": "example/blog-hetzner",
                "github:baseUrl": github.url,
                "hcloud:endpoint": hetzner.url,
                "hcloud:token": "bench" + "0" * 59,
            }
        )
        started = time.monotonic()
        hetzner_up = hetzner_stack.up(echo=None)
        hetzner_ip = hetzner_up.outputs["ipv4"]
        web.wait_for(hetzner_ip, DOMAIN, "/", "Hello from django-vps", cafile=str(cafile), timeout=30)
        hetzner_converge = time.monotonic() - started
        hetzner_stack.destroy(echo=None)
        hetzner.stop()

        print("converge benchmark (Debian 12 test servers, blog-uv with package.json, existing-host mode)")
        print(f"  floor   (apt + uv venv/deps + git clone, directly):     {floor:6.1f} s")
        print(f"  program, real CLI (bare booted server to HTTPS 200):     {converge:6.1f} s")
        print(f"    of which the CLI's `pulumi up`:                        {first.seconds:6.1f} s")
        print(f"  ratio   real CLI / floor:                                {converge / floor:6.2f}")
        print(f"  Hetzner mode, real CLI (bare API to HTTPS 200):          {hetzner_converge:6.1f} s")
        print(f"  ratio   Hetzner mode / floor:                            {hetzner_converge / floor:6.2f}")
        print(f"  program, old mock-runtime engine (its mock steps):       {old_converge:6.1f} s")
        print(f"  ratio   old engine / floor:                              {old_converge / floor:6.2f}")
        print(f"  second up, every step's script edited (all updated):     {every.seconds:6.1f} s")
        print(f"  up with nothing to do (the CLI's own overhead):          {noop.seconds:6.1f} s")
        print(
            "  old engine steps: " + ", ".join(f"{n.split('-', 2)[-1]} {s:.1f}" for n, s in engine.log.seconds.items())
        )


if __name__ == "__main__":
    main()
