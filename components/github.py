"""GitHub: the CI key and the Actions secrets the deploy workflow uses, the read-only deploy key the
server clones with, and the workflow file itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_github as github
import pulumi_tls as tls

WORKFLOW_PATH = ".github/workflows/deploy.yml"
# The seed's two secrets plus what lets the workflow verify the server instead of trusting it.
SECRET_NAMES = ("PRODUCTION_SSH_HOST", "PRODUCTION_SSH_USERNAME", "PRODUCTION_SSH_KEY", "PRODUCTION_SSH_KNOWN_HOSTS")


@dataclass(frozen=True)
class GitHubArgs:
    """The repository and what the workflow must know about the server."""

    owner: str
    """Repository owner (user or organisation)."""
    repository: str
    """Repository name."""
    branch: str
    """The deployed branch (the workflow file is committed there)."""
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
        values: dict[str, pulumi.Input[str]] = {
            "PRODUCTION_SSH_HOST": args.ssh_host,
            "PRODUCTION_SSH_USERNAME": args.ssh_user,
            "PRODUCTION_SSH_KEY": ci_key.private_key_openssh,
            "PRODUCTION_SSH_KNOWN_HOSTS": pulumi.Output.concat(args.ssh_host, " ", args.host_key),
        }
        for secret_name in SECRET_NAMES:
            github.ActionsSecret(
                f"{name}-{secret_name.lower().replace('_', '-')}",
                repository=args.repository,
                secret_name=secret_name,
                value=pulumi.Output.secret(values[secret_name]),
                opts=on_github,
            )
        self.ci_public_key = ci_key.public_key_openssh.apply(str.strip)
        self.deploy_private_key = pulumi.Output.secret(deploy_key.private_key_openssh)
        self.secret_names = list(SECRET_NAMES)
        self.register_outputs({"ciPublicKey": self.ci_public_key, "secretNames": self.secret_names})

    def commit_workflow(self, content: str, after: Sequence[pulumi.Resource]) -> github.RepositoryFile:
        """Commit the deploy workflow to the branch. The commit is a push, so the workflow's first
        deploy starts at once: `after` holds what must be done on the server before (it serving)."""
        return github.RepositoryFile(
            f"{self._name}-workflow",
            repository=self._args.repository,
            branch=self._args.branch,
            file=WORKFLOW_PATH,
            content=content,
            commit_message="Deploy with django-vps on push",
            overwrite_on_create=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=list(after)),
        )
