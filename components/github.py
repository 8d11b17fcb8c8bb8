"""GitHub: the CI key and the Actions secrets the deploy workflow uses, the read-only deploy key the
server clones with, and the workflow file itself.

Several stacks may deploy from one repository (prod from main, staging from staging): each stack
owns only its own things there, so none overwrites or deletes another's. Its GitHub Environment is
named after the stack and holds the stack's secrets (environment secrets, which a job sees only when
it names the environment); its workflow file is `.github/workflows/deploy-<stack>.yml`, committed to
the stack's branch, triggered by a push to that branch and naming the stack's environment.

Resource types and inputs as pulumi-github 6.15.0 declares them (its Python SDK,
pulumi_github/repository_environment.py, actions_environment_secret.py), bridged from
terraform-provider-github's github/resource_github_repository_environment.go (environment ForceNew;
PUT and GET /repos/{owner}/{repo}/environments/{name}, DELETE the same; can_admins_bypass defaults
to true) and github/resource_github_actions_environment_secret.go (environment and secret_name
ForceNew; go-github's ActionsService.{GetEnvPublicKey,CreateOrUpdateEnvSecret,GetEnvSecret,
DeleteEnvSecret}: /repositories/{repository_id}/environments/{name}/secrets/public-key and
.../secrets/{secret_name}, the value sealed with the environment's own public key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_github as github
import pulumi_tls as tls

# The seed's two secrets (PRODUCTION_SSH_HOST, PRODUCTION_SSH_KEY) plus what lets the workflow
# verify the server instead of trusting it; inside the stack's environment no prefix is needed.
SECRET_NAMES = ("SSH_HOST", "SSH_USERNAME", "SSH_KEY", "SSH_KNOWN_HOSTS")


@dataclass(frozen=True)
class GitHubArgs:
    """The repository and what the workflow must know about the server."""

    owner: str
    """Repository owner (user or organisation)."""
    repository: str
    """Repository name."""
    branch: str
    """The deployed branch (the workflow file is committed there)."""
    environment: str
    """The stack's GitHub Environment: its secrets live there."""
    workflow_path: str
    """The stack's own workflow file."""
    domain: str
    """For key titles."""
    ssh_host: pulumi.Output[str]
    """Address the workflow connects to."""
    ssh_user: str
    """The app user the CI key logs in as."""
    host_key: pulumi.Output[str]
    """The server's pinned host key, "type base64"."""
    token: pulumi.Output[str] | None
    """Secret: the GitHub token (None: GITHUB_TOKEN from the environment)."""
    base_url: str | None = None
    """GitHub Enterprise Server's API URL (None: the SDK's default)."""


class GitHubAccess(pulumi.ComponentResource):
    """Keys and secrets on GitHub for clone and deploy."""

    ci_public_key: pulumi.Output[str]
    """Goes into the app user's authorized_keys."""
    deploy_private_key: pulumi.Output[str]
    """Secret: the server clones with it."""
    deploy_key: github.RepositoryDeployKey
    """Must exist before the first clone."""
    environment: github.RepositoryEnvironment
    """The stack's GitHub Environment."""
    secrets: list[github.ActionsEnvironmentSecret]
    """The environment's secrets: the workflow's first run needs them."""
    secret_names: list[str]

    def __init__(self, name: str, args: GitHubArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("django-vps:github:GitHubAccess", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        provider = github.Provider(
            f"{name}-provider", owner=args.owner, token=args.token, base_url=args.base_url, opts=child
        )
        on_github = pulumi.ResourceOptions(parent=self, provider=provider)
        self._provider = provider
        self._args = args

        ci_key = tls.PrivateKey(f"{name}-ci-key", algorithm="ED25519", opts=child)
        deploy_key = tls.PrivateKey(f"{name}-deploy-key", algorithm="ED25519", opts=child)
        self.deploy_key = github.RepositoryDeployKey(
            f"{name}-deploy-key",
            repository=args.repository,
            title=f"django-vps {args.domain} (read-only clone)",
            key=deploy_key.public_key_openssh.apply(str.strip),
            read_only=True,
            opts=on_github,
        )
        # The environment's name is the stack's; GitHub makes an environment a job names on its own
        # too, but only one made here is the stack's to delete (and holds its secrets).
        self.environment = github.RepositoryEnvironment(
            f"{name}-environment",
            repository=args.repository,
            environment=args.environment,
            opts=on_github,
        )
        values: dict[str, pulumi.Input[str]] = {
            "SSH_HOST": args.ssh_host,
            "SSH_USERNAME": args.ssh_user,
            "SSH_KEY": ci_key.private_key_openssh,
            "SSH_KNOWN_HOSTS": pulumi.Output.concat(args.ssh_host, " ", args.host_key),
        }
        self.secrets = [
            github.ActionsEnvironmentSecret(
                f"{name}-{secret_name.lower().replace('_', '-')}",
                repository=args.repository,
                # From the environment resource: each secret waits for its environment, and goes first.
                environment=self.environment.environment,
                secret_name=secret_name,
                value=pulumi.Output.secret(values[secret_name]),
                opts=on_github,
            )
            for secret_name in SECRET_NAMES
        ]
        self.ci_public_key = ci_key.public_key_openssh.apply(str.strip)
        self.deploy_private_key = pulumi.Output.secret(deploy_key.private_key_openssh)
        self.secret_names = list(SECRET_NAMES)
        self.register_outputs(
            {"ciPublicKey": self.ci_public_key, "environment": args.environment, "secretNames": self.secret_names}
        )

    def commit_workflow(self, content: str, after: Sequence[pulumi.Resource]) -> github.RepositoryFile:
        """Commit the stack's deploy workflow to its branch. The commit is a push, so the workflow's
        first deploy starts at once: `after` holds what must be done on the server before (it
        serving); the environment's secrets are waited for here."""
        return github.RepositoryFile(
            f"{self._name}-workflow",
            repository=self._args.repository,
            branch=self._args.branch,
            file=self._args.workflow_path,
            content=content,
            commit_message="Deploy with django-vps on push",
            overwrite_on_create=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=[*after, *self.secrets]),
        )
