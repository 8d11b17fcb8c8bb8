"""DjangoSite: the server, DNS, GitHub access and the provisioned host, composed. Its outputs are the
stack outputs."""

from __future__ import annotations

import pulumi
import pulumi_hcloud as hcloud
import pulumi_random as random
import pulumi_tls as tls

from components import render
from components.dns import Dns, DnsArgs
from components.github import GitHubAccess, GitHubArgs
from components.host import Host, HostArgs
from components.server import Server, ServerArgs
from components.settings import DATA_MOUNT, Settings, hetzner_labels, hetzner_prefix

# Django's own get_random_secret_key() alphabet, minus characters that need quoting in a .env file.
SECRET_KEY_SPECIALS = "!@%^&*(-_=+)"


class DjangoSite(pulumi.ComponentResource):
    """A Django project from GitHub served at https://<domain>."""

    server: Server
    dns: Dns
    github: GitHubAccess
    host: Host
    outputs: dict[str, pulumi.Input[object]]
    """What the stack exports."""

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("django-vps:site:DjangoSite", name, None, opts)
        s = settings
        child = pulumi.ResourceOptions(parent=self)
        labels = hetzner_labels(s.app_name, pulumi.get_stack())
        if s.server is not None and not s.server.admin_ssh_keys:
            # Not a mistake (the workflow deploys without it), but nobody could log in to operate the site.
            pulumi.log.warn(
                f"adminSshKeys is empty: only the stack's own provisioning key logs in as {s.server.admin_user}, "
                "so sshCommand, deployCommand and the other commands in the outputs cannot work from your machine; "
                "add yours with pulumi config set --path 'adminSshKeys[0]' \"$(cat ~/.ssh/id_ed25519.pub)\""
            )

        self.server = Server(
            f"{name}-server",
            ServerArgs(
                hetzner=s.server,
                existing=s.existing_host,
                name_prefix=hetzner_prefix(s.app_name, pulumi.get_stack()),
                labels=labels,
            ),
            opts=child,
        )
        connection = self.server.connection
        self.dns = Dns(
            f"{name}-dns",
            DnsArgs(
                domain=s.domain,
                zone=s.dns_zone,
                record_name=s.dns_record_name,
                create_zone=s.create_dns_zone,
                manage=s.manage_dns,
                ipv4=self.server.ipv4,
                ipv6=self.server.ipv6,
                with_ipv6=self.server.has_ipv6,
                labels=labels,
            ),
            opts=child,
        )
        self.github = GitHubAccess(
            f"{name}-github",
            GitHubArgs(
                owner=s.repository_owner,
                repository=s.repository_name,
                branch=s.branch,
                environment=s.github_environment,
                workflow_path=s.workflow_path,
                domain=s.domain,
                ssh_host=connection.host,
                ssh_user=s.user,
                host_key=connection.host_key,
                token=s.github_token,
                base_url=s.github_base_url,
            ),
            opts=child,
        )
        secret_key = (
            s.django_secret_key
            or random.RandomPassword(
                f"{name}-secret-key",
                length=64,
                special=True,
                override_special=SECRET_KEY_SPECIALS,
                opts=child,
            ).result
        )
        secret_env = pulumi.Output.all(*(value for _, value in s.django_secret_env))
        django_env = pulumi.Output.secret(
            pulumi.Output.all(secret_key, secret_env).apply(
                lambda values: render.django_env(
                    s, values[0], [(k, v) for (k, _), v in zip(s.django_secret_env, values[1], strict=True)]
                )
            )
        )
        offsite_public_key = offsite_secrets = offsite_password = None
        if s.offsite is not None:
            offsite_password = (
                s.offsite.password
                or random.RandomPassword(f"{name}-offsite-password", length=48, special=False, opts=child).result
            )
            if s.offsite.s3 is not None:
                # The password's line, then the access key ID's and the secret key's (S3 has no SSH key).
                offsite_secrets = pulumi.Output.secret(
                    pulumi.Output.all(
                        offsite_password, s.offsite.s3.access_key_id, s.offsite.s3.secret_access_key
                    ).apply(lambda values: "".join(f"{value}\n" for value in values))
                )
            else:
                offsite_key = tls.PrivateKey(f"{name}-offsite-key", algorithm="ED25519", opts=child)
                offsite_public_key = offsite_key.public_key_openssh.apply(
                    lambda key: key.strip() + f" django-vps-{s.app_name}-backups"
                )
                offsite_secrets = pulumi.Output.secret(
                    pulumi.Output.all(offsite_password, offsite_key.private_key_openssh).apply(
                        lambda values: f"{values[0]}\n{values[1].strip()}\n"
                    )
                )
        self.host = Host(
            f"{name}-host",
            HostArgs(
                settings=s,
                connection=connection,
                ci_public_key=self.github.ci_public_key,
                deploy_private_key=self.github.deploy_private_key,
                login_public_key=self.server.login_public_key,
                django_env=django_env,
                expected_ipv4=self.server.ipv4.apply(lambda ip: ip or ""),
                clone_after=[self.github.deploy_key],
                certificate_after=self.dns.rrsets,
                server=self.server.hcloud_server,
                offsite_public_key=offsite_public_key,
                offsite_secrets=offsite_secrets,
                data_device=None if self.server.volume is None else self.server.volume.linux_device,
                data_volume_after=[r for r in (self.server.volume, self.server.volume_attached) if r is not None],
            ),
            opts=child,
        )
        if s.deploy_workflow:
            self.github.commit_workflow(render.deploy_workflow(s), after=self.host.provisioned)
        self.outputs = {
            "domain": s.domain,
            "url": s.url,
            "ipv4": self.server.ipv4,
            "ipv6": self.server.ipv6,
            "sshCommand": pulumi.Output.concat("ssh ", connection.user, "@", connection.host),
            "appUser": s.user,
            "appDirectory": s.app_dir,
            # From your machine, with your admin key: the admin user runs it as the app user (the app
            # user's own key is the CI's, forced to deploy.sh).
            "deployCommand": pulumi.Output.concat(
                "ssh ", connection.user, "@", connection.host, " sudo -u ", s.user, " -H ", s.deploy_script
            ),
            "rollbackCommand": pulumi.Output.concat(
                "ssh ", connection.user, "@", connection.host, " sudo -u ", s.user, " -H ", s.deploy_script, " rollback"
            ),
            "manageCommand": pulumi.Output.concat(
                "ssh -t ", connection.user, "@", connection.host, " sudo django-vps-manage ", s.app_name
            ),
            "hostKey": connection.host_key,
            "githubEnvironment": s.github_environment,
            "githubSecrets": self.github.secret_names,
            "dnsRecords": self.dns.records,
            "dnsManaged": s.manage_dns,
            "nextSteps": _next_steps(s),
            "backupCommand": pulumi.Output.concat(
                "ssh ", connection.user, "@", connection.host, " sudo -u ", s.user, " -H ", s.backup_script, " list"
            ),
        }
        if s.schedule:
            # The scheduled commands' last runs (and `systemctl --failed` lists a failed one); sudo:
            # the admin user is in group sudo, and the system journal is root's, adm's and
            # systemd-journal's only. Only with a schedule: journalctl fails on a pattern no unit matches.
            self.outputs["scheduleLogs"] = pulumi.Output.concat(
                "ssh ",
                connection.user,
                "@",
                connection.host,
                f" sudo journalctl -u 'django-vps-{s.app_name}.*' -n 50 --no-pager",
            )
        if self.server.volume is not None:
            self.outputs["dataVolume"] = _data_volume_line(s, self.server.volume)
        if s.offsite is not None:
            self.outputs["offsiteRepository"] = s.offsite.repository
            self.outputs["offsiteBackups"] = (
                f"restic repository {s.offsite.repository}: pulumi destroy never deletes it; reading it "
                "needs the offsiteRepositoryPassword output (pulumi stack output --show-secrets "
                "offsiteRepositoryPassword): keep a copy, destroy forgets it"
            )
            # What `pulumi destroy` shows of the backups, in its plan and as it runs: this resource's
            # line, `django-vps:backup:OffsiteBackups blog-offsite-backups kept at sftp:... delete[retain]`
            # (seen on the real CLI; it prints no stack outputs for a stack with components). A leaf
            # component: another repository renames it, which deletes (retains) nothing real.
            where = s.offsite.repository if "::" not in s.offsite.repository else "the offsiteRepository output"
            pulumi.ComponentResource(
                "django-vps:backup:OffsiteBackups",
                f"{name}-offsite-backups kept at {where}",
                None,
                pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            if offsite_public_key is not None:
                self.outputs["offsiteSshPublicKey"] = offsite_public_key
            # The repository cannot be read without it, and `pulumi destroy` forgets it: keep a copy.
            self.outputs["offsiteRepositoryPassword"] = pulumi.Output.secret(offsite_password)
        self.register_outputs(self.outputs)


def _data_volume_line(s: Settings, volume: hcloud.Volume) -> pulumi.Output[str]:
    """One line: where the data volume is, what `pulumi destroy` does with it, how to reuse or delete it."""
    keep = s.data_volume is not None and s.data_volume.keep

    def line(values: list[object]) -> str:
        volume_id, name, location, size = values
        where = f"Hetzner Volume {name} (id {volume_id}, {location}, {size} GB) at {DATA_MOUNT}"
        if not keep:
            return f"{where}: pulumi destroy deletes it with the data (dataVolumeKeep false)"
        return (
            f"{where}: pulumi destroy keeps it; reuse it with dataVolumeId {volume_id}, or delete it with "
            f"hcloud volume disable-protection {volume_id} delete && hcloud volume delete {volume_id}"
        )

    return pulumi.Output.all(volume.id, volume.name, volume.location, volume.size).apply(line)


def _next_steps(s: Settings) -> str:
    dns = (
        "Hetzner DNS serves the records (dnsRecords)."
        if s.manage_dns
        else "Create the dnsRecords at your DNS provider; certbot waits for the A record."
    )
    workflow = (
        f"A push to {s.branch} deploys ({s.workflow_path}, GitHub Environment {s.github_environment})."
        if s.deploy_workflow
        else f"Deploy with the deployCommand, or add a workflow whose job names the environment "
        f"{s.github_environment} and uses its SSH_* secrets."
    )
    return f"{dns} {workflow} Open {s.url}."
