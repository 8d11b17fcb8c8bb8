"""A site deployed by the real program through the real Pulumi CLI (Hetzner mode), shared by e2e
modules: the Hetzner Cloud and GitHub stand-ins of the lab, a zone the user already has at Hetzner,
the project pushed to the lab's forge, and one `pulumi up` of a new file-backend stack."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.settings import Settings, load_settings
from tests.e2e import web
from tests.e2e.cli import CliStack, Run
from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.github_api import GitHubAPI, GitHubModel
from tests.e2e.testhost.hetzner_api import HetznerAPI
from tests.support.figures import figure

FIXTURES = Path(__file__).parent / "fixtures"
DOMAIN = "blog.test"
APP = "blog"
OWNER = "example"
SERVER_IP = "198.51.100.2"
"""Where the stand-in's first server lands (its lowest free lab address)."""
HCLOUD_TOKEN = "hc" + "0123456789abcdef" * 3 + "e2e-token-0123"
GITHUB_TOKEN = "ghp_django-vps-e2e-token-0123456789abcdef"
# GitHub's runner runs a `run:` step of `shell: bash` as this, the step's text in the file {0}.
GITHUB_BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail")


@dataclass
class Deployed:
    lab: Lab
    stack: CliStack
    hetzner: HetznerAPI
    github: GitHubAPI
    config: dict[str, str]
    first_up: Run
    converge_seconds: float
    cafile: str
    exports: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def settings(self) -> Settings:
        # Read once, here: loading makes pulumi Outputs, which need the main thread's event loop.
        return load_settings(self.config.get, stack=self.stack.stack.name)

    @property
    def environment(self) -> str:
        """The stack's GitHub Environment: the stack's name."""
        return self.stack.stack.name

    @property
    def workflow_path(self) -> str:
        return f".github/workflows/deploy-{self.environment}.yml"

    @property
    def server(self) -> Server:
        """The lab server behind the stack's Hetzner server."""
        (server_id,) = self.hetzner.cloud.servers
        return self.lab.servers[f"hc{server_id}"]

    @property
    def ip(self) -> str:
        return self.exports["ipv4"]

    def sh(self, command: str) -> str:
        return self.server.run(command, check=True).stdout

    def https(self, path: str = "/") -> web.Response:
        return web.get(self.ip, DOMAIN, path, cafile=self.cafile)

    def secret(self, name: str) -> str:
        """What GitHub holds for the workflow's job, which names the stack's environment: the sealed
        box, opened."""
        return self.github.model.secret_plaintext(APP, name, environment=self.environment)

    def workflow(self) -> dict[str, Any]:
        text = self.github.model.file_text(APP, self.workflow_path, self.settings.branch)
        assert text is not None, f"no {self.workflow_path} on {self.settings.branch} in the repository on GitHub"
        return yaml.safe_load(text)

    def run_workflow(self) -> subprocess.CompletedProcess[str]:
        """The committed workflow's steps, run as GitHub's runner runs them (`shell: bash`), with the
        secrets GitHub holds."""
        return run_workflow(self.github.model, APP, self.workflow())

    def ssh(self, user: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The ssh client as the workflow uses it: this key only, the pinned host key, no prompts."""
        with tempfile.TemporaryDirectory() as home:
            key_file = Path(home) / "key"
            key_file.write_text(key)
            key_file.chmod(0o600)
            known = Path(home) / "known_hosts"
            known.write_text(self.secret("SSH_KNOWN_HOSTS") + "\n")
            options = ["IdentitiesOnly=yes", "BatchMode=yes", "StrictHostKeyChecking=yes",
                       f"UserKnownHostsFile={known}", "ConnectTimeout=10"]  # fmt: skip
            target = f"{user}@{self.secret('SSH_HOST')}"
            return subprocess.run(
                ["ssh", "-i", str(key_file), *(f"-o{option}" for option in options), target, *args],
                text=True, capture_output=True, timeout=300,
            )  # fmt: skip

    def ci_ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        """What the workflow does, with another command: ssh with the CI secrets GitHub holds."""
        return self.ssh(self.secret("SSH_USERNAME"), self.secret("SSH_KEY"), command)

    def shown_secrets(self) -> dict[str, Any]:
        """The stack's state with its secrets decrypted (`stack export --show-secrets`, as the user
        with the passphrase sees it)."""
        return json.loads(self.stack.cli("stack", "export", "--show-secrets").stdout)

    def outputs_of(self, name: str, type_: str | None = None) -> dict[str, Any]:
        """A resource's outputs in the state, secrets decrypted, by its name (and type)."""
        (resource,) = [
            r
            for r in self.shown_secrets()["deployment"]["resources"]
            if r["urn"].rsplit("::", 1)[-1] == name and type_ in (None, r["type"])
        ]
        return _plain(resource.get("outputs", {}))

    def remove(self) -> None:
        """`pulumi destroy`, then the stand-ins stop: the server goes through the API, as a user's would."""
        try:
            self.stack.destroy(echo=None)
        finally:
            self.hetzner.stop()
            self.github.stop()


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as True; GitHub reads it as "on".
    on = workflow.get("on", workflow.get(True))
    return {on: None} if isinstance(on, str) else {event: None for event in on} if isinstance(on, list) else on or {}


