"""The host side: remote commands that take a bare server to serving the site over HTTPS.

Lifecycle, as the real engine runs it (pulumi-command v1.2.1 `provider/pkg/provider/common/inputs.go`
makes `triggers` replaceOnChanges; `remote/commandController.go` runs `update`, else `create`, on an
update, and `delete` with the inputs recorded in state; a replacement is create-before-delete):
- An install step carries its rendered script as `create` and `update` and no `triggers` and no
  `delete`: a changed script or stdin is an UPDATE that re-runs it in place, and nothing ever
  uninstalls because a setting changed. Identical inputs: the engine runs nothing.
- On a host the stack did not create, what `pulumi destroy` must undo lives in teardown-only
  commands: no `create`, only a `delete`, so an update of one (a re-rendered teardown) runs nothing,
  and its delete runs only when the resource really goes. A created server takes everything with
  it, so it has no teardowns.
- A created server's steps are `deleted_with` it, and the engine replaces a resource whose
  deletedWith resource is replaced (`pkg/resource/deploy/step_generator.go`): a confirmed server
  replacement replaces every step, so each one's create runs on the new server (from scratch), and
  the old ones delete nothing (they have no delete).
- Each step waits only for the steps it needs (STEP_NEEDS), so the engine runs the rest at once;
  apt steps wait on dpkg's lock (DPkg::Lock::Timeout) rather than failing.
Secrets travel by stdin only, on steps that log nothing; no script echoes its stdin, because a
failed command's error carries the command and its output whatever `logging` says
(`remote/commandOutputs.go`).
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

STEP_NEEDS: dict[str, tuple[str, ...]] = {
    "admin-keys": (),
    # The data volume is mounted before anything is installed (PostgreSQL's cluster is made on it)
    # and so before any step writes data.
    "volume": (),
    "packages": ("volume",),
    "security": ("packages",),
    # After the hardening: loading the firewall while a connection is open can leave that
    # connection hanging (seen on the lab: the clone's fetch from the forge stalled for good).
    "app-user": ("packages", "security"),
    "clone": ("app-user",),
    "env": ("app-user",),
    # (its group lets the app user at the socket: before anything of the app starts)
    "redis": ("packages", "app-user"),
    "database": ("packages", "app-user"),
    "deploy": ("clone", "env", "redis", "database"),
    "supervisor": ("deploy",),
    "schedule": ("deploy",),
    "backup": ("app-user",),
    "offsite": ("packages", "app-user"),
    "nginx": ("packages",),
    "dns-wait": (),
    "certbot": ("nginx", "dns-wait", "security"),
    "verify": ("supervisor", "certbot"),
}
"""Each step and the steps it cannot run before (what it uses that they install)."""
CREATED_SERVER_ONLY = frozenset({"admin-keys"})
"""Steps of a server the stack created: there the admin user and its keys are the stack's (on an
existing host the login user's keys are the user's own, and stay so)."""
POSTGRESQL_ONLY = frozenset({"database"})
"""Steps of the database postgresql only (SQLite needs nothing installed)."""
OFFSITE_ONLY = frozenset({"offsite"})
"""Steps of off-site backups only (offsiteSftpHost or offsiteS3Endpoint)."""
DATA_VOLUME_ONLY = frozenset({"volume"})
"""Steps of a data volume only (dataVolume)."""
STEPS = tuple(
    role for role in STEP_NEEDS if role not in CREATED_SERVER_ONLY | POSTGRESQL_ONLY | OFFSITE_ONLY | DATA_VOLUME_ONLY
)
"""The steps every host gets."""


def steps_of(s: Settings, *, created: bool) -> tuple[str, ...]:
    """The steps of a host with these settings, in STEP_NEEDS' order."""
    return tuple(
        role
        for role in STEP_NEEDS
        if (role not in CREATED_SERVER_ONLY or created)
        and (role not in POSTGRESQL_ONLY or s.database == "postgresql")
        and (role not in OFFSITE_ONLY or s.offsite is not None)
        and (role not in DATA_VOLUME_ONLY or s.data_volume is not None)
    )


TEARDOWN_AFTER: dict[str, tuple[str, ...]] = {
    "security": ("security",),
    "app-user": ("app-user", "clone", "env", "deploy"),
    "supervisor": ("supervisor", "teardown-app-user"),
    "nginx": ("nginx", "certbot", "teardown-supervisor"),
}
"""Teardown-only commands (an existing host) and what each is created after. `pulumi destroy` deletes
in reverse: the site goes first, then the program, then the keys and the sudo rule."""

