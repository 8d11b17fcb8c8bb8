"""Rendering is deterministic (same settings, same bytes, in any process), and a setting changes
exactly the files that use it: the host steps' triggers are the SHA-256 of their scripts, so this
is what decides which steps `pulumi up` re-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from components import render
from tests.render.catalog import all_files
from tests.render.conftest import ROOT, ed25519_keypair, fresh_settings, make_settings

# Fixed (no generated keys), and away from the defaults so every template branch has content.
CONFIG = {
    "dependencies": "uv",
    "gunicornWorkers": 3,
    "logsDir": "/var/log/django-vps/blog",
    "djangoEnv": ["FEATURE=on"],
    "clientMaxBodySize": "10M",
}


def _hashes(**overrides: object) -> dict[str, str]:
    return {name: render.sha256(text) for name, text in all_files(make_settings(**{**CONFIG, **overrides})).items()}


def test_rendering_twice_gives_the_same_bytes() -> None:
    s = make_settings(**CONFIG)
    assert all_files(s) == all_files(s)
    assert all_files(s) == all_files(fresh_settings(**CONFIG))
    private, public = ed25519_keypair()
    first, second = (render.cloud_init(private, public, [public], "admin") for _ in range(2))
    assert first == second


def test_rendering_is_the_same_in_other_processes() -> None:
    """No dependence on hash seeds (set order) or anything else of the process: this process
    has a random seed (unless PYTHONHASHSEED is set), the other none at all."""
    program = (
        "import json, sys; from tests.render.test_determinism import CONFIG, _hashes; json.dump(_hashes(), sys.stdout)"
    )
    expected = _hashes()
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == expected


NGINX = {"nginx_site[http]", "nginx_site[https]", "nginx_step", "certbot_step"}
# What names a path under the app user's home besides the app-user step and the forced command (the
# workflow does not: it names deploy.sh, in root's directory for the app).
HOME_PATHS = {
    *NGINX,
    "django_env",  # DATABASE_URL, in shared/
    "run.sh",
    "deploy.sh",
    "deploy_step",
    "backup.sh",
    "backup.sh[s3]",
    "backup_step",
    "clone_step",
    "env_step",
    "sudoers",
    "supervisor_program",
    "supervisor_step",
}


LAPTOP_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbVpbLGh1qYPgLiSDwP5H94ryIq3a9dQsVNIhDGfNgT me@laptop"


@pytest.mark.parametrize(
    ("setting", "value", "changed"),
    [
        ("clientMaxBodySize", "64m", NGINX),
        ("gunicornWorkers", 4, {"gunicorn.conf.py", "deploy_step"}),
        ("branch", "production", {"deploy.sh", "deploy_step", "clone_step", "deploy_workflow"}),
        ("logLevel", "WARNING", {"django_env"}),
        ("logsDir", "/var/log/django-vps/blog/other", {"django_env", "clone_step"}),
        ("letsencryptEmail", "ops@example.com", {"certbot_step"}),
        ("acmeServer", "staging", {"certbot_step"}),
        ("keepReleases", 3, {"deploy.sh", "deploy_step"}),
        ("healthCheckPath", "/health/", {"deploy.sh", "deploy_step", "backup.sh", "backup.sh[s3]", "backup_step"}),
        ("sharedPaths", ["media", "uploads"], {"deploy.sh", "deploy_step"}),
        # (and the overlay's SECURE_HSTS_SECONDS, through the release check's arguments)
        (
            "hsts",
            "false",
            {
                "nginx_site[http]",
                "nginx_site[https]",
                "nginx_step",
                "certbot_step",
                "deploy.sh",
                "deploy_step",
                "backup.sh",
                "backup.sh[s3]",
                "backup_step",
            },
        ),
        ("settingsOverlay", "false", {"deploy.sh", "deploy_step", "backup.sh", "backup.sh[s3]", "backup_step"}),
        ("settingsOverlaySkip", ["DEBUG"], {"deploy.sh", "deploy_step", "backup.sh", "backup.sh[s3]", "backup_step"}),
        ("failOnDebug", "true", {"deploy.sh", "deploy_step", "backup.sh", "backup.sh[s3]", "backup_step"}),
        ("dependencyGroups", ["web"], {"deploy.sh", "deploy_step"}),
        ("requirementsFile", "requirements/prod.txt", {"deploy.sh", "deploy_step"}),
        (
            "wsgiApplication",
            "main.wsgi:application",
            {"deploy.sh", "deploy_step", "backup.sh", "backup.sh[s3]", "backup_step"},
        ),
        ("hostFirewall", "false", {"security_step"}),
        ("fail2ban", "false", {"security_step", "packages_step"}),
        # Another admin user changes the login, cloud-init and whose keys the admin-keys step keeps.
        ("adminUser", "ops", {"admin_keys_step"}),
        # A key of the user's: the admin-keys step alone (cloud-init's copy acted at the first boot).
        ("adminSshKeys", [LAPTOP_KEY], {"admin_keys_step"}),
        # The app user moves the home directory, the forced command and what runs it among it.
        (
            "user",
            "web",
            {
                "ci-command",
                "manage",
                "run-process",
                "run-scheduled",
                "app_user_step",
                "offsite_step",
                "offsite_step[s3]",
                "teardown_step[app-user]",
                "database_step",
                "backup.service",
                "teardown_step[supervisor]",
                *HOME_PATHS,
            },
        ),
        # PostgreSQL: installed by the one apt run, named in the .env, checked for by the release check
        # (the database step, which only this setting adds to the host, renders the same either way).
        (
            "database",
            "postgresql",
            # (and, with a data volume, its cluster is bind-mounted from the volume by the volume step)
            {
                "packages_step",
                "django_env",
                "env_step",  # which then leaves a site on SQLite to its deploy (no reload)
                "deploy.sh",
                "deploy_step",
                "backup.sh",
                "backup.sh[s3]",
                "backup_step",
                "volume_step",
            },
        ),
        ("backupSchedule", "*-*-* 03:00:00", {"backup.sh", "backup.sh[s3]", "backup.timer", "backup_step"}),
        ("backupKeepDaily", 14, {"backup.sh", "backup.sh[s3]", "backup_step"}),
        ("backupKeepWeekly", 0, {"backup.sh", "backup.sh[s3]", "backup_step"}),
    ],
)
def test_a_setting_changes_exactly_the_files_that_use_it(setting: str, value: object, changed: set[str]) -> None:
    # The verify step re-runs whenever what it checks was changed (its script names their digests).
    if changed & {"deploy_step", "nginx_step", "certbot_step", "supervisor_step"}:
        changed = {*changed, "verify_step"}
    before, after = _hashes(), _hashes(**{setting: value})
    assert before.keys() == after.keys()
    assert {name for name in before if before[name] != after[name]} == changed
