"""settings.load_settings as a plain function: defaults from Pulumi.yaml, derived values, and every
validation rule with a malformed value (one line, names the setting and the value, says what is
accepted, never echoes a secret)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components import settings as settings_module
from components.settings import (
    ACME_SERVERS,
    GITHUB_HOST_KEYS,
    HetznerServer,
    SettingError,
    Settings,
    load_settings,
)
from tests.unit.keys import ecdsa_public, ed25519_pair, ed25519_public, encrypted_ed25519_private, rsa_public

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"domain": "blog.com", "repository": "sdelquin/blog", "letsencryptEmail": "admin@blog.com"}


# Off-site backups, complete: what each bad case changes one value of.
OFFSITE = {
    "offsiteSftpHost": "u123456.your-storagebox.de",
    "offsiteSftpPort": "23",
    "offsiteSftpUser": "u123456",
    "offsiteSftpHostKey": ed25519_public("storage-box"),
}
S3 = {
    "offsiteS3Endpoint": "https://fsn1.your-objectstorage.com",
    "offsiteS3Bucket": "shop-backups",
    "offsiteS3AccessKeyId": "AKIAHETZNER0EXAMPLE1",
    "offsiteS3SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def existing_host(**extra: str | None) -> dict[str, str | None]:
    return {
        "existingHost": "203.0.113.10",
        "existingHostKey": ed25519_public("existing-host"),
        "existingHostPrivateKey": ed25519_pair("existing-login")[0],
        **extra,
    }


def raw_config(values: dict[str, Any]) -> Callable[[str], str | None]:
    """The config getter load_settings takes: "django-vps:<key>" (or "ns:key") -> string or None."""
    config: dict[str, str] = {}
    for key, value in {**MINIMAL, **values}.items():
        if value is None:
            continue
        full = key if ":" in key else f"django-vps:{key}"
        config[full] = value if isinstance(value, str) else json.dumps(value)
    for key in [k for k, v in values.items() if v is None]:
        config.pop(f"django-vps:{key}", None)
    return config.get


def load(**values: Any) -> Settings:
    return load_settings(raw_config(values))


def error(values: dict[str, Any]) -> SettingError:
    with pytest.raises(SettingError) as caught:
        load(**values)
    return caught.value


# Defaults and derived values.


def test_defaults_come_from_pulumi_yaml() -> None:
    s = load()
    assert s.domain == "blog.com"
    assert s.repository == "sdelquin/blog"
    assert (s.repository_owner, s.repository_name) == ("sdelquin", "blog")
    assert s.branch == "main"
    assert s.app_name == "blog"  # the repository's name
    assert s.user == "blog"  # the app's name
    assert s.clone_url == "git@github.com:sdelquin/blog.git"
    assert s.clone_host_keys == GITHUB_HOST_KEYS
    assert {line.split()[0] for line in s.clone_host_keys} == {"github.com"}
    assert {line.split()[1] for line in s.clone_host_keys} == {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"}
    assert s.wsgi_application == ""  # Django's WSGI_APPLICATION
    assert s.dependencies == "auto"
    assert (s.dependency_groups, s.dependency_extras, s.requirements_file) == ((), (), "")
    assert (s.settings_overlay, s.settings_overlay_skip, s.fail_on_debug) == (True, (), False)
    assert s.gunicorn_workers == 0
    assert s.server == HetznerServer(
        server_type="cx23", image="debian-12", location="fsn1", backups=False, admin_ssh_keys=(), admin_user="admin"
    )
    assert s.login_user == "admin"  # provisioning logs in as the sudo user cloud-init makes, not root
    assert s.existing_host is None
    assert s.image == "debian-12"
    assert s.manage_dns is True
    assert s.dns_zone == "blog.com"
    assert s.create_dns_zone is False
    assert s.letsencrypt_email == "admin@blog.com"
    assert s.acme_server == "https://acme-v02.api.letsencrypt.org/directory"
    assert s.client_max_body_size == "10M"
    assert s.logs.directory == "/home/blog/blog/shared/logs"  # kept across releases
    assert s.logs.filename == "blog.log"
    assert (s.logs.size_mb, s.logs.rotate, s.logs.level) == (2, 3, "ERROR")
    assert s.django_env == ()
    assert s.django_secret_env == ()
    assert s.django_secret_key is None
    assert s.deploy_workflow is True
    assert s.keep_releases == 5
    assert s.health_check_path == "/"
    assert s.shared_paths == ("media", "db.sqlite3")
    assert (s.hsts, s.host_firewall, s.fail2ban) == (True, True, True)
    assert s.github_token is None


def test_defaults_are_read_from_the_declaration_not_hard_coded(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = {key: dict(spec) for key, spec in settings_module.declared_config().items()}
    declared["branch"]["default"] = "trunk"
    declared["logLevel"]["default"] = "WARNING"
    declared["serverType"]["default"] = "cpx31"
    monkeypatch.setattr(settings_module, "declared_config", lambda: declared)
    s = load()
    assert (s.branch, s.logs.level, s.server.server_type) == ("trunk", "WARNING", "cpx31")


def test_derived_paths() -> None:
    s = load(appName="site", user="web")
    assert s.home == "/home/web"
    assert s.app_dir == "/home/web/site"
    # What root runs or configures a daemon with is root's, outside the app user's home.
    assert s.bin_dir == "/opt/django-vps/site/bin"
    assert s.run_script == "/opt/django-vps/site/bin/run.sh"
    assert s.deploy_script == "/opt/django-vps/site/bin/deploy.sh"
    assert s.legacy_bin_dir == "/home/web/bin"
    assert s.socket_path == "/home/web/run/site.sock"
    assert s.current_dir == "/home/web/site/current"
    assert s.shared_dir == "/home/web/site/shared"
    assert s.env_file == "/home/web/site/shared/.env"
    assert s.release_check == "/opt/django-vps/site/bin/release_check.py"
    assert s.ci_command == "/opt/django-vps/site/bin/ci-command"  # beside deploy.sh, in the root-owned bin/
    # The app user's own SSH files, which the app user writes.
    assert (s.deploy_key_file, s.clone_known_hosts, s.authorized_keys) == (
        "/home/web/.ssh/deploy_key",
        "/home/web/.ssh/known_hosts_clone",
        "/home/web/.ssh/authorized_keys",
    )
    assert s.logs.directory == "/home/web/site/shared/logs"
    assert s.logs.filename == "site.log"
    assert s.url == "https://blog.com"


def test_explicit_logs_settings_win() -> None:
    s = load(logsDir="/var/log/django-vps/blog", logFilename="django.log", logSize="10", logRotate="7", logLevel="INFO")
    assert (s.logs.directory, s.logs.filename, s.logs.size_mb, s.logs.rotate, s.logs.level) == (
        "/var/log/django-vps/blog",
        "django.log",
        10,
        7,
        "INFO",
    )


@pytest.mark.parametrize(
    ("repository", "app_name"),
    [("sdelquin/blog", "blog"), ("sdelquin/My.Blog", "my-blog"), ("acme-corp/shop_front", "shop_front")],
)
def test_app_name_and_user_derive_from_the_repository(repository: str, app_name: str) -> None:
    # An existing host: a Hetzner server name takes no '_' (test_hetzner_changes.py).
    s = load(repository=repository, **existing_host())
    assert (s.app_name, s.user) == (app_name, app_name)
    assert s.app_dir == f"/home/{app_name}/{app_name}"


@pytest.mark.parametrize(
    ("domain", "zone", "record"),
    [
        ("blog.com", "blog.com", "@"),
        ("www.blog.com", "blog.com", "www"),
        ("a.b.blog.com", "blog.com", "a.b"),
        ("www.blog.co.uk", "blog.co.uk", "www"),
        ("blog.co.uk", "blog.co.uk", "@"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de", "@"),
    ],
)
def test_zone_is_the_registrable_part_of_the_domain(domain: str, zone: str, record: str) -> None:
    s = load(domain=domain)
    assert (s.dns_zone, s.dns_record_name) == (zone, record)


def test_explicit_dns_zone_sets_the_record_name() -> None:
    s = load(domain="www.eu.blog.com", dnsZone="eu.blog.com")
    assert (s.dns_zone, s.dns_record_name) == ("eu.blog.com", "www")


def test_acme_server_choices() -> None:
    assert load(acmeServer="staging").acme_server == ACME_SERVERS["staging"]
    assert load(acmeServer="https://pebble.test:14000/dir").acme_server == "https://pebble.test:14000/dir"


def test_clone_from_another_forge_with_pinned_keys() -> None:
    line = f"git.example.org {ed25519_public('forge')}"
    s = load(cloneUrl="ssh://git@git.example.org:2222/me/blog.git", cloneHostKeys=[line])
    assert s.clone_url == "ssh://git@git.example.org:2222/me/blog.git"
    assert s.clone_host_keys == (line,)
    assert load(cloneUrl="ssh://git@github.com/sdelquin/blog.git").clone_host_keys == GITHUB_HOST_KEYS


def test_accepted_values() -> None:
    s = load(
        clientMaxBodySize="512k",
        gunicornWorkers="4",
        backups="True",
        manageDns="FALSE",
        dependencies="requirements",
        image="ubuntu-24.04",
        location="hil",
        serverType="cax11",
        adminSshKeys=[ed25519_public("admin", "me@laptop"), rsa_public(2048), ecdsa_public()],
        djangoEnv=["TIME_ZONE=Atlantic/Canary", "DATABASE_URL=postgres://u:p@db/blog?sslmode=require"],
        wsgiApplication="config.wsgi:app",
        branch="release/2.x",
    )
    assert s.client_max_body_size == "512k"
    assert s.gunicorn_workers == 4
    assert s.server == HetznerServer(
        "cax11",
        "ubuntu-24.04",
        "hil",
        True,
        (ed25519_public("admin", "me@laptop"), rsa_public(2048), ecdsa_public()),
    )
    assert s.manage_dns is False
    assert s.django_env == (
        ("TIME_ZONE", "Atlantic/Canary"),
        ("DATABASE_URL", "postgres://u:p@db/blog?sslmode=require"),
    )
    assert (s.wsgi_application, s.branch, s.dependencies) == ("config.wsgi:app", "release/2.x", "requirements")


def test_release_settings_accept_their_documented_values() -> None:
    s = load(keepReleases="1", healthCheckPath="/health/?full=1&x=%20", sharedPaths=[])
    assert (s.static_url, s.media_url) == ("/static/", "/media/")  # the defaults
    assert (load(staticUrl="/assets/v2/", mediaUrl="/uploads/").static_url, load(mediaUrl="/uploads/").media_url) == (
        "/assets/v2/",
        "/uploads/",
    )
    assert (s.keep_releases, s.health_check_path, s.shared_paths) == (1, "/health/?full=1&x=%20", ())
    s = load(keepReleases="12", sharedPaths=["media", "data/uploads", "db.sqlite3", "private.d/keys", ".cache"])
    assert s.keep_releases == 12
    assert s.shared_paths == ("media", "data/uploads", "db.sqlite3", "private.d/keys", ".cache")
    # Names that only start like a shared one are not inside it; only whole path parts count.
    assert load(sharedPaths=["media", "media-archive", "staticfiles"]).shared_paths == (
        "media",
        "media-archive",
        "staticfiles",
    )


def test_database_settings_accept_their_documented_values() -> None:
    s = load()
    assert s.database == "sqlite" and s.database_url == "sqlite:////home/blog/blog/shared/db.sqlite3"
    assert s.database_env == (("DATABASE_URL", s.database_url),)
    s = load(database="postgresql", appName="my-blog", user="web")
    assert s.database == "postgresql" and s.database_name == "my-blog"
    assert s.database_url == "postgres:///my-blog?host=/var/run/postgresql"
    env = dict(s.database_env)
    assert env["PGHOST"] == env["DB_HOST"] == env["POSTGRES_HOST"] == "/var/run/postgresql"
    assert env["PGDATABASE"] == env["DB_NAME"] == env["POSTGRES_DB"] == "my-blog"
    # Peer authentication: the role is the Unix user's name.
    assert env["PGUSER"] == env["DB_USER"] == env["POSTGRES_USER"] == "web"
    assert not any("PASSWORD" in name for name in env)


def test_offsite_settings_accept_their_documented_values() -> None:
    assert load().offsite is None
    s = load(**OFFSITE, appName="shop")
    assert s.offsite is not None
    o = s.offsite.sftp
    assert s.offsite.s3 is None
    assert (o.host, o.port, o.user, o.path, s.offsite.keep_daily, s.offsite.keep_weekly) == (
        "u123456.your-storagebox.de",
        23,
        "u123456",
        "django-vps/shop",
        7,
        4,
    )
    assert s.offsite.repository == "sftp:u123456@u123456.your-storagebox.de:django-vps/shop"
    assert o.known_host == f"[u123456.your-storagebox.de]:23 {ed25519_public('storage-box')}"
    assert s.offsite.password is None  # generated for the stack
    keyscan = f"[u123456.your-storagebox.de]:23 {ed25519_public('storage-box')}"
    assert (
        load(**{**OFFSITE, "offsiteSftpHostKey": keyscan, "offsiteSftpPath": "backups/shop"}).offsite.sftp.path
        == "backups/shop"
    )


def test_s3_offsite_settings_accept_their_documented_values() -> None:
    s = load(**S3, appName="shop")
    assert s.offsite is not None and s.offsite.sftp is None
    o = s.offsite.s3
    assert (o.endpoint, o.bucket, o.path, o.region) == (
        "https://fsn1.your-objectstorage.com",
        "shop-backups",
        "django-vps/shop",
        "",
    )
    assert s.offsite.repository == "s3:https://fsn1.your-objectstorage.com/shop-backups/django-vps/shop"
    assert isinstance(o.access_key_id, pulumi.Output) and isinstance(o.secret_access_key, pulumi.Output)
    other = load(
        **{
            **S3,
            "offsiteS3Endpoint": "https://198.51.100.1:9000/",
            "offsiteS3Path": "b/shop",
            "offsiteS3Region": "fsn1",
        }
    ).offsite
    assert other.repository == "s3:https://198.51.100.1:9000/shop-backups/b/shop"
    assert other.s3.region == "fsn1"


def test_local_retention_is_by_day_and_by_week() -> None:
    s = load()
    assert (s.backup_keep_daily, s.backup_keep_weekly) == (7, 4)
    s = load(backupKeepDaily="3", backupKeepWeekly="0")
    assert (s.backup_keep_daily, s.backup_keep_weekly) == (3, 0)
    # The engine passes Pulumi.yaml's default of the old setting when it is unset (seen on the real CLI).
    assert load(backupKeep="0").backup_keep_daily == 7


def test_hardening_settings_accept_their_documented_values() -> None:
    s = load(adminUser="ops", hsts="false", hostFirewall="FALSE", fail2ban="False")
    assert (s.server.admin_user, s.login_user) == ("ops", "ops")
    assert (s.hsts, s.host_firewall, s.fail2ban) == (False, False, False)
    s = load(adminUser="_admin-2", hsts="true", hostFirewall="True", fail2ban="TRUE")
    assert s.login_user == "_admin-2"
    assert (s.hsts, s.host_firewall, s.fail2ban) == (True, True, True)
    # The switches apply to an existing host too (its only firewall may be this one).
    s = load(**existing_host(hostFirewall="false", fail2ban="false", hsts="false"))
    assert (s.hsts, s.host_firewall, s.fail2ban) == (False, False, False)


def test_existing_host_logs_in_as_existing_host_user() -> None:
    assert load(**existing_host()).login_user == "root"
    assert load(**existing_host(existingHostUser="deploy")).login_user == "deploy"
    # adminUser at its default is fine (Pulumi.prod.yaml-style stacks may spell it out).
    assert load(**existing_host(adminUser="admin")).login_user == "root"


def test_existing_host_mode() -> None:
    s = load(**existing_host(existingHostUser="deploy", image="debian-13"))
    assert s.server is None
    host = s.existing_host
    assert host is not None
    assert (host.address, host.user, host.host_key, host.image) == (
        "203.0.113.10",
        "deploy",
        ed25519_public("existing-host"),
        "debian-13",
    )
    assert s.image == "debian-13"
    assert isinstance(host.private_key, pulumi.Output)


def test_existing_host_key_in_known_hosts_form_is_reduced_to_the_key() -> None:
    s = load(**existing_host(existingHostKey=f"203.0.113.10 {ed25519_public('existing-host')}"))
    assert s.existing_host.host_key == ed25519_public("existing-host")


def test_server_settings_at_their_defaults_are_fine_with_existing_host() -> None:
    # Pulumi.prod.yaml spells out serverType/location/backups at their defaults.
    s = load(**existing_host(serverType="cx23", location="fsn1", backups="false", adminSshKeys=[], adminUser="admin"))
    assert s.server is None and s.existing_host is not None


def test_secrets_are_outputs_marked_secret() -> None:
    s = load(
        djangoSecretKey="x" * 50,
        djangoSecretEnv=["EMAIL_HOST_PASSWORD=pw"],
        **{"github:token": "ghp_token"},
    )
    assert isinstance(s.django_secret_key, pulumi.Output)
    assert isinstance(s.github_token, pulumi.Output)
    assert [name for name, _ in s.django_secret_env] == ["EMAIL_HOST_PASSWORD"]
    assert all(isinstance(value, pulumi.Output) for _, value in s.django_secret_env)


# Every validation rule, each with malformed values.

RSA_1024 = "rsa-1024"
RSA_2040 = "rsa-2040"
GARBAGE_PRIVATE = "not-a-key-but-a-SeCrEt-passphrase-42"
SECRET_VALUE = "hunter2-SeCrEt-VaLuE"


def _key(value: str) -> str:
    return {RSA_1024: rsa_public(1024), RSA_2040: rsa_public(2040)}.get(value, value)


# (overrides, setting named, value the message must show (None: nothing to show), what is accepted)
BAD: list[Any] = [
    # domain
    ({"domain": ""}, "domain", None, "blog.com"),
    ({"domain": "bücher.com"}, "domain", "bücher.com", "punycode"),
    ({"domain": "Blog.com"}, "domain", "Blog.com", "lowercase"),
    ({"domain": "blog.com."}, "domain", "blog.com.", "leave the trailing dot out"),
    ({"domain": "https://blog.com"}, "domain", "https://blog.com", "bare domain"),
    ({"domain": "blog.com:8000"}, "domain", "blog.com:8000", "bare domain"),
    ({"domain": "blog.com/admin"}, "domain", "blog.com/admin", "bare domain"),
    ({"domain": "localhost"}, "domain", "localhost", "at least one dot"),
    ({"domain": "192.168.1.10"}, "domain", "192.168.1.10", "give a domain name"),
    ({"domain": "-blog.com"}, "domain", "-blog.com", "letters, digits or inner hyphens"),
    ({"domain": "my_blog.com"}, "domain", "my_blog.com", "letters, digits or inner hyphens"),
    ({"domain": "blog..com"}, "domain", "blog..com", "letters, digits or inner hyphens"),
    ({"domain": "my blog.com"}, "domain", "my blog.com", "letters, digits or inner hyphens"),
    ({"domain": "a" * 250 + ".com"}, "domain", "a" * 250 + ".com", "fully qualified"),
    ({"domain": "co.uk"}, "domain", "co.uk", "domain you own"),
    # repository
    (
        {"repository": "https://github.com/sdelquin/blog"},
        "repository",
        "https://github.com/sdelquin/blog",
        "owner/name",
    ),
    (
        {"repository": "git@github.com:sdelquin/blog.git"},
        "repository",
        "git@github.com:sdelquin/blog.git",
        "owner/name",
    ),
    ({"repository": "sdelquin/blog.git"}, "repository", "sdelquin/blog.git", "no .git"),
    ({"repository": "sdelquin"}, "repository", "sdelquin", "owner/name"),
    ({"repository": "sdelquin/blog/tree"}, "repository", "sdelquin/blog/tree", "owner/name"),
    ({"repository": "sdelquin/.."}, "repository", "sdelquin/..", "owner/name"),
    ({"repository": "-sdelquin/blog"}, "repository", "-sdelquin/blog", "owner/name"),
    ({"repository": ""}, "repository", None, "owner/name"),
    # branch
    ({"branch": "-main"}, "branch", "-main", "e.g. main"),
    ({"branch": "feature..x"}, "branch", "feature..x", "e.g. main"),
    ({"branch": "feature/"}, "branch", "feature/", "e.g. main"),
    ({"branch": "my branch"}, "branch", "my branch", "e.g. main"),
    # cloneUrl / cloneHostKeys
    (
        {"cloneUrl": "https://github.com/sdelquin/blog.git"},
        "cloneUrl",
        "https://github.com/sdelquin/blog.git",
        "user@host:path.git",
    ),
    ({"cloneUrl": "github.com/sdelquin/blog"}, "cloneUrl", "github.com/sdelquin/blog", "ssh://user@host"),
    ({"cloneUrl": "git@gitlab.com:me/blog.git"}, "cloneHostKeys", "gitlab.com", "known_hosts lines"),
    ({"cloneUrl": "ssh://git@git.example.org/me/blog.git"}, "cloneHostKeys", "git.example.org", "ssh-keyscan"),
    (
        {"cloneHostKeys": ["github.com ssh-ed25519"]},
        "cloneHostKeys",
        "github.com ssh-ed25519",
        "<host> <key-type> <base64-key>",
    ),
    (
        {"cloneHostKeys": ["github.com ssh-ed25519 bm90LWEta2V5"]},
        "cloneHostKeys",
        "ssh-ed25519 bm90LWEta2V5",
        "OpenSSH line",
    ),
    (
        {"cloneHostKeys": "github.com ssh-ed25519 AAAA"},
        "cloneHostKeys",
        "github.com ssh-ed25519 AAAA",
        "list of strings",
    ),
    # appName / user
    ({"appName": ".."}, "appName", "..", "starting with a letter"),
    ({"appName": "my app"}, "appName", "my app", "1-32 of a-z"),
    ({"appName": "Blog"}, "appName", "Blog", "1-32 of a-z"),
    ({"appName": "b" * 33}, "appName", "b" * 33, "1-32 of a-z"),
    ({"appName": "1blog"}, "appName", "1blog", "starting with a letter"),
    ({"appName": "blog.site"}, "appName", "blog.site", "1-32 of a-z"),
    ({"repository": "sdelquin/_blog"}, "appName", "_blog", "set appName"),
    ({"repository": "sdelquin/2048"}, "appName", "2048", "set appName"),
    ({"user": "root"}, "user", "root", "dedicated unprivileged user"),
    ({"user": "Web User"}, "user", "Web User", "1-32 of a-z"),
    ({"user": "9web"}, "user", "9web", "starting with a letter or '_'"),
    ({"user": "w" * 33}, "user", "w" * 33, "1-32 of a-z"),
    # wsgiApplication / dependencies / uvGroup
    ({"wsgiApplication": "main.wsgi"}, "wsgiApplication", "main.wsgi", "module.path:callable"),
    (
        {"wsgiApplication": "main/wsgi.py:application"},
        "wsgiApplication",
        "main/wsgi.py:application",
        "module.path:callable",
    ),
    (
        {"wsgiApplication": "main.wsgi:application()"},
        "wsgiApplication",
        "main.wsgi:application()",
        "e.g. main.wsgi:application",
    ),
    (
        {"wsgiApplication": "1main.wsgi:application"},
        "wsgiApplication",
        "1main.wsgi:application",
        "module.path:callable",
    ),
    ({"dependencies": "pip"}, "dependencies", "pip", "auto, uv, poetry, pipenv, requirements"),
    ({"dependencies": "UV"}, "dependencies", "UV", "auto, uv, poetry, pipenv, requirements"),
    ({"uvGroup": "prod"}, "uvGroup", "prod", "replaced by dependencyGroups"),
    ({"dependencyGroups": ["-prod"]}, "dependencyGroups", "-prod", "e.g. prod"),
    ({"dependencyGroups": ["prod dev"]}, "dependencyGroups", "prod dev", "letters, digits"),
    ({"dependencyExtras": ["a;b"]}, "dependencyExtras", "a;b", "an extra's name"),
    ({"requirementsFile": "../requirements.txt"}, "requirementsFile", "../requirements.txt", "inside the repository"),
    ({"requirementsFile": "-r.txt"}, "requirementsFile", "-r.txt", "inside the repository"),
    ({"settingsOverlaySkip": ["INSTALLED_APPS"]}, "settingsOverlaySkip", "INSTALLED_APPS", "one of ALLOWED_HOSTS"),
    ({"settingsOverlay": "maybe"}, "settingsOverlay", "maybe", "true or false"),
    ({"failOnDebug": "1"}, "failOnDebug", "1", "true or false"),
    ({"processes": '{"Worker": "rq worker"}'}, "processes", "Worker", "a-z first"),
    ({"processes": '{"worker": ""}'}, "processes", "worker", "the command is empty"),
    ({"processes": '{"worker": "rq \'worker"}'}, "processes", "worker", "does not split into words"),
    ({"processes": '{"worker": "--queue x"}'}, "processes", "--queue", "starts with its program"),
    ({"processes": '["rq worker"]'}, "processes", "rq worker", "a map of names to strings"),
    ({"processStopSeconds": "0"}, "processStopSeconds", "0", "1 or more"),
    ({"redis": "on"}, "redis", "on", "true or false"),
    ({"server": "uvicorn"}, "server", "uvicorn", "wsgi, asgi"),
    ({"asgiApplication": "main.asgi"}, "asgiApplication", "main.asgi", "module.path:callable"),
    ({"schedule": '[{"name": "x", "on": "daily"}]'}, "schedule", "item 0", "one of command"),
    ({"schedule": '[{"name": "X", "on": "daily", "command": "c"}]'}, "schedule", "X", "a-z first"),
    ({"schedule": '[{"name": "x", "on": "daily; rm", "command": "c"}]'}, "schedule", "daily; rm", "calendar"),
    (
        {"schedule": '[{"name": "x", "on": "daily", "command": "c", "run": "d"}]'},
        "schedule",
        "item 0",
        "one of command",
    ),
    (
        {"schedule": '[{"name": "x", "on": "daily", "command": "c"}, {"name": "x", "on": "hourly", "run": "d"}]'},
        "schedule",
        "x",
        "given twice",
    ),
    ({"schedule": '["daily clearsessions"]'}, "schedule", "daily clearsessions", "list of maps"),
    ({"schedule": "daily clearsessions"}, "schedule", "daily clearsessions", "list of maps"),  # not JSON at all
    ({"redisMaxMemory": "64 mb"}, "redisMaxMemory", "64 mb", "e.g. 64mb"),
    ({"redisMaxMemory": "lots"}, "redisMaxMemory", "lots", "kb, mb or gb"),
    ({"redisEvictionPolicy": "lru"}, "redisEvictionPolicy", "lru", "allkeys-lru, allkeys-lfu"),
    ({"redis": "true", "djangoEnv": '["REDIS_URL=redis://x"]'}, "djangoEnv", "REDIS_URL", "set by the program itself"),
    # integers
    ({"gunicornWorkers": "-1"}, "gunicornWorkers", "-1", "0 or more"),
    ({"gunicornWorkers": "two"}, "gunicornWorkers", "two", "whole number"),
    ({"gunicornWorkers": "2.5"}, "gunicornWorkers", "2.5", "whole number"),
    ({"logSize": "0"}, "logSize", "0", "1 or more"),
    ({"logSize": "-2"}, "logSize", "-2", "1 or more"),
    ({"logSize": "big"}, "logSize", "big", "whole number"),
    ({"logRotate": "0"}, "logRotate", "0", "1 or more"),
    ({"logRotate": "-1"}, "logRotate", "-1", "1 or more"),
    # booleans
    ({"backups": "yes"}, "backups", "yes", "true or false"),
    ({"replaceServer": "yes"}, "replaceServer", "yes", "true or false"),
    ({"manageDns": "1"}, "manageDns", "1", "true or false"),
    ({"createDnsZone": "on"}, "createDnsZone", "on", "true or false"),
    ({"deployWorkflow": "no"}, "deployWorkflow", "no", "true or false"),
    ({"hsts": "yes"}, "hsts", "yes", "true or false"),
    ({"hsts": ""}, "hsts", "''", "true or false"),
    ({"hostFirewall": "on"}, "hostFirewall", "on", "true or false"),
    ({"hostFirewall": "0"}, "hostFirewall", "0", "true or false"),
    ({"fail2ban": "1"}, "fail2ban", "1", "true or false"),
    ({"fail2ban": "disabled"}, "fail2ban", "disabled", "true or false"),
    # the data volume
    ({"dataVolume": "5"}, "dataVolume", "5", "10 to 10240"),
    ({"dataVolume": "20000"}, "dataVolume", "20000", "10 to 10240"),
    ({"dataVolume": "-10"}, "dataVolume", "-10", "or 0 for no volume"),
    ({"dataVolume": "10GB"}, "dataVolume", "10GB", "whole number"),
    ({"dataVolume": "10", "dataVolumeId": "-3"}, "dataVolumeId", "-3", "above 0"),
    ({"dataVolumeId": "vol-1"}, "dataVolumeId", "vol-1", "whole number"),
    ({"dataVolumeKeep": "false"}, "dataVolumeKeep", None, "set dataVolume too"),
    ({"dataVolume": "10", "dataVolumeKeep": "maybe"}, "dataVolumeKeep", "maybe", "true or false"),
    (existing_host(dataVolume="10"), "dataVolume", "10", "unset one of the two"),
    (existing_host(dataVolumeId="4711"), "dataVolumeId", "4711", "unset one of the two"),
    (existing_host(dataVolumeKeep="false"), "dataVolumeKeep", "False", "unset one of the two"),
    (
        {"dataVolume": "10", "logsDir": "/srv/django-vps-data/other/logs"},
        "logsDir",
        "other",
        "/srv/django-vps-data/blog/",
    ),
    # the admin user
    ({"adminUser": "root"}, "adminUser", "root", "no system account"),
    ({"adminUser": "www-data"}, "adminUser", "www-data", "no system account"),
    ({"adminUser": "sshd"}, "adminUser", "sshd", "no system account"),
    ({"adminUser": "Admin"}, "adminUser", "Admin", "a unix user name (a-z, 0-9, '_', '-')"),
    ({"adminUser": "9admin"}, "adminUser", "9admin", "a unix user name (a-z, 0-9, '_', '-')"),
    ({"adminUser": "my admin"}, "adminUser", "my admin", "a unix user name (a-z, 0-9, '_', '-')"),
    ({"adminUser": "a" * 33}, "adminUser", "a" * 33, "a unix user name (a-z, 0-9, '_', '-')"),
    ({"adminUser": ""}, "adminUser", "''", "a unix user name (a-z, 0-9, '_', '-')"),
    ({"adminUser": "blog"}, "adminUser", "blog", "the two must differ"),
    ({"user": "web", "adminUser": "web"}, "adminUser", "web", "the two must differ"),
    # the derived app user meets the default admin user
    ({"repository": "sdelquin/admin"}, "adminUser", "admin", "the two must differ"),
    # the server
    ({"serverType": "CX23"}, "serverType", "CX23", "e.g. cx23"),
    ({"serverType": "cx1"}, "serverType", "cx1", "e.g. cx23"),
    ({"serverType": "large"}, "serverType", "large", "e.g. cx23"),
    ({"image": "debian-11"}, "image", "debian-11", "debian-12, debian-13, ubuntu-24.04"),
    ({"image": "centos"}, "image", "centos", "debian-12, debian-13, ubuntu-24.04"),
    ({"location": "fra1"}, "location", "fra1", "fsn1, nbg1, hel1, ash, hil, sin"),
    ({"location": "FSN1"}, "location", "FSN1", "fsn1, nbg1, hel1, ash, hil, sin"),
    ({"adminSshKeys": ["ssh-ed25519 notakey"]}, "adminSshKeys", "ssh-ed25519 notakey", "OpenSSH line"),
    ({"adminSshKeys": ["me@laptop"]}, "adminSshKeys", "me@laptop", "OpenSSH line"),
    ({"adminSshKeys": [RSA_1024]}, "adminSshKeys", "ssh-rsa", "2048 bits or more"),
    ({"adminSshKeys": [RSA_2040]}, "adminSshKeys", "ssh-rsa", "2048 bits or more"),
    (
        {"adminSshKeys": "ssh-ed25519 AAAAC3Nza me@laptop"},
        "adminSshKeys",
        "ssh-ed25519 AAAAC3Nza me@laptop",
        "list of strings",
    ),
    ({"adminSshKeys": "[1, 2]"}, "adminSshKeys", "[1, 2]", "list of strings"),
    ({"adminSshKeys": '{"key": "ssh-ed25519 AAAA"}'}, "adminSshKeys", '{"key": "ssh-ed25519 AAAA"}', "list of strings"),
    # existing host
    (existing_host(serverType="cx33"), "serverType", "cx33", "unset one of the two"),
    (existing_host(location="nbg1"), "location", "nbg1", "unset one of the two"),
    (existing_host(backups="true"), "backups", "True", "unset one of the two"),
    (existing_host(replaceServer="true"), "replaceServer", "True", "unset one of the two"),
    (
        existing_host(adminSshKeys=[ed25519_public("admin")]),
        "adminSshKeys",
        ed25519_public("admin"),
        "unset one of the two",
    ),
    (existing_host(existingHost="not a host!"), "existingHost", "not a host!", "IP address nor a hostname"),
    (
        existing_host(existingHost="https://203.0.113.10"),
        "existingHost",
        "https://203.0.113.10",
        "IP address nor a hostname",
    ),
    (existing_host(existingHostUser="Deploy User"), "existingHostUser", "Deploy User", "passwordless sudo"),
    (existing_host(existingHostUser="blog"), "existingHostUser", "blog", "another user with passwordless sudo"),
    (
        existing_host(user="deploy", existingHostUser="deploy"),
        "existingHostUser",
        "deploy",
        "another user with passwordless sudo",
    ),
    (existing_host(adminUser="ops"), "adminUser", "ops", "unset one of the two"),
    (existing_host(adminUser="root"), "adminUser", "root", "unset one of the two"),
    (existing_host(existingHostKey=None), "existingHostKey", None, "ssh-keyscan"),
    (existing_host(existingHostKey="ssh-ed25519 garbage"), "existingHostKey", "ssh-ed25519 garbage", "OpenSSH line"),
    (existing_host(existingHostKey=RSA_1024), "existingHostKey", "ssh-rsa", "2048 bits or more"),
    (existing_host(existingHostPrivateKey=None), "existingHostPrivateKey", None, "--secret"),
    # email / ACME / nginx
    ({"letsencryptEmail": "admin"}, "letsencryptEmail", "admin", "name@example.com"),
    ({"letsencryptEmail": "admin@blog"}, "letsencryptEmail", "admin@blog", "name@example.com"),
    ({"letsencryptEmail": "ad min@blog.com"}, "letsencryptEmail", "ad min@blog.com", "name@example.com"),
    (
        {"acmeServer": "http://acme.example/directory"},
        "acmeServer",
        "http://acme.example/directory",
        "https:// ACME directory URL",
    ),
    (
        {"acmeServer": "ftp://acme.example/directory"},
        "acmeServer",
        "ftp://acme.example/directory",
        "production, staging",
    ),
    ({"acmeServer": "prod"}, "acmeServer", "prod", "production, staging"),
    ({"acmeServer": "https://"}, "acmeServer", "https://", "https:// ACME directory URL"),
    ({"clientMaxBodySize": "0"}, "clientMaxBodySize", "0", "e.g. 10M"),
    ({"clientMaxBodySize": "0k"}, "clientMaxBodySize", "0k", "positive number"),
    ({"clientMaxBodySize": "10MB"}, "clientMaxBodySize", "10MB", "k, m or g"),
    ({"clientMaxBodySize": "-1"}, "clientMaxBodySize", "-1", "positive number"),
    ({"clientMaxBodySize": "1.5M"}, "clientMaxBodySize", "1.5M", "positive number"),
    ({"clientMaxBodySize": "10 M"}, "clientMaxBodySize", "10 M", "k, m or g"),
    # DNS zone
    ({"dnsZone": "other.com"}, "dnsZone", "other.com", "e.g. blog.com"),
    ({"dnsZone": "log.com"}, "dnsZone", "log.com", "e.g. blog.com"),
    ({"domain": "www.blog.com", "dnsZone": "shop.blog.com"}, "dnsZone", "shop.blog.com", "e.g. blog.com"),
    ({"dnsZone": "Blog.com"}, "dnsZone", "Blog.com", "lowercase"),
    # logs
    ({"logsDir": "logs"}, "logsDir", "logs", "absolute path"),
    ({"logsDir": "/home/blog/../../etc"}, "logsDir", "/home/blog/../../etc", "no '..'"),
    ({"logsDir": "/home/blog/my logs"}, "logsDir", "/home/blog/my logs", "absolute path"),
    ({"logFilename": "logs/blog.log"}, "logFilename", "logs/blog.log", "letters, digits"),
    ({"logFilename": ".."}, "logFilename", "..", "letters, digits"),
    ({"logFilename": "blog log.txt"}, "logFilename", "blog log.txt", "letters, digits"),
    ({"logLevel": "TRACE"}, "logLevel", "TRACE", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ({"logLevel": "error"}, "logLevel", "error", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    # releases
    ({"keepReleases": "0"}, "keepReleases", "0", "1 or more"),
    ({"keepReleases": "-2"}, "keepReleases", "-2", "1 or more"),
    ({"keepReleases": "five"}, "keepReleases", "five", "whole number"),
    ({"keepReleases": "2.5"}, "keepReleases", "2.5", "whole number"),
    ({"healthCheckPath": ""}, "healthCheckPath", "''", "start with /"),
    ({"healthCheckPath": "health/"}, "healthCheckPath", "health/", "start with /"),
    ({"healthCheckPath": "https://blog.com/"}, "healthCheckPath", "https://blog.com/", "start with /"),
    # staticUrl / mediaUrl: URL paths nginx serves files at, apart from each other
    ({"staticUrl": "static/"}, "staticUrl", "static/", "start and end with /"),
    ({"mediaUrl": "/uploads"}, "mediaUrl", "/uploads", "start and end with /"),
    ({"mediaUrl": "/"}, "mediaUrl", "'/'", "start and end with /"),
    ({"mediaUrl": "/up loads/"}, "mediaUrl", "/up loads/", "start and end with /"),
    ({"mediaUrl": "/a/../b/"}, "mediaUrl", "/a/../b/", "start and end with /"),
    ({"mediaUrl": "/x/;alias /etc/;/"}, "mediaUrl", "/x/;alias /etc/;/", "letters, digits"),
    ({"mediaUrl": "https://cdn.blog.com/"}, "mediaUrl", "https://cdn.blog.com/", "start and end with /"),
    ({"mediaUrl": "/static/media/"}, "mediaUrl", "/static/media/", "overlap"),
    ({"staticUrl": "/media/"}, "mediaUrl", "/media/", "overlap"),
    ({"healthCheckPath": "/my health/"}, "healthCheckPath", "/my health/", "e.g. / or /health/"),
    ({"healthCheckPath": "/$(id)"}, "healthCheckPath", "/$(id)", "e.g. / or /health/"),
    ({"healthCheckPath": "/health/\n/admin/"}, "healthCheckPath", "/health/\\n/admin/", "one line"),
    ({"sharedPaths": ["../uploads"]}, "sharedPaths", "../uploads", "relative path inside the project"),
    ({"sharedPaths": ["media/../../etc"]}, "sharedPaths", "media/../../etc", "no '.', '..'"),
    ({"sharedPaths": ["/srv/media"]}, "sharedPaths", "/srv/media", "relative path inside the project"),
    ({"sharedPaths": ["."]}, "sharedPaths", "'.'", "relative path inside the project"),
    ({"sharedPaths": [""]}, "sharedPaths", "''", "relative path inside the project"),
    ({"sharedPaths": ["media/"]}, "sharedPaths", "media/", "relative path inside the project"),
    ({"sharedPaths": ["my media"]}, "sharedPaths", "my media", "relative path inside the project"),
    ({"sharedPaths": ["media/*"]}, "sharedPaths", "media/*", "relative path inside the project"),
    ({"sharedPaths": ["./static"]}, "sharedPaths", "./static", "no '.', '..'"),
    ({"sharedPaths": ["-rf"]}, "sharedPaths", "-rf", "leading '-'"),
    ({"sharedPaths": [".env"]}, "sharedPaths", ".env", "any other project path"),
    ({"sharedPaths": [".venv"]}, "sharedPaths", ".venv", "any other project path"),
    ({"sharedPaths": ["static"]}, "sharedPaths", "static", "any other project path"),
    ({"sharedPaths": ["static/img"]}, "sharedPaths", "static/img", "any other project path"),
    ({"sharedPaths": ["node_modules"]}, "sharedPaths", "node_modules", "any other project path"),
    ({"sharedPaths": ["REVISION"]}, "sharedPaths", "REVISION", "any other project path"),
    ({"sharedPaths": [".git"]}, "sharedPaths", ".git", "any other project path"),
    ({"sharedPaths": ["media", "db.sqlite3", "media"]}, "sharedPaths", "media", "give each path once"),
    ({"sharedPaths": ["media", "media/avatars"]}, "sharedPaths", "media/avatars", "list only 'media'"),
    ({"sharedPaths": ["data/uploads", "data"]}, "sharedPaths", "data/uploads", "list only 'data'"),
    ({"sharedPaths": "media"}, "sharedPaths", "media", "list of strings"),
    # backups
    ({"backupSchedule": "daily; rm -rf /"}, "backupSchedule", "daily; rm -rf /", "systemd calendar expression"),
    ({"backupSchedule": ""}, "backupSchedule", "''", "e.g. daily, hourly"),
    ({"backupSchedule": "%h daily"}, "backupSchedule", "%h daily", "OnCalendar"),
    ({"backupKeep": "14"}, "backupKeep", "14", "backupKeepDaily and backupKeepWeekly"),
    ({"backupKeepDaily": "0"}, "backupKeepDaily", "0", "1 or more"),
    ({"backupKeepWeekly": "-1"}, "backupKeepWeekly", "-1", "0 or more"),
    ({**OFFSITE, **S3}, "offsiteS3Endpoint", None, "both set"),
    ({**S3, "offsiteS3Endpoint": "http://fsn1.your-objectstorage.com"}, "offsiteS3Endpoint", "http://", "https://"),
    ({**S3, "offsiteS3Endpoint": "https://fsn1.example.com/bucket"}, "offsiteS3Endpoint", "/bucket", "no path"),
    ({**S3, "offsiteS3Endpoint": "https://bad host"}, "offsiteS3Endpoint", "bad host", "https://host"),
    ({**S3, "offsiteS3Endpoint": "https://h.example.com:99999"}, "offsiteS3Endpoint", "99999", "https://host:port"),
    ({**S3, "offsiteS3Bucket": ""}, "offsiteS3Bucket", "''", "bucket name"),
    ({**S3, "offsiteS3Bucket": "My_Bucket"}, "offsiteS3Bucket", "My_Bucket", "3 to 63"),
    ({**S3, "offsiteS3Path": "../x"}, "offsiteS3Path", "../x", "prefix in the bucket"),
    ({**S3, "offsiteS3Path": "/abs"}, "offsiteS3Path", "/abs", "prefix in the bucket"),
    ({**S3, "offsiteS3Region": "Fsn 1"}, "offsiteS3Region", "Fsn 1", "e.g. fsn1"),
    ({**S3, "offsiteS3AccessKeyId": ""}, "offsiteS3AccessKeyId", None, "required with offsiteS3Endpoint"),
    ({**S3, "offsiteS3AccessKeyId": "AKIA;id"}, "offsiteS3AccessKeyId", None, "letters and digits"),
    ({"offsiteS3Bucket": "b-backups"}, "offsiteS3Bucket", None, "set offsiteS3Endpoint too"),
    ({"offsiteS3Region": "fsn1"}, "offsiteS3Region", None, "set offsiteS3Endpoint too"),
    ({"offsiteS3AccessKeyId": "AKIAHETZNER0EXAMPLE1"}, "offsiteS3AccessKeyId", None, "set offsiteS3Endpoint"),
    ({"offsiteS3Path": "x"}, "offsiteS3Path", None, "set offsiteS3Endpoint too"),
    # off-site backups
    ({"offsiteSftpHost": "bad host"}, "offsiteSftpHost", "bad host", "neither an IP address nor a hostname"),
    ({**OFFSITE, "offsiteSftpPort": "70000"}, "offsiteSftpPort", "70000", "1 to 65535"),
    ({**OFFSITE, "offsiteSftpUser": "u1;id"}, "offsiteSftpUser", "u1;id", "e.g. u123456"),
    ({**OFFSITE, "offsiteSftpUser": ""}, "offsiteSftpUser", "''", "e.g. u123456"),
    (
        {**OFFSITE, "offsiteSftpPath": "../elsewhere"},
        "offsiteSftpPath",
        "../elsewhere",
        "relative to the SFTP user's home",
    ),
    ({**OFFSITE, "offsiteSftpPath": "/abs"}, "offsiteSftpPath", "/abs", "relative to the SFTP user's home"),
    ({**OFFSITE, "offsiteSftpHostKey": ""}, "offsiteSftpHostKey", None, "ssh-keyscan it once"),
    ({**OFFSITE, "offsiteSftpHostKey": "ssh-ed25519 AAAA"}, "offsiteSftpHostKey", "ssh-ed25519 AAAA", ""),
    ({"offsiteSftpUser": "u123456"}, "offsiteSftpUser", None, "set offsiteSftpHost too"),
    ({**OFFSITE, "offsiteKeepDaily": "0"}, "offsiteKeepDaily", "0", "1 or more"),
    ({**OFFSITE, "offsiteKeepWeekly": "-1"}, "offsiteKeepWeekly", "-1", "0 or more"),
    # database
    ({"database": "postgres"}, "database", "'postgres'", "one of sqlite, postgresql"),
    ({"database": "mysql"}, "database", "'mysql'", "one of sqlite, postgresql"),
    # djangoEnv
    ({"djangoEnv": ["TIME_ZONE"]}, "djangoEnv", "TIME_ZONE", "KEY=value"),
    ({"djangoEnv": ["time_zone=UTC"]}, "djangoEnv", "time_zone=UTC", "A-Z, 0-9 and '_'"),
    ({"djangoEnv": ["1ST=x"]}, "djangoEnv", "1ST=x", "A-Z, 0-9 and '_'"),
    ({"djangoEnv": ["DEBUG=True"]}, "djangoEnv", "DEBUG", "set by the program itself"),
    ({"djangoEnv": ["ALLOWED_HOSTS=*"]}, "djangoEnv", "ALLOWED_HOSTS", "set by the program itself"),
    ({"djangoEnv": ["LOG_LEVEL=DEBUG"]}, "djangoEnv", "LOG_LEVEL", "set by the program itself"),
    ({"djangoEnv": ["SECRET_KEY=abc"]}, "djangoEnv", "SECRET_KEY", "use djangoSecretKey"),
    ({"djangoEnv": ["TIME_ZONE=UTC", "TIME_ZONE=Atlantic/Canary"]}, "djangoEnv", "TIME_ZONE", "given twice"),
    ({"djangoEnv": ["MOTD=line one\nline two"]}, "djangoEnv", "MOTD", "one line"),
    ({"djangoEnv": "TIME_ZONE=UTC"}, "djangoEnv", "TIME_ZONE=UTC", "list of strings"),
    # required
    ({"domain": None}, "domain", None, "pulumi config set domain"),
    ({"repository": None}, "repository", None, "pulumi config set repository"),
    ({"letsencryptEmail": None}, "letsencryptEmail", None, "pulumi config set letsencryptEmail"),
]


def _id(case: tuple[dict[str, Any], str, str | None, str]) -> str:
    overrides, key, _, _ = case
    value = overrides.get(key, next(iter(overrides.values())))
    return f"{key}={str(value)[:30]!r}"


def _resolve(overrides: dict[str, Any]) -> dict[str, Any]:
    resolved = dict(overrides)
    if "adminSshKeys" in resolved and isinstance(resolved["adminSshKeys"], list):
        resolved["adminSshKeys"] = [_key(k) for k in resolved["adminSshKeys"]]
    if resolved.get("existingHostKey") in (RSA_1024, RSA_2040):
        resolved["existingHostKey"] = _key(resolved["existingHostKey"])
    return resolved


def assert_good_message(err: SettingError, key: str, accepted: str) -> str:
    message = str(err)
    assert isinstance(err, pulumi.RunError)
    assert "\n" not in message and "\r" not in message, f"more than one line: {message!r}"
    assert message.startswith(f"django-vps:{key}: "), message
    assert accepted in message, f"does not say what is accepted ({accepted!r}): {message}"
    return message


@pytest.mark.parametrize(("overrides", "key", "shown", "accepted"), BAD, ids=[_id(case) for case in BAD])
def test_bad_value_is_one_clear_line(overrides: dict[str, Any], key: str, shown: str | None, accepted: str) -> None:
    message = assert_good_message(error(_resolve(overrides)), key, accepted)
    if shown is not None:
        assert shown in message, f"does not show the bad value {shown!r}: {message}"


def test_there_are_many_distinct_malformed_configurations() -> None:
    distinct = {json.dumps(_resolve(overrides), sort_keys=True) for overrides, *_ in BAD}
    assert len(distinct) == len(BAD) >= 30
    assert {key for _, key, _, _ in BAD} >= set(settings_module.declared_config()) - {
        "existingHostPrivateKey",  # secret: below
        "djangoSecretEnv",  # secret: below
        "djangoSecretKey",  # secret: below
        "offsiteRepositoryPassword",  # secret: below
        "offsiteS3SecretAccessKey",  # secret: below
    }


# Secret settings: rejected without echoing the secret.

SECRET_BAD: list[Any] = [
    (
        existing_host(existingHostPrivateKey=GARBAGE_PRIVATE),
        "existingHostPrivateKey",
        GARBAGE_PRIVATE,
        "OpenSSH private key",
    ),
    (
        existing_host(existingHostPrivateKey=ed25519_public("existing-login") + " " + GARBAGE_PRIVATE),
        "existingHostPrivateKey",
        GARBAGE_PRIVATE,
        "OpenSSH private key",
    ),
    (
        existing_host(existingHostPrivateKey=encrypted_ed25519_private()),
        "existingHostPrivateKey",
        encrypted_ed25519_private().splitlines()[1],
        "unencrypted",
    ),
    ({"djangoSecretKey": "short-" + SECRET_VALUE}, "djangoSecretKey", SECRET_VALUE, "32 characters"),
    ({**OFFSITE, "offsiteRepositoryPassword": "s3cr3t"}, "offsiteRepositoryPassword", "s3cr3t", "16 characters"),
    ({"offsiteRepositoryPassword": SECRET_VALUE}, "offsiteRepositoryPassword", SECRET_VALUE, "offsiteS3Endpoint too"),
    ({**S3, "offsiteS3SecretAccessKey": "short"}, "offsiteS3SecretAccessKey", "short", "8 to 256"),
    ({**S3, "offsiteS3SecretAccessKey": SECRET_VALUE + " x"}, "offsiteS3SecretAccessKey", SECRET_VALUE, "no space"),
    ({**S3, "offsiteS3SecretAccessKey": ""}, "offsiteS3SecretAccessKey", "wJalrXUtnFEMI", "required with"),
    ({"offsiteS3SecretAccessKey": SECRET_VALUE}, "offsiteS3SecretAccessKey", SECRET_VALUE, "offsiteS3Endpoint too"),
    ({"djangoSecretEnv": [f"SECRET_KEY={SECRET_VALUE}"]}, "djangoSecretEnv", SECRET_VALUE, "use djangoSecretKey"),
    ({"djangoSecretEnv": [f"email_password={SECRET_VALUE}"]}, "djangoSecretEnv", SECRET_VALUE, "KEY=value"),
    ({"djangoSecretEnv": [SECRET_VALUE]}, "djangoSecretEnv", SECRET_VALUE, "KEY=value"),
    ({"djangoSecretEnv": [f"DEBUG={SECRET_VALUE}"]}, "djangoSecretEnv", SECRET_VALUE, "set by the program itself"),
    (
        {"djangoSecretEnv": ["API_TOKEN=first", f"API_TOKEN={SECRET_VALUE}"]},
        "djangoSecretEnv",
        SECRET_VALUE,
        "given twice",
    ),
    ({"djangoSecretEnv": [f"API_TOKEN={SECRET_VALUE}\nmore"]}, "djangoSecretEnv", SECRET_VALUE, "one line"),
    ({"djangoSecretEnv": f"API_TOKEN={SECRET_VALUE}"}, "djangoSecretEnv", SECRET_VALUE, "list of strings"),
]


@pytest.mark.parametrize(
    ("overrides", "key", "secret", "accepted"), SECRET_BAD, ids=[f"{c[1]}-{i}" for i, c in enumerate(SECRET_BAD)]
)
def test_bad_secret_is_rejected_without_showing_it(
    overrides: dict[str, Any], key: str, secret: str, accepted: str
) -> None:
    message = assert_good_message(error(overrides), key, accepted)
    assert secret not in message
    assert secret[:12] not in message


def test_bad_secret_env_entry_names_its_key() -> None:
    message = str(error({"djangoSecretEnv": [f"email_password={SECRET_VALUE}"]}))
    assert "email_password" in message
    message = str(error({"djangoSecretEnv": ["API_TOKEN=a", SECRET_VALUE]}))
    assert "djangoSecretEnv[1]" in message


def test_the_first_bad_setting_stops_loading_before_anything_else() -> None:
    # No partial Settings: a bad value anywhere means load_settings raises, whatever else is fine.
    with pytest.raises(SettingError, match=r"^django-vps:logLevel: "):
        load(logLevel="LOUD", **{"github:token": "ghp_x"})


# The declaration in Pulumi.yaml.

DECLARED = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict}


def _keys_read(values: dict[str, Any]) -> set[str]:
    read: set[str] = set()
    getter = raw_config(values)

    def recording(full_key: str) -> str | None:
        read.add(full_key)
        return getter(full_key)

    load_settings(recording)
    return {key.removeprefix("django-vps:") for key in read if key.startswith("django-vps:")}


def test_pulumi_yaml_declares_every_setting_with_type_and_description() -> None:
    for key, spec in DECLARED.items():
        assert spec.get("type") in TYPES, key
        assert isinstance(spec.get("description"), str) and len(spec["description"]) > 20, key
        if spec["type"] == "array":
            # (schedule is the one list of maps: {name, on, command})
            assert spec.get("items") == {"type": "object" if key == "schedule" else "string"}, key
        if "default" in spec:
            assert type(spec["default"]) is TYPES[spec["type"]], key
    assert {key for key, spec in DECLARED.items() if "default" not in spec} == {
        "domain",
        "repository",
        "letsencryptEmail",
    }


def test_settings_py_reads_exactly_the_declared_settings() -> None:
    read = _keys_read({}) | _keys_read(existing_host())
    assert read == set(DECLARED)
    # And statically: every key settings.py names in a read is declared (covers untaken branches).
    source = (ROOT / "components" / "settings.py").read_text()
    named = set(
        re.findall(
            r"(?:reader\.(?:string|value|explicit|differs_from_default)\("
            r'|_choice\(reader, |_positive\(reader, |_names_list\(reader, )"(\w+)"',
            source,
        )
    )
    named |= set(settings_module.SERVER_ONLY_SETTINGS)
    assert named == set(DECLARED)


def test_every_key_in_the_example_stack_is_declared() -> None:
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    mentioned = set(re.findall(r"django-vps:(\w+)", text))  # set ones and commented-out examples
    assert mentioned, "no django-vps: keys found"
    assert mentioned <= set(DECLARED), mentioned - set(DECLARED)
    used = {key.split(":", 1)[1] for key in yaml.safe_load(text)["config"] if key.startswith("django-vps:")}
    assert used <= set(DECLARED)
    assert {"domain", "repository", "letsencryptEmail"} <= used