def workflows_run_by_push(github: GitHubModel, repo: str, branch: str) -> dict[str, dict[str, Any]]:
    """What GitHub starts for a push to `branch`: every workflow in the pushed commit's tree
    (.github/workflows/*.yml) with a push trigger for that branch (exact names; the program writes
    no patterns). Path -> workflow."""
    started = {}
    for path, text in sorted(github.branch_files(repo, branch).items()):
        if not (path.startswith(".github/workflows/") and path.endswith((".yml", ".yaml"))):
            continue
        workflow = yaml.safe_load(text)
        triggers = _triggers(workflow)
        if "push" not in triggers:
            continue
        branches = (triggers["push"] or {}).get("branches")
        if branches is None or branch in branches:
            started[path] = workflow
    return started


def run_workflow(github: GitHubModel, repo: str, workflow: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """A workflow's deploy job, its steps run as GitHub's runner runs them (`shell: bash`), with the
    secrets GitHub gives the job: the environment's when the job names one, else the repository's."""
    assert workflow["defaults"]["run"]["shell"] == "bash", "the steps' shell is not pinned to bash"
    job = workflow["jobs"]["deploy"]
    environment = job.get("environment")
    environment = environment.get("name") if isinstance(environment, dict) else environment
    result = None
    with tempfile.TemporaryDirectory() as home:
        for step in job["steps"]:
            env = {"HOME": home, "PATH": os.environ["PATH"]}
            for key, expression in step.get("env", {}).items():
                name = re.fullmatch(r"\$\{\{ secrets\.(\w+) \}\}", expression).group(1)  # type: ignore[union-attr]
                env[key] = github.secret_plaintext(repo, name, environment=environment)
            script = Path(home) / "step.sh"
            script.write_text(step["run"])
            result = subprocess.run([*GITHUB_BASH, str(script)], env=env, text=True, capture_output=True, timeout=300)
            if result.returncode != 0:
                return result
    assert result is not None
    return result


def _plain(value: Any) -> Any:
    """State values with Pulumi's secret envelopes (as --show-secrets prints them) opened."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":
            plaintext = value.get("plaintext")
            return _plain(json.loads(plaintext)) if isinstance(plaintext, str) else _plain(value.get("value"))
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def deploy_site(
    lab: Lab,
    cafile: Path,
    *,
    repo: str = APP,
    fixture: str = "blog-uv",
    on_server: Callable[[Server], object] | None = None,
    **settings: str,
) -> Deployed:
    """`pulumi up` of a new stack for FIXTURES/fixture, pushed to the lab's forge as `repo`.
    Settings without a namespace are django-vps's; `on_server` gets the lab server the moment the
    Hetzner stand-in has booted it (while the program provisions it)."""
    forge = lab.forge()
    forge.create_repo(repo, FIXTURES / fixture)
    hetzner = lab.hetzner_api()
    hetzner.cloud.create_zone({"name": DOMAIN, "mode": "primary"})  # the user's zone at Hetzner
    github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=(APP,))
    config = {
        "django-vps:domain": DOMAIN,
        "django-vps:repository": f"{OWNER}/{APP}",
        "django-vps:cloneUrl": forge.url(repo),
        "django-vps:cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
        "django-vps:letsencryptEmail": "admin@blog.test",
        "django-vps:acmeServer": lab.acme_directory,
        "hcloud:endpoint": hetzner.url,
        "hcloud:token": HCLOUD_TOKEN,
        "github:baseUrl": github.url,
        "github:token": GITHUB_TOKEN,
        **{key if ":" in key else f"django-vps:{key}": value for key, value in settings.items()},
    }
    stack = CliStack(Path(tempfile.mkdtemp(prefix=f"stack-{repo}-", dir=lab.run_dir)))
    stack.configure(config)
    watcher = _ServerWatcher(lab, on_server) if on_server else None
    started = time.monotonic()
    try:
        first = stack.up()
    finally:
        if watcher:
            watcher.done.set()
            watcher.join()
    converge = time.monotonic() - started
    cafile.write_text(lab.acme_ca_pem())
    site = Deployed(lab, stack, hetzner, github, config, first, converge, str(cafile), dict(first.outputs))
    assert site.settings.domain == DOMAIN
    figure(
        f"\nconverge on the real CLI (bare API to HTTPS, Hetzner mode, {config.get('django-vps:image', 'debian-12')}):"
        f" {converge:.1f} s"
    )
    assert hetzner.unknown == [] and github.model.unknown_requests == [], (hetzner.unknown, github.model)
    return site


class _ServerWatcher(threading.Thread):
    """Calls back with the first lab server that appears (the Hetzner stand-in boots it)."""

    def __init__(self, lab: Lab, callback: Callable[[Server], object]) -> None:
        super().__init__(daemon=True)
        self.lab, self.callback = lab, callback
        self.known = set(lab.servers)
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.is_set():
            new = [server for name, server in list(self.lab.servers.items()) if name not in self.known]
            if new and new[0].pid1:
                self.callback(new[0])
                return
            time.sleep(0.05)
