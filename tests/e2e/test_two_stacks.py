"""Two stacks on one repository (issue 15.4) on the real Pulumi CLI: `prod` deploys branch main to
one lab server, `staging` deploys branch staging to another (existing-host mode, the user's own DNS),
both from one forge repository and one GitHub repository. Each stack's things on GitHub are its own:
its GitHub Environment (named after the stack) with its SSH_* secrets, and its workflow file on its
branch. A push to a branch starts, as GitHub does, every workflow in the pushed commit's tree whose
push trigger names that branch: only that stack's, so only its server gets the commit. `pulumi
destroy` of staging leaves prod's environment, secrets and workflow as they were, prod serving, and a
push to main still deploys prod.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e import web
from tests.e2e.cli import CliStack
from tests.e2e.site import FIXTURES, run_workflow, workflows_run_by_push
from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.github_api import GitHubAPI
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

APP = "blog"
OWNER = "example"
GITHUB_TOKEN = "ghp_" + "two-stacks" * 4
SECRETS = ["SSH_HOST", "SSH_KEY", "SSH_KNOWN_HOSTS", "SSH_USERNAME"]


@dataclass
class Deployment:
    name: str
    """The stack's name, and so its GitHub Environment's."""
    branch: str
    domain: str
    ip: str
    server: Server
    stack: CliStack
    converge_seconds: float = 0.0
    deploy_seconds: list[float] = field(default_factory=list)

    @property
    def workflow_path(self) -> str:
        return f".github/workflows/deploy-{self.name}.yml"

    def live_revision(self) -> str:
        return self.server.run(f"cat /home/{APP}/{APP}/current/REVISION", check=True).stdout.strip()


@dataclass
class Lab2:
    lab: Lab
    github: GitHubAPI
    prod: Deployment
    staging: Deployment
    cafile: str

    def https(self, d: Deployment, path: str = "/") -> web.Response:
        return web.get(d.ip, d.domain, path, cafile=self.cafile)

    def push(self, branch: str, heading: str) -> tuple[str, dict[str, str]]:
        """A commit pushed to `branch` (changing the page's heading), then what GitHub runs for that
        push, run as its runner would: the new commit and, by workflow file, the deploy's output."""
        forge = self.lab.forge()
        views = (FIXTURES / "blog-uv/posts/views.py").read_text().replace("<h1>blog</h1>", f"<h1>{heading}</h1>")
        commit = forge.push_commit(APP, {"posts/views.py": views}, heading, branch=branch)
        started = workflows_run_by_push(self.github.model, APP, branch)
        outputs = {}
        for path, workflow in started.items():
            deployment = next(d for d in (self.prod, self.staging) if d.workflow_path == path)
            began = time.monotonic()
            result = run_workflow(self.github.model, APP, workflow)
            deployment.deploy_seconds.append(time.monotonic() - began)
            assert result.returncode == 0, f"{path}: {result.stdout}{result.stderr}"
            outputs[path] = result.stdout
        return commit, outputs


def _configure(d: Deployment, lab: Lab, github: GitHubAPI, login_key: str) -> None:
    forge = lab.forge()
    d.stack.configure(
        {
            "domain": d.domain,
            "branch": d.branch,
            "repository": f"{OWNER}/{APP}",
            "cloneUrl": forge.url(APP),
            "cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
            "letsencryptEmail": "admin@blog.test",
            "acmeServer": lab.acme_directory,
            "manageDns": "false",
            "existingHost": d.ip,
            "existingHostUser": "admin",
            "existingHostKey": d.server.host_public_key(),
            "existingHostPrivateKey": login_key,
            "github:token": GITHUB_TOKEN,
            "github:baseUrl": github.url,
        }
    )


def _up(d: Deployment) -> None:
    began = time.monotonic()
    run = d.stack.up(echo=None)
    d.converge_seconds = time.monotonic() - began
    assert run.changes.get("create", 0) > 20, run.changes
    figure(f"converge of the {d.name} stack on the real CLI (existing host): {d.converge_seconds:.1f} s")


@pytest.fixture(scope="module")
def two(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab2]:
    forge = lab.forge()
    forge.create_repo(APP, FIXTURES / "blog-uv")
    github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=(APP,))
    directory = tmp_path_factory.mktemp("two-stacks")  # one project, two stacks, one state backend
    servers = {
        name: lab.server(f"two{name[:5]}", ip) for name, ip in (("prod", "198.51.100.6"), ("staging", "198.51.100.7"))
    }
    try:
        prod = Deployment(
            "prod", "main", "blog.test", "198.51.100.6", servers["prod"], CliStack(directory, stack="prod")
        )
        staging = Deployment(
            "staging",
            "staging",
            "staging.blog.test",
            "198.51.100.7",
            servers["staging"],
            CliStack(directory, stack="staging"),
        )
        for d in (prod, staging):
            lab.set_a(d.domain, d.ip)  # the user's own DNS
            _configure(d, lab, github, d.server.add_sudo_login().private_openssh)
        _up(prod)
        # The user branches staging off main (which holds prod's workflow by now) and pushes it.
        forge.create_branch(APP, "staging")
        github.model.create_branch(APP, "staging")
        _up(staging)
        cafile = tmp_path_factory.mktemp("ca") / "root.pem"
        cafile.write_text(lab.acme_ca_pem())
        yield Lab2(lab, github, prod, staging, str(cafile))
    finally:
        github.stop()
        for name in servers:
            lab.remove(f"two{name[:5]}")


