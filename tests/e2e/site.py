"""A site deployed by the real program on the lab engine (Hetzner mode), shared by e2e modules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e import web
from tests.e2e.engine import SERVER_IP, LabEngine
from tests.e2e.testhost import Lab, Server
from tests.support.program import run_program

FIXTURES = Path(__file__).parent / "fixtures"
DOMAIN = "blog.test"
APP = "blog"
WORKFLOW = ".github/workflows/deploy.yml"


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

    def secret(self, name: str) -> str:
        return self.engine.github[name]["value"]

    def run_workflow(self) -> subprocess.CompletedProcess[str]:
        """Execute the committed workflow's steps as a runner would, with the recorded secrets."""
        workflow = yaml.safe_load(self.engine.github[WORKFLOW]["content"])
        result = None
        with tempfile.TemporaryDirectory() as home:
            for step in workflow["jobs"]["deploy"]["steps"]:
                env = {"HOME": home, "PATH": os.environ["PATH"]}
                for key, expression in step.get("env", {}).items():
                    name = re.fullmatch(r"\$\{\{ secrets\.(\w+) \}\}", expression).group(1)  # type: ignore[union-attr]
                    env[key] = self.secret(name)
                result = subprocess.run(
                    ["bash", "-e", "-c", step["run"]], env=env, text=True, capture_output=True, timeout=300
                )
                if result.returncode != 0:
                    return result
        assert result is not None
        return result

    def ssh(self, user: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The ssh client as the workflow uses it: this key only, the pinned host key, no prompts."""
        with tempfile.TemporaryDirectory() as home:
            key_file = Path(home) / "key"
            key_file.write_text(key)
            key_file.chmod(0o600)
            known = Path(home) / "known_hosts"
            known.write_text(self.secret("PRODUCTION_SSH_KNOWN_HOSTS") + "\n")
            options = ["IdentitiesOnly=yes", "BatchMode=yes", "StrictHostKeyChecking=yes",
                       f"UserKnownHostsFile={known}", "ConnectTimeout=10"]  # fmt: skip
            target = f"{user}@{self.secret('PRODUCTION_SSH_HOST')}"
            return subprocess.run(
                ["ssh", "-i", str(key_file), *(f"-o{option}" for option in options), target, *args],
                text=True, capture_output=True, timeout=300,
            )  # fmt: skip

    def ci_ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        """What the workflow does, with another command: ssh with the recorded CI secrets."""
        return self.ssh(self.secret("PRODUCTION_SSH_USERNAME"), self.secret("PRODUCTION_SSH_KEY"), command)


def deploy_site(
    lab: Lab,
    cafile: Path,
    *,
    repo: str = APP,
    fixture: str = "blog-uv",
    server_image: Path | None = None,
    on_engine: Callable[[LabEngine], object] | None = None,
    **settings: str,
) -> Deployed:
    """`pulumi up` of a new stack for FIXTURES/fixture, pushed to the lab's forge as `repo`.
    Settings without a namespace are django-vps's; `on_engine` sees the engine before the run."""
    forge = lab.forge()
    forge.create_repo(repo, FIXTURES / fixture)
    config = {
        "django-vps:domain": DOMAIN,
        "django-vps:repository": f"example/{APP}",
        "django-vps:cloneUrl": forge.url(repo),
        "django-vps:cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
        "django-vps:letsencryptEmail": "admin@blog.test",
        "django-vps:acmeServer": lab.acme_directory,
        **{key if ":" in key else f"django-vps:{key}": value for key, value in settings.items()},
    }
    engine = LabEngine(lab, image=server_image)
    if on_engine is not None:
        on_engine(engine)
    started = time.monotonic()
    exports = run_program(engine, config)
    converge = time.monotonic() - started
    cafile.write_text(lab.acme_ca_pem())
    print(
        f"\nconverge (bare server to HTTPS, Hetzner mode, {config.get('django-vps:image', 'debian-12')}): "
        f"{converge:.1f} s; per step: "
        + ", ".join(f"{k.split('-', 2)[-1]} {v:.1f}" for k, v in engine.log.seconds.items())
    )
    return Deployed(lab, engine, config, exports, converge, str(cafile))
