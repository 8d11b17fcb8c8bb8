"""The GitHub side through the real engine: the real Pulumi CLI runs a small pulumi_github program
(an explicit provider, as components/github.py makes one) through the stand-in plugin
(tests/e2e/providers/github.py) against the GitHub API stand-in (tests/e2e/testhost/github_api.py).

Checked through the stand-in's own state: the deploy key is read-only, the Actions secrets open to
the plaintexts a workflow would get, the workflow file holds the content; the state keeps neither
the secrets nor the token in the clear; a second up changes nothing; a new secret value and an
edited workflow are updates; a new title replaces the key, deleting the old one first; a key deleted
behind Pulumi's back is drift for refresh; destroy leaves nothing; a wrong token fails with GitHub's
401. Every request the provider made is one the stand-in knows.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_github as github
import pytest
from pulumi import automation as auto

from tests.e2e.cli import tools_bin
from tests.e2e.providers import install
from tests.e2e.testhost import Lab
from tests.e2e.testhost.github_api import DOCS, DeployKeyEvent, GitHubAPI, GitHubModel
from tests.support.keys import new_ed25519

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OWNER = "sdelquin"
REPO = "blog"
WORKFLOW_PATH = ".github/workflows/deploy.yml"
WORKFLOW = "name: Deploy\non:\n  push:\n    branches: [main]\njobs: {}\n"


@dataclass
class Desired:
    """What the program declares; tests edit it between runs."""

    base_url: str
    token: str
    key: str = field(default_factory=lambda: new_ed25519().public)
    title: str = "django-vps blog.example (read-only clone)"
    secrets: dict[str, str] = field(
        default_factory=lambda: {
            "PRODUCTION_SSH_HOST": f"host-{secrets.token_hex(8)}",
            "PRODUCTION_SSH_KEY": f"key-{secrets.token_hex(16)}",
        }
    )
    workflow: str = WORKFLOW


def program(desired: Desired) -> Callable[[], None]:
    def run() -> None:
        provider = github.Provider(
            "github",
            base_url=desired.base_url,
            owner=OWNER,
            token=pulumi.Output.secret(desired.token),
            write_delay_ms=1,  # upstream's default is 1000 between writes; nothing to spare here
        )
        on_github = pulumi.ResourceOptions(provider=provider)
        github.RepositoryDeployKey(
            "deploy-key", repository=REPO, title=desired.title, key=desired.key, read_only=True, opts=on_github
        )
        for name, value in desired.secrets.items():
            github.ActionsSecret(
                name.lower(), repository=REPO, secret_name=name, value=pulumi.Output.secret(value), opts=on_github
            )
        github.RepositoryFile(
            "workflow",
            repository=REPO,
            branch="main",
            file=WORKFLOW_PATH,
            content=desired.workflow,
            commit_message="Deploy with django-vps on push",
            overwrite_on_create=True,
            opts=on_github,
        )

    return run


@dataclass
class Run:
    changes: dict[str, int]
    ops: dict[str, list[str]]
    """Resource name -> the engine's steps on it, in order."""


class Stack:
    def __init__(
        self,
        directory: Path,
        desired: Desired | None = None,
        name: str = "test",
        run: Callable[[], None] | None = None,
    ) -> None:
        home, state = directory / "home", directory / "state"
        for path in (home, state):
            path.mkdir(parents=True, exist_ok=True)
        install(home)
        self.env = {
            "PULUMI_BACKEND_URL": f"file://{state}",
            "PULUMI_CONFIG_PASSPHRASE": "test passphrase",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_HOME": str(home),
            "PATH": f"{tools_bin()}:{ROOT / '.venv/bin'}:{os.environ['PATH']}",
        }
        self.directory = directory
        self.stack = auto.create_or_select_stack(
            name,
            "github-standin",
            run or program(desired),  # type: ignore[arg-type]
            opts=auto.LocalWorkspaceOptions(
                work_dir=str(directory),
                pulumi_home=str(home),
                env_vars=self.env,
                pulumi_command=auto.PulumiCommand(str(tools_bin().parent), skip_version_check=True),
            ),
        )

    def _run(self, operation: Callable[..., Any]) -> Run:
        ops: dict[str, list[str]] = {}

        def on_event(event: auto.events.EngineEvent) -> None:
            step = event.resource_pre_event
            if step is not None and step.metadata is not None:
                ops.setdefault(step.metadata.urn.rsplit("::", 1)[-1], []).append(step.metadata.op.value)

        result = operation(on_output=print, on_event=on_event, color="never")
        return Run(dict(result.summary.resource_changes or {}), ops)

    def up(self) -> Run:
        return self._run(self.stack.up)

    def refresh(self) -> Run:
        return self._run(self.stack.refresh)

    def destroy(self) -> Run:
        return self._run(self.stack.destroy)

    def export_text(self) -> str:
        """`pulumi stack export`, plain (no --show-secrets), as the CLI prints it."""
        export = subprocess.run(
            [tools_bin() / "pulumi", "stack", "export", "--stack", self.stack.name, "--non-interactive"],
            cwd=self.directory,
            env={**os.environ, **self.env},
            text=True,
            capture_output=True,
            check=True,
        )
        return export.stdout