def test_each_stack_owns_its_environment_secrets_and_workflow(two: Lab2) -> None:
    model = two.github.model
    assert model.unknown_requests == [] and model.server_errors == []
    assert model.secret_names(APP) == [], "a repository secret would be every stack's"
    assert model.environment_secrets(APP) == {"prod": SECRETS, "staging": SECRETS}
    for d in (two.prod, two.staging):
        assert model.secret_plaintext(APP, "SSH_HOST", environment=d.name) == d.ip
        assert model.secret_plaintext(APP, "SSH_KNOWN_HOSTS", environment=d.name).startswith(f"{d.ip} ssh-ed25519 ")
        assert model.file_text(APP, d.workflow_path, d.branch) is not None
        assert two.https(d).status == 200
    assert model.secret_plaintext(APP, "SSH_KEY", environment="prod") != model.secret_plaintext(
        APP, "SSH_KEY", environment="staging"
    )
    # staging's file lives on staging; staging's tree also has prod's (it was branched off main).
    assert model.file_text(APP, two.staging.workflow_path, "main") is None
    assert model.file_text(APP, two.prod.workflow_path, "staging") is not None
    assert two.prod.stack.stack.outputs()["githubEnvironment"].value == "prod"


def test_a_push_to_each_branch_deploys_only_its_server(two: Lab2) -> None:
    forge = two.lab.forge()
    prod_before = two.prod.live_revision()
    assert prod_before == forge.head(APP, "main")

    commit, ran = two.push("staging", "blog staging v2")
    assert list(ran) == [two.staging.workflow_path], "a push to staging ran another stack's workflow"
    assert f"deployed {commit[:12]} of staging" in ran[two.staging.workflow_path]
    assert two.staging.live_revision() == commit
    web.wait_for(two.staging.ip, two.staging.domain, "/", "blog staging v2", cafile=two.cafile)
    assert two.prod.live_revision() == prod_before
    assert "blog staging v2" not in two.https(two.prod).body

    commit, ran = two.push("main", "blog prod v2")
    assert list(ran) == [two.prod.workflow_path], "a push to main ran another stack's workflow"
    assert two.prod.live_revision() == commit
    web.wait_for(two.prod.ip, two.prod.domain, "/", "blog prod v2", cafile=two.cafile)
    assert two.staging.live_revision() == forge.head(APP, "staging") != commit


def test_destroying_staging_leaves_prod_serving_and_deployable(two: Lab2) -> None:
    model = two.github.model
    prod_secrets = {name: model.secret_plaintext(APP, name, environment="prod") for name in SECRETS}
    prod_workflow = model.file_text(APP, two.prod.workflow_path, "main")
    keys_before = len(model.deploy_keys(APP))

    destroyed = two.staging.stack.destroy(echo=None)
    assert set(destroyed.changes) == {"delete"}, destroyed.changes
    assert model.environment_secrets(APP) == {"prod": SECRETS}
    assert {name: model.secret_plaintext(APP, name, environment="prod") for name in SECRETS} == prod_secrets
    assert model.file_text(APP, two.prod.workflow_path, "main") == prod_workflow
    assert model.file_text(APP, two.staging.workflow_path, "staging") is None
    assert len(model.deploy_keys(APP)) == keys_before - 1  # staging's read-only key only
    assert model.unknown_requests == [] and model.server_errors == []

    # prod serves, its stack sees nothing to do, and a push to main still deploys it.
    assert two.https(two.prod).status == 200
    assert set(two.prod.stack.preview(echo=None).changes) == {"same"}
    commit, ran = two.push("main", "blog prod v3")
    assert list(ran) == [two.prod.workflow_path]
    assert two.prod.live_revision() == commit
    web.wait_for(two.prod.ip, two.prod.domain, "/", "blog prod v3", cafile=two.cafile)
    # A push to staging now starts nothing: its workflow went with its stack.
    _, ran = two.push("staging", "blog staging v3")
    assert ran == {}

    figure(
        "\ntwo stacks on one repository (real CLI, existing hosts): converge prod"
        f" {two.prod.converge_seconds:.1f} s, staging {two.staging.converge_seconds:.1f} s; workflow deploys"
        f" prod {', '.join(f'{s:.1f}' for s in two.prod.deploy_seconds)} s,"
        f" staging {', '.join(f'{s:.1f}' for s in two.staging.deploy_seconds)} s"
    )
    destroyed = two.prod.stack.destroy(echo=None)
    assert set(destroyed.changes) == {"delete"}, destroyed.changes
    # What is left is git's, not a stack's: staging, branched off main, keeps its copy of prod's file
    # (it triggers on main only, and prod's environment and secrets are gone).
    assert model.managed(APP) == {
        "keys": [],
        "secrets": [],
        "environments": {},
        "files": [f"staging:{two.prod.workflow_path}"],
    }
