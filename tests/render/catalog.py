"""Everything render.py produces for one Settings, by name, so the checks can iterate over it."""

from __future__ import annotations

import re
from dataclasses import replace

import pulumi

from components import render
from components.settings import DataVolume, HetznerServer, Offsite, S3Target, Settings, SftpTarget
from tests.render.conftest import CI_PUBLIC_KEY

EXPECTED_IPV4 = "198.51.100.2"
TEARDOWN_PARTS = ("nginx", "supervisor", "app-user", "security")

SCRIPT_NAMES = (
    "run.sh",
    "deploy.sh",
    "backup.sh",
    "backup.sh[s3]",
    "ci-command",
    "manage",
    "run-process",
    "run-scheduled",
    "django-vps-manage",
    "admin_keys_step",
    "volume_step",
    "packages_step",
    "security_step",
    "app_user_step",
    "clone_step",
    "env_step",
    "redis_step",
    "database_step",
    "backup_step",
    "offsite_step",
    "offsite_step[s3]",
    "deploy_step",
    "supervisor_step",
    "schedule_step",
    "nginx_step",
    "dns_wait_step",
    "certbot_step",
    "verify_step",
    *(f"teardown_step[{part}]" for part in TEARDOWN_PARTS),
)


def created_server(s: Settings) -> Settings:
    """s, or for an existing host the same settings on a server the stack created: the steps only
    such a server gets (admin_keys_step) are checked in every variant too."""
    if s.server is not None:
        return s
    return replace(s, server=HetznerServer("cx23", s.image, "fsn1", False, ()), existing_host=None)


VOLUME_DEVICE = "/dev/disk/by-id/scsi-0HC_Volume_4711"


def with_volume(s: Settings) -> Settings:
    """s on a created server with a data volume: the step only it gets is checked in every variant."""
    server = created_server(s).server
    assert server is not None
    if server.data_volume is not None:
        return created_server(s)
    return replace(created_server(s), server=replace(server, data_volume=DataVolume(10)))


OFFSITE_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbVpbLGh1qYPgLiSDwP5H94ryIq3a9dQsVNIhDGfNgT backups"


def with_offsite(s: Settings) -> Settings:
    """s, or the same settings with off-site backups: the step only they get is checked in every variant."""
    if s.offsite is not None and s.offsite.sftp is not None:
        return s
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    target = SftpTarget("backup.example.net", 23, "u1", f"django-vps/{s.app_name}", host_key)
    return replace(s, offsite=Offsite(target, None, 7, 4))


def with_s3(s: Settings) -> Settings:
    """s, or the same settings with off-site backups to S3 (their backup.sh and step are checked in every variant)."""
    if s.offsite is not None and s.offsite.s3 is not None:
        return s
    keys = pulumi.Output.secret("AKIAEXAMPLE0KEY"), pulumi.Output.secret("example-secret-key")
    target = S3Target("https://fsn1.your-objectstorage.com", "blog-backups", f"django-vps/{s.app_name}", "fsn1", *keys)
    return replace(s, offsite=Offsite(target, None, 7, 4))


def scripts(s: Settings) -> dict[str, str]:
    """Every bash script the program runs or installs on the host."""
    rendered = {
        "run.sh": render.run_sh(s),
        "deploy.sh": render.deploy_sh(s),
        "backup.sh": render.backup_sh(s),
        "backup.sh[s3]": render.backup_sh(with_s3(s)),
        "ci-command": render.ci_command_sh(s),
        "manage": render.manage_sh(s),
        "run-process": render.run_process_sh(s),
        "run-scheduled": render.run_scheduled_sh(s),
        "django-vps-manage": render.manage_command_sh(),
        "admin_keys_step": render.admin_keys_step(created_server(s), CI_PUBLIC_KEY),
        "volume_step": render.volume_step(with_volume(s), VOLUME_DEVICE),
        "packages_step": render.packages_step(s),
        "security_step": render.security_step(s),
        "app_user_step": render.app_user_step(s, CI_PUBLIC_KEY),
        "clone_step": render.clone_step(s),
        "env_step": render.env_step(s),
        "redis_step": render.redis_step(s),
        "database_step": render.database_step(s),
        "backup_step": render.backup_step(s),
        "offsite_step": render.offsite_step(with_offsite(s), OFFSITE_PUBLIC_KEY),
        "offsite_step[s3]": render.offsite_step(with_s3(s), ""),
        "deploy_step": render.deploy_step(s),
        "supervisor_step": render.supervisor_step(s),
        "schedule_step": render.schedule_step(s),
        "nginx_step": render.nginx_step(s),
        "dns_wait_step": render.dns_wait_step(s, EXPECTED_IPV4),
        "certbot_step": render.certbot_step(s),
        "verify_step": render.verify_step(s),
        **{f"teardown_step[{part}]": render.teardown_step(s, part) for part in TEARDOWN_PARTS},
    }
    assert tuple(rendered) == SCRIPT_NAMES
    return rendered


def all_files(s: Settings) -> dict[str, str]:
    """Every text render.py produces from Settings (scripts, configuration files, the workflow)."""
    return {
        **scripts(s),
        "gunicorn.conf.py": render.gunicorn_conf(s),
        "supervisor_program": render.supervisor_program(s),
        "sudoers": render.sudoers(s),
        "backup.service": render.backup_service(s),
        "backup.timer": render.backup_timer(s),
        "nginx_site[http]": render.nginx_site(s, tls=False),
        "nginx_site[https]": render.nginx_site(s, tls=True),
        "django_env": render.django_env(s, "k" * 50, [("API_TOKEN", "t0ken")]),
        "deploy_workflow": render.deploy_workflow(s),
    }


def ocsp_snippet(s: Settings) -> str:
    """What the certbot step writes for a certificate that names an OCSP responder; the https site
    includes it."""
    return render.ocsp_snippet(s)


_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def heredocs(script: str) -> list[tuple[str, str, bool]]:
    """The here-documents of a script as bash reads them: (delimiter, body, quoted). The body runs
    from the line after the `<<` to the first line that is exactly the delimiter."""
    found = []
    lines = script.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.lstrip().startswith("#"):
            continue
        for dash, quote, delimiter in _HEREDOC.findall(line):
            assert not dash, f"<<- heredoc in {line!r}: tabs would be stripped from the content"
            body = []
            while index < len(lines) and lines[index].rstrip("\n") != delimiter:
                body.append(lines[index])
                index += 1
            assert index < len(lines), f"heredoc {delimiter} is never terminated"
            index += 1
            found.append((delimiter, "".join(body), bool(quote)))
    return found
