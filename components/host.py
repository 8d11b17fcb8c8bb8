"""The host side: ordered remote commands that take a bare server to serving the site over HTTPS.

Each step is a rendered script (components/render.py). Its triggers hold the SHA-256 of that script
(and of its stdin, as a secret), so a step runs again exactly when what it installs changes; the
scripts are idempotent anyway. Secrets travel by stdin only, on steps that log nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components import render
from components.server import Connection
from components.settings import Settings

STEPS = ("packages", "security", "app-user", "clone", "env", "deploy", "supervisor", "nginx", "dns-wait", "certbot")


@dataclass(frozen=True)
class HostArgs:
    """What provisioning the host needs from the other components."""

    settings: Settings
    """Validated settings."""
    connection: Connection
    """How to reach the host, host key pinned."""
    ci_public_key: pulumi.Output[str]
    """The workflow's key, authorized for the app user."""
    deploy_private_key: pulumi.Output[str]
    """Secret: the read-only key the server clones with."""
    django_env: pulumi.Output[str]
    """Secret: the rendered .env file."""
    expected_ipv4: pulumi.Output[str]
    """The address the domain must resolve to before certbot runs."""
    clone_after: Sequence[pulumi.Resource]
    """Resources the first clone needs (the deploy key on GitHub)."""
    certificate_after: Sequence[pulumi.Resource]
    """Resources certbot needs (the DNS records)."""
    server: pulumi.Resource | None
    """The created server: its commands go with it. None for an existing host, whose teardown runs."""


def as_root(script: str, login_user: str) -> str:
    """The command line that runs a step: bash whatever the login shell is, through sudo unless
    the login is root. stdin passes through to the script."""
    command = f"bash -c {shlex.quote(script)}"
    return command if login_user == "root" else f"sudo -n {command}"


class Host(pulumi.ComponentResource):
    """The provisioned host."""

    steps: dict[str, remote.Command]
    """The remote commands by role, in order."""

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("django-vps:host:Host", name, None, opts)
        self._name = name
        self._args = args
        self.steps = {}
        s = args.settings

        self._step("packages", render.packages_step(s))
        self._step("security", render.security_step(s), teardown="security")
        self._step(
            "app-user",
            args.ci_public_key.apply(lambda key: render.app_user_step(s, key)),
            stdin=args.deploy_private_key,
            teardown="app-user",
        )
        self._step("clone", render.clone_step(s), after=args.clone_after)
        self._step("env", render.env_step(s), stdin=args.django_env)
        self._step("deploy", render.deploy_step(s))
        self._step("supervisor", render.supervisor_step(s), teardown="supervisor")
        self._step("nginx", render.nginx_step(s), teardown="nginx")
        self._step(
            "dns-wait", args.expected_ipv4.apply(lambda ip: render.dns_wait_step(s, ip)), after=args.certificate_after
        )
        self._step("certbot", render.certbot_step(s))
        self.register_outputs(
            {role: step.stdout for role, step in self.steps.items() if role not in ("app-user", "env")}
        )

    def _step(
        self,
        role: str,
        script: pulumi.Input[str],
        *,
        stdin: pulumi.Output[str] | None = None,
        after: Sequence[pulumi.Resource] = (),
        teardown: str | None = None,
    ) -> None:
        login_user = self._args.connection.user
        script_output = pulumi.Output.from_input(script)
        command_line = script_output.apply(lambda text: as_root(text, login_user))
        triggers: list[pulumi.Input[str]] = [script_output.apply(render.sha256)]
        if stdin is not None:
            # A hash of a low-entropy secret could be brute-forced: keep it secret in state too.
            triggers.append(pulumi.Output.secret(stdin.apply(render.sha256)))
        command = remote.Command(
            f"{self._name}-{role}",
            connection=self._args.connection.args(),
            create=command_line,
            # Same script on change: an update re-runs it in place instead of delete + create.
            update=command_line,
            delete=as_root(render.teardown_step(self._args.settings, teardown), login_user) if teardown else None,
            stdin=stdin,
            triggers=triggers,
            logging=remote.Logging.NONE if stdin is not None else remote.Logging.STDOUT_AND_STDERR,
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*list(self.steps.values())[-1:], *after],  # the step before, in order
                deleted_with=self._args.server,
                additional_secret_outputs=["stdout", "stderr", "stdin"] if stdin is not None else None,
            ),
        )
        self.steps[role] = command