@dataclass
class GitHub:
    model: GitHubModel
    api: GitHubAPI
    events: list[DeployKeyEvent]
    """What the deploy key hook was told, in order."""


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHub]:
    """The stand-in with one repository, served for one test; at the end, every request it got
    must have been one it serves."""
    for name in ("GITHUB_TOKEN", "GITHUB_OWNER", "GITHUB_BASE_URL", "GITHUB_ORGANIZATION", "GITHUB_LEGACY_CLIENT"):
        monkeypatch.delenv(name, raising=False)  # upstream reads them; GITHUB_OWNER even beats `owner`
    events: list[DeployKeyEvent] = []
    model = GitHubModel(OWNER, f"ghp_{secrets.token_hex(18)}", on_deploy_key=events.append)
    model.create_repository(REPO)
    with GitHubAPI(model) as api:
        yield GitHub(model, api, events)
    assert model.unknown_requests == [], "requests the stand-in does not serve"
    assert model.server_errors == []


def test_lifecycle(tmp_path: Path, gh: GitHub) -> None:
    model, events = gh.model, gh.events
    desired = Desired(gh.api.url, model.token)
    stack = Stack(tmp_path, desired)

    first = stack.up()
    assert first.changes == {"create": 6}  # stack, provider, key, two secrets, file
    (key,) = model.deploy_keys(REPO)
    assert key.read_only and key.title == desired.title and key.key == desired.key
    assert events == [DeployKeyEvent(True, REPO, desired.key, desired.title, True)]
    for name, value in desired.secrets.items():
        assert model.secret_plaintext(REPO, name) == value
    assert model.file_text(REPO, WORKFLOW_PATH) == WORKFLOW
    # One POST (the key) and three PUTs (two secrets, the file), in whatever order: the engine creates
    # the four at once (nothing orders them), and on a loaded machine a PUT was seen first.
    assert sorted(method for method, _, _ in model.requests if method != "GET") == ["POST", "PUT", "PUT", "PUT"]

    exported = stack.export_text()
    resources = json.loads(exported)["deployment"]["resources"]
    values = [r["outputs"]["value"] for r in resources if r["type"] == "github:index/actionsSecret:ActionsSecret"]
    assert len(values) == 2 and all("ciphertext" in value for value in values)
    for plaintext in [*desired.secrets.values(), model.token]:
        assert plaintext not in exported

    second = stack.up()
    assert second.changes == {"same": 6}

    desired.secrets["PRODUCTION_SSH_KEY"] = f"key-{secrets.token_hex(16)}"
    changed = stack.up()
    assert changed.changes == {"same": 5, "update": 1}
    assert changed.ops["production_ssh_key"] == ["update"]
    assert model.secret_plaintext(REPO, "PRODUCTION_SSH_KEY") == desired.secrets["PRODUCTION_SSH_KEY"]
    assert model.secret_names(REPO) == sorted(desired.secrets)

    desired.workflow += "# edited\n"
    edited = stack.up()
    assert edited.changes == {"same": 5, "update": 1}
    assert edited.ops["workflow"] == ["update"]
    assert model.file_text(REPO, WORKFLOW_PATH) == desired.workflow

    # A new title replaces the key; GitHub takes a key once, so the old one must go first.
    desired.title = "django-vps www.blog.example (read-only clone)"
    retitled = stack.up()
    assert retitled.changes == {"same": 5, "replace": 1}
    assert retitled.ops["deploy-key"] == ["delete-replaced", "replace", "create-replacement"]
    (key,) = model.deploy_keys(REPO)
    assert key.title == desired.title
    assert [e.added for e in events] == [True, False, True]

    model.remove_deploy_key(REPO, key.id)  # behind Pulumi's back
    drift = stack.refresh()
    assert drift.changes.get("delete") == 1, drift.changes
    healed = stack.up()
    assert healed.changes == {"same": 5, "create": 1}
    assert len(model.deploy_keys(REPO)) == 1

    gone = stack.destroy()
    assert gone.changes == {"delete": 6}
    assert model.managed(REPO) == {"keys": [], "secrets": [], "environments": {}, "files": []}
    assert model.file_text(REPO, WORKFLOW_PATH) is None
    assert events[-1].added is False