FINAL_STEPS = ("verify",)
"""When it is done the site is serving over HTTPS, assets included: what must precede the first push
deploy."""


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
    login_public_key: pulumi.Output[str] | None
    """The provisioning key, "type base64", on a created server (its admin user keeps it); else None."""
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
    offsite_public_key: pulumi.Output[str] | None = None
    """The off-site backups' SSH public key (offsiteSftpHost), for the step's message."""
    offsite_secrets: pulumi.Output[str] | None = None
    """Secret: the repository password's line, then the off-site SSH private key (SFTP) or the
    access key ID's and secret access key's lines (S3)."""
    data_device: pulumi.Output[str] | None = None
    """The data volume's device (its linux_device), with dataVolume."""
    data_volume_after: Sequence[pulumi.Resource] = ()
    """What the volume step needs first: the volume (its resize) and its attachment to the server."""


def as_root(script: str, login_user: str) -> str:
    """The command line that runs a step: bash whatever the login shell is, through sudo unless
    the login is root. stdin passes through to the script."""
    command = f"bash -c {shlex.quote(script)}"
    return command if login_user == "root" else f"sudo -n {command}"


class Host(pulumi.ComponentResource):
    """The provisioned host."""

    steps: dict[str, remote.Command]
    """The install steps by role."""
    teardowns: dict[str, remote.Command]
    """The teardown-only commands by part (an existing host only)."""
    provisioned: list[pulumi.Resource]
    """Done when the site serves over HTTPS."""

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("django-vps:host:Host", name, None, opts)
        self._name = name
        self._args = args
        self.steps = {}
        self.teardowns = {}
        s = args.settings
        scripts: dict[str, pulumi.Input[str]] = {
            "packages": render.packages_step(s),
            "security": render.security_step(s),
            "app-user": args.ci_public_key.apply(lambda key: render.app_user_step(s, key)),
            "clone": render.clone_step(s),
            "env": render.env_step(s),
            "redis": render.redis_step(s),
            "database": render.database_step(s),
            "backup": render.backup_step(s),
            "deploy": render.deploy_step(s),
            "supervisor": render.supervisor_step(s),
            "schedule": render.schedule_step(s),
            "nginx": render.nginx_step(s),
            "dns-wait": args.expected_ipv4.apply(lambda ip: render.dns_wait_step(s, ip)),
            "certbot": render.certbot_step(s),
            "verify": render.verify_step(s),
        }
        created = args.login_public_key is not None
        if args.login_public_key is not None:
            # cloud-init wrote adminSshKeys once: this keeps them as configured (added, edited, removed).
            scripts["admin-keys"] = args.login_public_key.apply(lambda key: render.admin_keys_step(s, key))
        if args.data_device is not None:
            scripts["volume"] = args.data_device.apply(lambda device: render.volume_step(s, device))
        if args.offsite_public_key is not None:
            scripts["offsite"] = args.offsite_public_key.apply(lambda key: render.offsite_step(s, key))
        elif s.offsite is not None:
            scripts["offsite"] = render.offsite_step(s, "")  # S3: no key to authorize anywhere
        stdins = {"app-user": args.deploy_private_key, "env": args.django_env}
        if args.offsite_secrets is not None:
            stdins["offsite"] = args.offsite_secrets
        extra_after = {
            "clone": args.clone_after,
            "dns-wait": args.certificate_after,
            "volume": args.data_volume_after,
        }
        for role in steps_of(s, created=created):
            self.steps[role] = self._command(
                role,
                create=scripts[role],
                stdin=stdins.get(role),
                after=[
                    *(self.steps[need] for need in STEP_NEEDS[role] if need in self.steps),
                    *extra_after.get(role, ()),
                ],
            )
        if args.server is None:
            for part, after in TEARDOWN_AFTER.items():
                self.teardowns[part] = self._command(
                    f"teardown-{part}",
                    delete=render.teardown_step(s, part),
                    after=[self.steps.get(role) or self.teardowns[role.removeprefix("teardown-")] for role in after],
                )
        self.provisioned = [self.steps[role] for role in FINAL_STEPS]
        self.register_outputs({role: step.stdout for role, step in self.steps.items() if role not in stdins})

    def _command(
        self,
        role: str,
        *,
        create: pulumi.Input[str] | None = None,
        delete: str | None = None,
        stdin: pulumi.Output[str] | None = None,
        after: Sequence[pulumi.Resource] = (),
    ) -> remote.Command:
        login_user = self._args.connection.user
        command_line = (
            None if create is None else pulumi.Output.from_input(create).apply(lambda text: as_root(text, login_user))
        )
        return remote.Command(
            f"{self._name}-{role}",
            connection=self._args.connection.args(),
            create=command_line,
            # The same script on change: an update re-runs it in place (never a replacement).
            update=command_line,
            delete=None if delete is None else as_root(delete, login_user),
            stdin=stdin,
            logging=remote.Logging.NONE if stdin is not None else remote.Logging.STDOUT_AND_STDERR,
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(after),
                deleted_with=self._args.server,
                additional_secret_outputs=["stdout", "stderr", "stdin"] if stdin is not None else None,
            ),
        )
