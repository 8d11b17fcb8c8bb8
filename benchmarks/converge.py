"""Converge benchmark: a bare, booted Debian 12 test server to HTTPS 200 through the program, beside
the floor measured in the same run on a second bare server: the same apt install, the same venv and
dependency install and the same git clone, done directly over SSH with nothing else.

Run as root:  uv run python -m benchmarks.converge
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from components import render
from tests.e2e import web
from tests.e2e.engine import LabEngine, run_remote
from tests.e2e.testhost import Lab
from tests.e2e.testhost.keys import new_ed25519
from tests.support.program import run_program

FIXTURE = Path(__file__).resolve().parent.parent / "tests/e2e/fixtures/blog-uv"
PROGRAM_IP, FLOOR_IP = "198.51.100.2", "198.51.100.4"
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
    with Lab() as lab:
        forge = lab.forge()
        clone_url = forge.create_repo("blog", FIXTURE)
        known_host = f"{forge.ip} {forge.host_public_key()}"
        root = new_ed25519()
        floor_server = lab.server("floor", FLOOR_IP, root_authorized_keys=[root.public])
        program_server = lab.server("program", PROGRAM_IP, root_authorized_keys=[root.public])

        deploy = new_ed25519()
        forge.add_deploy_key(deploy.public)
        started = time.monotonic()
        run_remote(
            connection(FLOOR_IP, root.private_openssh, floor_server.host_public_key()),
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

        config = {
            "django-vps:domain": DOMAIN,
            "django-vps:repository": "example/blog",
            "django-vps:cloneUrl": clone_url,
            "django-vps:cloneHostKeys": json.dumps([known_host]),
            "django-vps:letsencryptEmail": "admin@blog.test",
            "django-vps:acmeServer": lab.acme_directory,
            "django-vps:existingHost": PROGRAM_IP,
            "django-vps:existingHostKey": program_server.host_public_key(),
            "django-vps:existingHostPrivateKey": root.private_openssh,
        }
        engine = LabEngine(lab)
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as cafile:
            cafile.write(lab.acme_ca_pem())
            cafile.flush()
            started = time.monotonic()
            run_program(engine, config)
            web.wait_for(PROGRAM_IP, DOMAIN, "/", "Hello from django-vps", cafile=cafile.name, timeout=30)
            converge = time.monotonic() - started
            steps = dict(engine.log.seconds)

            engine.new_run(force_commands=True)
            started = time.monotonic()
            run_program(engine, config)
            second = time.monotonic() - started

        print("converge benchmark (Debian 12 test server, blog-uv with package.json)")
        print(f"  floor   (apt + uv venv/deps + git clone, directly): {floor:6.1f} s")
        print(f"  program (bare booted server to HTTPS 200):          {converge:6.1f} s")
        print(f"  ratio   program / floor:                            {converge / floor:6.2f}")
        print(f"  second run, every step re-run (idempotent):         {second:6.1f} s")
        print("  program steps: " + ", ".join(f"{name.split('-', 2)[-1]} {s:.1f}" for name, s in steps.items()))


if __name__ == "__main__":
    main()