@dataclass
class StackOnGitHub:
    """What one stack of django-vps declares on a shared repository: its environment, its secrets
    there and its workflow file on its branch (components/github.py's shape, without the rest)."""

    base_url: str
    token: str
    environment: str
    branch: str
    secrets: dict[str, str] = field(
        default_factory=lambda: {"SSH_HOST": f"host-{secrets.token_hex(8)}", "SSH_KEY": f"key-{secrets.token_hex(16)}"}
    )

    @property
    def path(self) -> str:
        return f".github/workflows/deploy-{self.environment}.yml"

    def program(self) -> None:
        provider = github.Provider(
            "github", base_url=self.base_url, owner=OWNER, token=pulumi.Output.secret(self.token), write_delay_ms=1
        )
        on_github = pulumi.ResourceOptions(provider=provider)
        environment = github.RepositoryEnvironment(
            "environment", repository=REPO, environment=self.environment, opts=on_github
        )
        for name, value in self.secrets.items():
            github.ActionsEnvironmentSecret(
                name.lower(),
                repository=REPO,
                environment=environment.environment,
                secret_name=name,
                value=pulumi.Output.secret(value),
                opts=on_github,
            )
        github.RepositoryFile(
            "workflow",
            repository=REPO,
            branch=self.branch,
            file=self.path,
            content=f"name: Deploy {self.environment}\non:\n  push:\n    branches: [{self.branch}]\njobs: {{}}\n",
            commit_message="Deploy with django-vps on push",
            overwrite_on_create=True,
            opts=on_github,
        )


def test_two_stacks_each_with_its_environment_on_one_repository(tmp_path: Path, gh: GitHub) -> None:
    """prod and staging on one repository through the real engine: environments, environment secrets
    sealed with each environment's own key (GitHub's /repositories/{id}/environments/... calls, as
    go-github makes them), no drift, an update, an environment deleted behind Pulumi's back, and the
    destroy of one stack leaving the other's environment, secrets and file as they were."""
    model = gh.model
    model.create_branch(REPO, "staging")
    repo_id = model.repositories[REPO].id
    prod = StackOnGitHub(gh.api.url, model.token, "prod", "main")
    staging = StackOnGitHub(gh.api.url, model.token, "staging", "staging")
    prod_stack = Stack(tmp_path, name="prod", run=prod.program)
    staging_stack = Stack(tmp_path, name="staging", run=staging.program)

    assert prod_stack.up().changes == {"create": 6}  # stack, provider, environment, two secrets, file
    writes = [(m, p) for m, p, _ in model.requests if m != "GET"]
    # The environment before its secrets (they depend on it); the workflow file, which does not, may
    # come at any point: the engine creates what nothing orders at once.
    made = writes.index(("PUT", f"/api/v3/repos/{OWNER}/{REPO}/environments/prod"))
    assert made < writes.index(("PUT", f"/api/v3/repositories/{repo_id}/environments/prod/secrets/SSH_KEY"))
    assert ("GET", f"/api/v3/repositories/{repo_id}/environments/prod/secrets/public-key", 200) in model.requests
    assert staging_stack.up().changes == {"create": 6}
    assert model.environment_secrets(REPO) == {"prod": ["SSH_HOST", "SSH_KEY"], "staging": ["SSH_HOST", "SSH_KEY"]}
    assert model.secret_names(REPO) == []  # no repository secret: nothing is shared
    for stack in (prod, staging):
        for name, value in stack.secrets.items():
            assert model.secret_plaintext(REPO, name, environment=stack.environment) == value
        assert model.file_text(REPO, stack.path, stack.branch) is not None
    assert model.file_text(REPO, staging.path, "main") is None  # staging's file is on staging only
    env_keys = {
        r["outputs"]["environment"]: r["outputs"]["keyId"]
        for r in json.loads(prod_stack.export_text())["deployment"]["resources"]
        + json.loads(staging_stack.export_text())["deployment"]["resources"]
        if r["type"] == "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
    }
    assert len(set(env_keys.values())) == 2, "each environment seals with its own key"
    exported = prod_stack.export_text()
    for plaintext in [*prod.secrets.values(), model.token]:
        assert plaintext not in exported

    assert prod_stack.up().changes == {"same": 6}
    assert set(prod_stack.refresh().changes) == {"same"}
    staging.secrets["SSH_HOST"] = f"host-{secrets.token_hex(8)}"
    changed = staging_stack.up()
    assert changed.changes == {"same": 5, "update": 1} and changed.ops["ssh_host"] == ["update"]
    assert model.secret_plaintext(REPO, "SSH_HOST", environment="staging") == staging.secrets["SSH_HOST"]

    model.delete_environment(model.repositories[REPO], "staging")  # behind Pulumi's back: its secrets go too
    drift = staging_stack.refresh()
    assert drift.changes.get("delete") == 3, drift.changes
    assert staging_stack.up().changes == {"same": 3, "create": 3}
    assert model.environment_secrets(REPO)["staging"] == ["SSH_HOST", "SSH_KEY"]

    prod_secrets = {name: model.secret_plaintext(REPO, name, environment="prod") for name in prod.secrets}
    prod_file = model.file_text(REPO, prod.path, "main")
    assert staging_stack.destroy().changes == {"delete": 6}
    assert model.managed(REPO) == {
        "keys": [],
        "secrets": [],
        "environments": {"prod": ["SSH_HOST", "SSH_KEY"]},
        "files": [prod.path],
    }
    assert {name: model.secret_plaintext(REPO, name, environment="prod") for name in prod.secrets} == prod_secrets
    assert model.file_text(REPO, prod.path, "main") == prod_file
    assert prod_stack.up().changes == {"same": 6}
    assert prod_stack.destroy().changes == {"delete": 6}
    assert model.managed(REPO) == {"keys": [], "secrets": [], "environments": {}, "files": []}


def test_a_stack_made_before_environments_moves_to_its_own(tmp_path: Path, gh: GitHub) -> None:
    """The upgrade the README describes, through the real engine: the old shape (repository secrets
    PRODUCTION_SSH_*, deploy.yml) then the new one (environment, its secrets, deploy-<stack>.yml under
    the same resource name) in the same stack: the environment and secrets are created, the file is
    replaced (new one first), and the old secrets and file are deleted last."""
    model = gh.model
    legacy = Desired(gh.api.url, model.token)
    old = Stack(tmp_path, legacy, name="prod")
    assert old.up().changes == {"create": 6}
    assert model.secret_names(REPO) == sorted(legacy.secrets)

    now = StackOnGitHub(gh.api.url, model.token, "prod", "main")

    moved = Stack(tmp_path, name="prod", run=_upgraded_program(legacy, now)).up()
    assert moved.ops["workflow"] == ["create-replacement", "replace", "delete-replaced"], moved.ops
    assert moved.ops["production_ssh_host"] == ["delete"] and moved.ops["production_ssh_key"] == ["delete"]
    assert moved.ops["environment"] == ["create"]
    # Deletes come last: the new file was committed while the old secrets still existed.
    writes = [(method, path) for method, path, _ in model.requests if method != "GET"]
    new_file = writes.index(("PUT", f"/api/v3/repos/{OWNER}/{REPO}/contents/{now.path}"))
    old_secret = writes.index(("DELETE", f"/api/v3/repos/{OWNER}/{REPO}/actions/secrets/PRODUCTION_SSH_KEY"))
    assert new_file < old_secret
    assert model.managed(REPO) == {
        "keys": [legacy.title],
        "secrets": [],
        "environments": {"prod": ["SSH_HOST", "SSH_KEY"]},
        "files": [now.path],
    }


def _upgraded_program(legacy: Desired, now: StackOnGitHub) -> Callable[[], None]:
    """The new shape of `program(legacy)`: the same provider and deploy key, the environment and its
    secrets instead of repository secrets, the stack's file under the same resource name."""

    def run() -> None:
        provider = github.Provider(
            "github", base_url=legacy.base_url, owner=OWNER, token=pulumi.Output.secret(legacy.token), write_delay_ms=1
        )
        on_github = pulumi.ResourceOptions(provider=provider)
        github.RepositoryDeployKey(
            "deploy-key", repository=REPO, title=legacy.title, key=legacy.key, read_only=True, opts=on_github
        )
        environment = github.RepositoryEnvironment(
            "environment", repository=REPO, environment=now.environment, opts=on_github
        )
        secrets_ = [
            github.ActionsEnvironmentSecret(
                name.lower(),
                repository=REPO,
                environment=environment.environment,
                secret_name=name,
                value=pulumi.Output.secret(value),
                opts=on_github,
            )
            for name, value in now.secrets.items()
        ]
        github.RepositoryFile(
            "workflow",
            repository=REPO,
            branch="main",
            file=now.path,
            content=legacy.workflow,
            commit_message="Deploy with django-vps on push",
            overwrite_on_create=True,
            opts=pulumi.ResourceOptions(provider=provider, depends_on=secrets_),
        )

    return run


def test_wrong_token(tmp_path: Path, gh: GitHub) -> None:
    stack = Stack(tmp_path, Desired(gh.api.url, "ghp_wrong"))
    with pytest.raises(auto.errors.CommandError) as failed:
        stack.up()
    assert "401 Bad credentials" in str(failed.value)
    assert gh.model.managed(REPO) == {"keys": [], "secrets": [], "environments": {}, "files": []}
    assert {status for _, _, status in gh.model.requests} == {401}
    assert gh.events == []


def _call(
    url: str, method: str = "GET", token: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"token {token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_standin_answers_like_github(gh: GitHub) -> None:
    """Without the engine: GitHub's 401s, and an endpoint it does not serve is a recorded 404."""
    repo = f"{gh.api.url}api/v3/repos/{OWNER}/{REPO}"
    assert _call(repo, token=gh.model.token)[0] == 200
    assert _call(repo)[:2] == (401, {"message": "Requires authentication", "documentation_url": DOCS, "status": "401"})
    assert _call(repo, token="nope")[1]["message"] == "Bad credentials"
    assert _call(f"{gh.api.url}api/v3/orgs/{OWNER}", token=gh.model.token)[1]["message"] == "Not Found"  # a user
    status, body = _call(f"{repo}/hooks", method="POST", token=gh.model.token)
    assert (status, body["message"]) == (404, "Not Found")
    assert gh.model.unknown_requests == [f"POST /api/v3/repos/{OWNER}/{REPO}/hooks"]
    gh.model.unknown_requests.clear()  # seen: the fixture checks the list is empty otherwise


def test_lab_authorizes_deploy_keys_on_the_forge(lab: Lab, tmp_path: Path) -> None:
    """Lab.github_api: a deploy key added through the API fetches from the lab's forge, read-only,
    and stops working once removed."""
    token = f"ghp_{secrets.token_hex(18)}"
    api = lab.github_api(OWNER, token, (REPO,))
    try:
        forge = lab.forge()
        (tmp_path / "src").mkdir()
        (tmp_path / "src/README").write_text("hello\n")
        url = forge.create_repo("github-api-keys", tmp_path / "src")
        pair = new_ed25519()
        identity = tmp_path / "id_ed25519"
        identity.write_text(pair.private_openssh)
        identity.chmod(0o600)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"{forge.ip} {forge.host_public_key()}\n")
        ssh = f"ssh -i {identity} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={known_hosts}"

        def git(*args: str) -> subprocess.CompletedProcess[str]:
            env = {
                **os.environ,
                "GIT_SSH_COMMAND": ssh,
                "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@t",
                "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t",
            }
            return subprocess.run(["git", *args], env=env, capture_output=True, text=True, timeout=60)

        assert git("ls-remote", url).returncode != 0  # not a deploy key yet
        keys = f"{api.url}api/v3/repos/{OWNER}/{REPO}/keys"
        status, key = _call(keys, "POST", token, {"key": pair.public, "title": "lab", "read_only": True})
        assert status == 201
        assert git("clone", "-q", url, str(tmp_path / "clone")).returncode == 0
        pushed = git("-C", str(tmp_path / "clone"), "push", "-q", "origin", "HEAD:refs/heads/x")
        assert pushed.returncode != 0 and "read-only" in pushed.stderr
        assert _call(f"{keys}/{key['id']}", "DELETE", token)[0] == 204
        assert git("ls-remote", url).returncode != 0
        assert api.model.unknown_requests == [] and api.model.server_errors == []
    finally:
        api.stop()
