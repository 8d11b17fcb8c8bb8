"""All configuration, read once and validated before any resource exists.

Defaults come from Pulumi.yaml's `config:` block so the declaration and the program never disagree.
Every bad value stops the program with one line naming the setting, the value (never a secret's) and
what is accepted.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import ParseResult, urlparse

import pulumi
import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from publicsuffixlist import PublicSuffixList

from components import sshkeys
from components.encode import CONTROL

PROJECT = "django-vps"
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
# Root-owned trees of the program: scripts (bin) and daemon configuration, outside every home.
OPT_ROOT = "/opt/django-vps"
# Debian's supervisor configuration; supervisorctl is always given it (-c), never left to search
# the working directory first.
SUPERVISOR_CONF = "/etc/supervisor/supervisord.conf"

IMAGES = ("debian-12", "debian-13", "ubuntu-24.04")
LOCATIONS = ("fsn1", "nbg1", "hel1", "ash", "hil", "sin")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEPENDENCY_MODES = ("auto", "uv", "poetry", "pipenv", "requirements")
DATABASES = ("sqlite", "postgresql")
# Debian's PostgreSQL socket directory (postgresql-common's unix_socket_directories, and libpq's default).
POSTGRES_SOCKET_DIR = "/var/run/postgresql"
# What the settings overlay may override (files/django_vps_settings.py `overridable`; a test keeps them equal).
OVERLAY_SETTINGS = (
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_PROXY_SSL_HEADER",
    "DEBUG",
    "SECRET_KEY",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "STATIC_ROOT",
    "STATIC_URL",
    "MEDIA_ROOT",
    "MEDIA_URL",
    "LOGGING",
    "DATABASES",
)
ACME_SERVERS = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
# Published at https://api.github.com/meta (ssh_keys); pinned so the server never trusts on first use.
GITHUB_HOST_KEYS = (
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    "github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEez"
    "OmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=",
    "github.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1aNUkY4"
    "Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmerOBYfNqltV9/hW"
    "CqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkxCflmO+5Z8CSSNY7GidjM"
    "IZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeA"
    "UC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/YkOxJCXmPUWZbhj"
    "pCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/wsjk=",
)
# Settings that describe a Hetzner server: meaningless (so an error) together with existingHost.
SERVER_ONLY_SETTINGS = (
    "serverType",
    "location",
    "backups",
    "adminSshKeys",
    "adminUser",
    "replaceServer",
    "dataVolume",
    "dataVolumeId",
    "dataVolumeKeep",
)
# Where the data volume is mounted (root's mount point): one volume a server, its app's data inside.
DATA_MOUNT = "/srv/django-vps-data"
# Hetzner's limits on a volume's size, in GB.
VOLUME_MIN_GB = 10
VOLUME_MAX_GB = 10240
# Accounts of Debian/Ubuntu base systems and of the packages the program installs: never the app user.
SYSTEM_USERS = frozenset(
    {
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "_apt",
        "messagebus",
        "sshd",
        "systemd-network",
        "systemd-resolve",
        "systemd-timesync",
        "syslog",
        "uuidd",
        "tcpdump",
        "polkitd",
        "ubuntu",
        "debian",
    }
)
# Variables the program writes into Django's .env itself; the user's extra ones may not clash.
MANAGED_ENV = frozenset(
    {
        "SECRET_KEY",
        "DEBUG",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "LOGS_DIR",
        "LOG_FILENAME",
        "LOG_SIZE",
        "LOG_ROTATE",
        "LOG_LEVEL",
        "DJANGO_VPS_PROJECT_SETTINGS",
    }
)

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# A Hetzner label value: at most 63 characters, empty or alphanumeric at both ends, '-', '_', '.' between.
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_GITHUB_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# The stack's GitHub Environment (and its workflow file, deploy-<name>.yml): GitHub takes up to 255
# characters, case-insensitively; Pulumi's own stack names are [A-Za-z0-9_.-], at most 100. Names of
# dots alone are refused: a client resolves them in the URL path (environments/.. is the repository).
_GITHUB_ENVIRONMENT = re.compile(r"^(?!\.+$)[A-Za-z0-9_.-]{1,255}$")
WORKFLOW_DIR = ".github/workflows"
_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_APP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_WSGI = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")
_BODY_SIZE = re.compile(r"^[0-9]{1,6}[kKmMgG]?$")
_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# RFC 5322's dot-atom: the local part's atext (quotes, $ and ` among them: the encoders carry them).
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_SERVER_TYPE = re.compile(r"^(cx|cpx|cax|ccx)[0-9]{2}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# user@host:path, none of them starting with '-' (ssh would read it as an option).
_CLONE_SCP = re.compile(
    r"^(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]*)@(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)"
    r":(?P<path>[A-Za-z0-9_~./][A-Za-z0-9_~./-]*)$"
)
_URL_PATH = re.compile(r"^[A-Za-z0-9_~./%:@+=,?&-]*$")
# Strings longer than this are refused (a key of 16384 bits is 2.8 kB in OpenSSH form).
MAX_LENGTH = 4096
_PRIVATE_KEY_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
_PRIVATE_KEY_END = "\n-----END OPENSSH PRIVATE KEY-----"
# Settings whose value is multi-line by nature; every other one is a single line.
MULTI_LINE_SETTINGS = frozenset({"existingHostPrivateKey"})
# Where a logsDir outside the app directory may be: a tree of our own, /var/log/django-vps/<appName>.
LOGS_ROOT = "/var/log/django-vps"


_GITHUB_BASE_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?")


class SettingError(pulumi.RunError):
    """A bad setting: one line naming it, the bad value and what is accepted."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{PROJECT}:{key}: {problem}")


@dataclass(frozen=True)
class HetznerServer:
    """A new Hetzner Cloud server that the stack creates."""

    server_type: str
    """Hetzner server type, e.g. cx23."""
    image: str
    """One of IMAGES."""
    location: str
    """One of LOCATIONS."""
    backups: bool
    """Hetzner automatic backups on or off."""
    admin_ssh_keys: tuple[str, ...]
    """The user's own public keys, allowed to log in as admin_user."""
    admin_user: str = "admin"
    """The sudo user cloud-init creates; provisioning logs in as it and root login is off."""
    replace_server: bool = False
    """replaceServer: the user confirms, for this run, a new server for a changed location or image."""
    data_volume: DataVolume | None = None
    """The Hetzner Volume holding the app's data, or None (the data is on the server's disk)."""


@dataclass(frozen=True)
class DataVolume:
    """dataVolume, dataVolumeId, dataVolumeKeep: a Hetzner Volume for the app's data."""

    size_gb: int
    """dataVolume: the size asked for; 0 with volume_id means the kept volume's own size."""
    volume_id: int = 0
    """dataVolumeId: a kept volume to attach (imported into the stack); 0 means a new one."""
    keep: bool = True
    """dataVolumeKeep: retained by pulumi destroy and delete-protected at Hetzner."""


@dataclass(frozen=True)
class ExistingHost:
    """A server the user already has: no Hetzner resources; we log in with the user's key."""

    address: str
    """IP address or hostname."""
    user: str
    """Login user: root, or a user with passwordless sudo."""
    host_key: str
    """Pinned SSH host public key, "type base64"."""
    private_key: pulumi.Output[str]
    """Secret: the private key that logs in."""
    image: str
    """The distribution the host runs, one of IMAGES."""


@dataclass(frozen=True)
class LogSettings:
    """The seed's Django logging variables (LOGS_DIR, LOG_FILENAME, LOG_SIZE, LOG_ROTATE, LOG_LEVEL)."""

    directory: str
    filename: str
    size_mb: int
    rotate: int
    level: str


@dataclass(frozen=True)
class ScheduledCommand:
    name: str
    on: str
    """A systemd calendar expression."""
    manage: tuple[str, ...]
    """A management command and its arguments; empty when `run` is given."""
    run: tuple[str, ...]
    """A program in the release and its arguments; empty when `manage` is given."""


@dataclass(frozen=True)
class SftpTarget:
    """A restic repository on an SFTP server (a Hetzner Storage Box)."""

    host: str
    port: int
    user: str
    path: str
    """The repository's directory, relative to the SFTP user's home."""
    host_key: str
    """Pinned SSH host public key, "type base64"."""

    @property
    def repository(self) -> str:
        return f"sftp:{self.user}@{self.host}:{self.path}"

    @property
    def known_host(self) -> str:
        """The known_hosts line ssh pins the server with."""
        host = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{host} {self.host_key}"


@dataclass(frozen=True)
class S3Target:
    """A restic repository in a bucket of S3-compatible storage (Hetzner Object Storage)."""

    endpoint: str
    """https://host[:port], no path."""
    bucket: str
    path: str
    """The repository's prefix in the bucket."""
    region: str
    """Empty: restic asks the bucket's location."""
    access_key_id: pulumi.Output[str]
    """Secret (treated as one though it names the key): reaches the server by stdin only."""
    secret_access_key: pulumi.Output[str]
    """Secret."""

    @property
    def repository(self) -> str:
        return f"s3:{self.endpoint}/{self.bucket}/{self.path}"


@dataclass(frozen=True)
class Offsite:
    """Off-site backups: a restic repository on one target, SFTP or S3."""

    target: SftpTarget | S3Target
    password: pulumi.Output[str] | None
    """Secret: the repository password given; None means generated for the stack."""
    keep_daily: int
    keep_weekly: int

    @property
    def repository(self) -> str:
        return self.target.repository

    @property
    def sftp(self) -> SftpTarget | None:
        return self.target if isinstance(self.target, SftpTarget) else None

    @property
    def s3(self) -> S3Target | None:
        return self.target if isinstance(self.target, S3Target) else None


@dataclass(frozen=True)
class Settings:
    """Every setting of the program, validated. Components receive this, never raw config."""

    domain: str
    """The site's domain."""
    repository: str
    """GitHub owner/name."""
    branch: str
    """Deployed branch."""
    clone_url: str
    """SSH URL the server clones from."""
    clone_host_keys: tuple[str, ...]
    """known_hosts lines for the clone host."""
    app_name: str
    """Names the app directory, socket, supervisor program and log file."""
    user: str
    """Unix user that owns and runs the app."""
    wsgi_application: str
    """module.path:callable for gunicorn; empty: Django's WSGI_APPLICATION."""
    interface: Literal["wsgi", "asgi"]
    """The server setting: gunicorn's sync workers (WSGI), or uvicorn workers (ASGI)."""
    asgi_application: str
    """module.path:callable with server asgi; empty: ASGI_APPLICATION or the asgi module beside WSGI's."""
    dependencies: Literal["auto", "uv", "poetry", "pipenv", "requirements"]
    """How Python dependencies are installed."""
    dependency_groups: tuple[str, ...]
    """uv/poetry groups installed besides the main dependencies; empty: uv's prod group if any."""
    dependency_extras: tuple[str, ...]
    """Extras of the project installed (uv, poetry)."""
    requirements_file: str
    """The requirements file for pip; empty: the first of the usual production ones."""
    settings_overlay: bool
    """Run Django with the production overlay (files/django_vps_settings.py)."""
    settings_overlay_skip: tuple[str, ...]
    """Overrides the overlay leaves alone."""
    fail_on_debug: bool
    """DEBUG on refuses a release (else a warning)."""
    gunicorn_workers: int
    """0 = derived from the server's cores."""
    processes: tuple[tuple[str, tuple[str, ...]], ...]
    """Supervisor programs besides gunicorn: name and argv (split like a shell, run without one)."""
    process_stop_seconds: int
    """supervisor's stopwaitsecs for them."""
    schedule: tuple[ScheduledCommand, ...]
    """Commands run by systemd timers."""
    redis: bool
    """Debian's redis-server on a unix socket; REDIS_URL in the app's environment."""
    redis_max_memory: str
    """maxmemory."""
    redis_eviction_policy: str
    """maxmemory-policy."""
    server: HetznerServer | None
    """Set when the stack creates a Hetzner server."""
    existing_host: ExistingHost | None
    """Set when the stack provisions a server the user already has."""
    manage_dns: bool
    """Create A/AAAA records in Hetzner DNS."""
    dns_zone: str
    """The zone holding the domain."""
    create_dns_zone: bool
    """Create the zone too."""
    letsencrypt_email: str
    """Contact for the ACME account."""
    acme_server: str
    """ACME directory URL."""
    client_max_body_size: str
    """nginx client_max_body_size."""
    logs: LogSettings
    """Django logging settings."""
    django_env: tuple[tuple[str, str], ...]
    """Extra plain variables for Django's .env."""
    django_secret_env: tuple[tuple[str, pulumi.Output[str]], ...]
    """Extra secret variables for Django's .env."""
    django_secret_key: pulumi.Output[str] | None
    """SECRET_KEY when given; None means the stack generates one."""
    deploy_workflow: bool
    """Commit the GitHub Actions deploy workflow into the repository."""
    github_environment: str
    """The stack's GitHub Environment (the stack's name): its secrets and its workflow are the stack's own."""
    keep_releases: int
    """Releases kept on the server for rollback (the live one included)."""
    health_check_path: str
    """Path requested with the site's Host before and after a release goes live."""
    static_url: str
    """Where nginx serves the collected static files (Django's STATIC_URL), e.g. /static/."""
    media_url: str
    """Where nginx serves the uploads (Django's MEDIA_URL), e.g. /media/."""
    shared_paths: tuple[str, ...]
    """Project paths that outlive releases (symlinked into each from shared/)."""
    database: Literal["sqlite", "postgresql"]
    """sqlite: shared/db.sqlite3; postgresql: Debian's server on the host, unix socket, peer auth."""
    backup_schedule: str
    """systemd OnCalendar expression of the backup timer."""
    backup_keep_daily: int
    """Local backups kept: the newest of each of the last N days that have backups."""
    backup_keep_weekly: int
    """...and the newest of each of the last N ISO weeks that have backups (0: none for weeks)."""
    offsite: Offsite | None
    """Off-site backups with restic (SFTP or S3); None when neither offsiteSftpHost nor
    offsiteS3Endpoint is set."""
    hsts: bool
    """Send Strict-Transport-Security."""
    host_firewall: bool
    """nftables on the host: in only 22/80/443 and ICMP."""
    fail2ban: bool
    """fail2ban's sshd jail."""
    github_token: pulumi.Output[str] | None = field(default=None)
    github_base_url: str | None = field(default=None)
    """github:baseUrl, for GitHub Enterprise Server: stack config never reaches an explicit provider
    by itself (None: the SDK's default, GITHUB_BASE_URL or api.github.com)."""
    """Secret: github:token, for the explicit GitHub provider (None: GITHUB_TOKEN from the environment)."""

    @property
    def image(self) -> str:
        return self.server.image if self.server else self.existing_host.image  # type: ignore[union-attr]

    @property
    def login_user(self) -> str:
        """Who the provisioning connection logs in as."""
        return self.server.admin_user if self.server else self.existing_host.user  # type: ignore[union-attr]

    @property
    def repository_owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def repository_name(self) -> str:
        return self.repository.split("/", 1)[1]

    @property
    def home(self) -> str:
        return f"/home/{self.user}"

    @property
    def app_dir(self) -> str:
        return app_dir_of(self.user, self.app_name)

    @property
    def current_dir(self) -> str:
        """The live release: a symlink switched in one step by each deploy."""
        return f"{self.app_dir}/current"

    @property
    def data_volume(self) -> DataVolume | None:
        return self.server.data_volume if self.server else None

    @property
    def data_dir(self) -> str | None:
        """The app's directory on the data volume (the app user's, in the volume's root-owned root)."""
        return data_dir_of(self.app_name) if self.data_volume else None

    @property
    def shared_dir(self) -> str:
        """What outlives releases: .env, media, the database, logs, virtualenvs; on the data volume
        when there is one."""
        return shared_dir_of(self.user, self.app_name, self.data_volume is not None)

    @property
    def env_file(self) -> str:
        return f"{self.shared_dir}/.env"

    @property
    def pending_env_file(self) -> str:
        """The .env of a site moving from SQLite to PostgreSQL, until the deploy that moves the data
        (files/host-env.sh.j2, deploy.sh); redact.py reads it beside the .env."""
        return f"{self.env_file}.pending"

    @property
    def opt_dir(self) -> str:
        """Root's directory for the app: what root runs, or configures a daemon of root's with, lives
        here, outside the app user's home (the app user could replace anything there)."""
        return f"{OPT_ROOT}/{self.app_name}"

    @property
    def bin_dir(self) -> str:
        """run.sh, deploy.sh, ci-command and what they run: root's, read-only to the app user."""
        return f"{self.opt_dir}/bin"

    @property
    def legacy_bin_dir(self) -> str:
        """Where earlier versions installed bin_dir, inside the home: removed when a host converges."""
        return f"{self.home}/bin"

    @property
    def ssh_dir(self) -> str:
        return f"{self.home}/.ssh"

    @property
    def deploy_key_file(self) -> str:
        """The read-only deploy key; the app user's file, written by the app user."""
        return f"{self.ssh_dir}/deploy_key"

    @property
    def clone_known_hosts(self) -> str:
        return f"{self.ssh_dir}/known_hosts_clone"

    @property
    def authorized_keys(self) -> str:
        return f"{self.ssh_dir}/authorized_keys"

    @property
    def run_script(self) -> str:
        return f"{self.bin_dir}/run.sh"

    @property
    def gunicorn_conf(self) -> str:
        return f"{self.bin_dir}/gunicorn.conf.py"

    @property
    def deploy_script(self) -> str:
        return f"{self.bin_dir}/deploy.sh"

    @property
    def ci_command(self) -> str:
        return f"{self.bin_dir}/ci-command"

    @property
    def release_check(self) -> str:
        return f"{self.bin_dir}/release_check.py"

    @property
    def run_process_script(self) -> str:
        return f"{self.bin_dir}/run-process"

    @property
    def processes_file(self) -> str:
        """name -> argv of the processes setting, root's (read by django_vps_exec.py)."""
        return f"{self.bin_dir}/processes.json"

    @property
    def process_programs(self) -> tuple[str, ...]:
        """The processes' supervisor programs, <app>.<name>: no app name holds a '.', so no other
        app's program can share the name or its prefix."""
        return tuple(f"{self.app_name}.{name}" for name, _ in self.processes)

    @property
    def schedule_file(self) -> str:
        """name -> what each scheduled command runs, root's (read by django_vps_exec.py)."""
        return f"{self.bin_dir}/schedule.json"

    def schedule_unit(self, name: str) -> str:
        """django-vps-<app>.<name>: no app name holds a '.', so no other app's unit shares the prefix."""
        return f"django-vps-{self.app_name}.{name}"

    @property
    def manage_script(self) -> str:
        """manage.py of the live release as the app user (also reached by django-vps-manage)."""
        return f"{self.bin_dir}/manage"

    @property
    def backup_script(self) -> str:
        return f"{self.bin_dir}/backup.sh"

    @property
    def backup_timer(self) -> str:
        """The systemd timer (and service) of the backups."""
        return f"django-vps-backup-{self.app_name}.timer"

    @property
    def offsite_dir(self) -> str:
        """The app user's off-site backup credentials (its own files: backup.sh runs as it)."""
        return f"{self.home}/.config/django-vps"

    @property
    def offsite_key_file(self) -> str:
        return f"{self.offsite_dir}/offsite_key"

    @property
    def offsite_password_file(self) -> str:
        return f"{self.offsite_dir}/restic-password"

    @property
    def offsite_known_hosts(self) -> str:
        return f"{self.offsite_dir}/offsite_known_hosts"

    @property
    def offsite_s3_credentials(self) -> str:
        """The S3 access key ID's line, then the secret access key's (offsiteS3Endpoint)."""
        return f"{self.offsite_dir}/s3-credentials"

    @property
    def sftp_command(self) -> str:
        """How restic reaches the SFTP server: the stack's key, the pinned host key, no prompt."""
        assert self.offsite is not None
        o = self.offsite.sftp
        assert o is not None
        return (
            f"ssh -p {o.port} -i {self.offsite_key_file} -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.offsite_known_hosts} {o.user}@{o.host} -s sftp"
        )

    @property
    def redact_script(self) -> str:
        return f"{self.bin_dir}/redact.py"

    @property
    def nginx_site_file(self) -> str:
        return f"/etc/nginx/conf.d/{self.app_name}.conf"

    @property
    def database_name(self) -> str:
        """PostgreSQL's database for the app (its role is the app user: peer authentication maps the
        Unix user to the role of the same name)."""
        return self.app_name

    @property
    def database_url(self) -> str:
        """The database the program provides: SQLite in shared/ (kept across releases), or the app's
        PostgreSQL database over the unix socket (no password: peer authentication)."""
        if self.database == "postgresql":
            return f"postgres:///{self.database_name}?host={POSTGRES_SOCKET_DIR}"
        return f"sqlite:///{self.shared_dir}/db.sqlite3"

    @property
    def database_env(self) -> tuple[tuple[str, str], ...]:
        """The variables naming the database the program provides, for the usual readers."""
        if self.database != "postgresql":
            return (("DATABASE_URL", self.database_url),)
        name, user, host = self.database_name, self.user, POSTGRES_SOCKET_DIR
        return (
            ("DATABASE_URL", self.database_url),
            ("PGHOST", host),
            ("PGDATABASE", name),
            ("PGUSER", user),
            ("DB_ENGINE", "django.db.backends.postgresql"),
            ("DB_NAME", name),
            ("DB_USER", user),
            ("DB_HOST", host),
            ("POSTGRES_DB", name),
            ("POSTGRES_USER", user),
            ("POSTGRES_HOST", host),
        )

    @property
    def socket_path(self) -> str:
        # In the user's home, not /tmp: no other user can create or replace it there.
        return f"{self.home}/run/{self.app_name}.sock"

    @property
    def url(self) -> str:
        return f"https://{self.domain}"

    @property
    def workflow_path(self) -> str:
        """The stack's own workflow file: one per stack, so stacks on one repository share no file."""
        return f"{WORKFLOW_DIR}/deploy-{self.github_environment}.yml"

    @property
    def dns_record_name(self) -> str:
        """The record's name relative to the zone: "@" for the apex."""
        if self.domain == self.dns_zone:
            return "@"
        return self.domain[: -len(self.dns_zone) - 1]


def app_dir_of(user: str, app_name: str) -> str:
    """The app's directory, as in the seed (/home/<user>/<app>): spelled here only."""
    return f"/home/{user}/{app_name}"


def data_dir_of(app_name: str) -> str:
    """The app's directory on the data volume."""
    return f"{DATA_MOUNT}/{app_name}"


def shared_dir_of(user: str, app_name: str, on_volume: bool = False) -> str:
    """What outlives releases; needed before Settings exists, for the default logs directory."""
    return f"{data_dir_of(app_name)}/shared" if on_volume else f"{app_dir_of(user, app_name)}/shared"


@cache
def _public_suffixes() -> PublicSuffixList:
    """The bundled Public Suffix List (parsing it takes ~0.1 s: once per process)."""
    return PublicSuffixList()


@cache
def declared_config() -> dict[str, dict[str, Any]]:
    """The `config:` block of Pulumi.yaml: type, default, description per setting."""
    return yaml.safe_load(PROJECT_FILE.read_text())["config"]


class _Reader:
    """Reads raw config values with Pulumi.yaml's defaults and type checks."""

    def __init__(self, raw: Callable[[str], Any]) -> None:
        self._raw = raw

    def explicit(self, key: str) -> Any:
        """The value as configured, or None when unset."""
        value = self._raw(f"{PROJECT}:{key}")
        return None if value is None else value

    def value(self, key: str) -> Any:
        declared = declared_config()[key]
        raw = self.explicit(key)
        if raw is None:
            if "default" not in declared:
                raise SettingError(key, f"is required: {declared['description']} (pulumi config set {key} <value>)")
            return declared["default"]
        return _parse(key, declared["type"], raw)

    def string(self, key: str) -> str:
        return self.value(key).strip()

    def differs_from_default(self, key: str) -> bool:
        return self.explicit(key) is not None and self.value(key) != declared_config()[key].get("default")


def _is_secret(key: str) -> bool:
    """Pulumi.yaml marks secret settings: their values never appear in a message."""
    return declared_config()[key]["description"].startswith("SECRET")


def check_text(key: str, text: str, *, index: int | None = None) -> str:
    """What no setting has a use for: a control character (NUL, CR, tab...), a line break of any
    syntax (LF, NEL, U+2028, U+2029), or a string longer than MAX_LENGTH. One line naming the
    setting; a secret's value is never shown."""
    item = "" if index is None else f"item {index} "
    shown = item + ("" if _is_secret(key) else f"{text[:40]!r}{'...' if len(text) > 40 else ''} ")
    allowed = "\n" if key in MULTI_LINE_SETTINGS else ""
    found = next((char for char in CONTROL.findall(text) if char not in allowed), None)
    if found is not None:
        raise SettingError(
            key,
            f"{shown}holds the control character or line break U+{ord(found):04X} at position "
            f"{text.index(found)}: a setting is one line of printable text; remove it",
        )
    if len(text) > MAX_LENGTH * (4 if key in MULTI_LINE_SETTINGS else 1):
        raise SettingError(key, f"{shown}is {len(text)} characters long: the most accepted is {MAX_LENGTH}")
    return text


def _json(raw: Any) -> Any:
    """An array or object setting as the engine passes it (JSON text), or None when it is not JSON."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


def _parse(key: str, kind: str, raw: Any) -> Any:
    """Config arrives as strings (or JSON for arrays); convert to the declared type."""
    if kind == "string":
        return check_text(key, str(raw))
    if kind == "integer":
        try:
            return int(str(raw).strip())
        except ValueError:
            raise SettingError(key, f"{str(raw)!r} is not a whole number") from None
    if kind == "boolean":
        text = str(raw).strip().lower()
        if text not in ("true", "false"):
            raise SettingError(key, f"{str(raw)!r} is not a boolean: use true or false")
        return text == "true"
    if kind == "array" and declared_config()[key].get("items", {}).get("type") == "object":
        value = _json(raw)
        if not isinstance(value, list) or not all(
            isinstance(item, dict) and all(isinstance(v, str) for v in item.values()) for item in value
        ):
            raise SettingError(key, f"{str(raw)[:60]!r} is not a list of maps of strings ({{name, on, command}})")
        return [{check_text(key, k).strip(): check_text(key, v).strip() for k, v in item.items()} for item in value]
    if kind == "array":
        value = _json(raw)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            shown = "" if _is_secret(key) else f"{str(raw)[:60]!r} is not a list of strings: "
            raise SettingError(key, f"{shown}must be a list of strings (pulumi config set --path '{key}[0]' <value>)")
        return [check_text(key, item, index=index).strip() for index, item in enumerate(value)]
    if kind == "object":
        value = _json(raw)
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise SettingError(
                key,
                f"{str(raw)[:60]!r} is not a map of names to strings (pulumi config set --path '{key}.NAME' <value>)",
            )
        return {check_text(key, name).strip(): check_text(key, item).strip() for name, item in value.items()}
    raise AssertionError(f"Pulumi.yaml declares unknown type {kind!r} for {key}")


def validate_domain(key: str, domain: str) -> str:
    if not domain:
        raise SettingError(key, "is empty: give a domain such as blog.com")
    if not domain.isascii():
        raise SettingError(
            key, f"{domain!r} is not ASCII: give an internationalised domain in its punycode form (xn--...)"
        )
    problem = None
    if domain != domain.lower():
        problem = "has uppercase letters: use lowercase"
    elif domain.endswith("."):
        problem = "ends with a dot: leave the trailing dot out"
    elif "://" in domain or "/" in domain or ":" in domain:
        problem = "is a URL or has a port: give the bare domain"
    elif len(domain) > 253 or "." not in domain:
        problem = "is not a fully qualified domain (it needs at least one dot)"
    elif not all(_LABEL.match(label) for label in domain.split(".")):
        problem = "has a label that is not 1-63 letters, digits or inner hyphens"
    elif domain.rsplit(".", 1)[1].isdigit():
        problem = "is an IP address: give a domain name"
    if problem:
        raise SettingError(key, f"{domain!r} {problem}, e.g. blog.com")
    return domain


def _repository(reader: _Reader) -> str:
    repository = reader.string("repository")
    owner, _, name = repository.partition("/")
    if not (
        _GITHUB_OWNER.match(owner)
        and _GITHUB_NAME.match(name)
        and name not in (".", "..")
        and not name.endswith(".git")
    ):
        raise SettingError(
            "repository",
            f"{repository!r} is not owner/name: give the GitHub "
            "repository as owner/name, e.g. sdelquin/blog (no URL, no .git)",
        )
    return repository


def _clone_host(url: str) -> str | None:
    scp = _CLONE_SCP.match(url)
    if scp:
        return scp["host"] if _HOSTNAME.match(scp["host"].lower()) or _is_ip(scp["host"]) else None
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        return None
    if (
        parsed.scheme == "ssh"
        and parsed.hostname
        and (_HOSTNAME.match(parsed.hostname) or _is_ip(parsed.hostname))
        and parsed.username
        and re.match(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", parsed.username)
        and parsed.password is None
        and (port is None or 0 < port < 65536)
        and _URL_PATH.match(parsed.path)
        and not parsed.query
        and not parsed.fragment
    ):
        return parsed.hostname
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _clone(reader: _Reader, repository: str) -> tuple[str, tuple[str, ...]]:
    url = reader.string("cloneUrl") or f"git@github.com:{repository}.git"
    host = _clone_host(url)
    if host is None:
        raise SettingError(
            "cloneUrl", f"{url!r} is not an SSH clone URL: use user@host:path.git or ssh://user@host[:port]/path.git"
        )
    lines = tuple(reader.value("cloneHostKeys"))
    if not lines:
        if host != "github.com":
            raise SettingError(
                "cloneHostKeys",
                f"is empty but cloneUrl points at {host}: give that "
                "host's known_hosts lines (ssh-keyscan it once and check them)",
            )
        lines = GITHUB_HOST_KEYS
    parsed = []
    for line in lines:
        try:
            parsed.append(sshkeys.known_host(line).line())
        except sshkeys.KeyFormatError as error:
            raise SettingError("cloneHostKeys", f"{_shown(line)} {error}") from None
    return url, tuple(parsed)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _public_key(key: str, text: str, *, keep_comment: bool = True) -> str:
    """The key re-serialized from its parse ("type base64 [comment]")."""
    try:
        return sshkeys.public_key(text, keep_comment=keep_comment).line()
    except sshkeys.KeyFormatError as error:
        raise SettingError(key, f"{_shown(text)} {error}") from None


def _names(reader: _Reader, repository: str) -> tuple[str, str]:
    app_name = reader.string("appName")
    derived = not app_name
    if derived:
        app_name = repository.split("/", 1)[1].lower().replace(".", "-")
    if not _APP_NAME.match(app_name):
        hint = (
            f"the repository name {repository.split('/', 1)[1]!r} gives {app_name!r}, which is not usable: set appName"
            if derived
            else f"{app_name!r} is not usable"
        )
        raise SettingError(
            "appName",
            f"{hint}: it names a directory, a socket, a supervisor program "
            "and a unix user, so use 1-32 of a-z, 0-9, '_' and '-', starting "
            "with a letter",
        )
    user = reader.string("user") or app_name
    if not _UNIX_NAME.match(user):
        raise SettingError(
            "user",
            f"{user!r} is not a unix user name: use 1-32 of a-z, 0-9, '_' and '-', starting with a letter or '_'",
        )
    if user in SYSTEM_USERS:
        raise SettingError(
            "user",
            f"{user!r} is a system account: the app runs as a dedicated unprivileged user (e.g. the app name)",
        )
    return app_name, user


def _choice(reader: _Reader, key: str, accepted: tuple[str, ...]) -> str:
    value = reader.string(key)
    if value not in accepted:
        raise SettingError(key, f"{value!r} is not one of {', '.join(accepted)}")
    return value


def _positive(reader: _Reader, key: str, *, allow_zero: bool = False) -> int:
    value = reader.value(key)
    if value < 0 or (value == 0 and not allow_zero):
        floor = "0 or more" if allow_zero else "a whole number of 1 or more"
        raise SettingError(key, f"{value} is not allowed: use {floor}")
    return value


def _admin_user(reader: _Reader, app_user: str) -> str:
    admin = reader.string("adminUser")
    if not _UNIX_NAME.match(admin) or admin in SYSTEM_USERS:
        raise SettingError(
            "adminUser", f"{admin!r} is not usable: a unix user name (a-z, 0-9, '_', '-') that is no system account"
        )
    if admin == app_user:
        raise SettingError("adminUser", f"{admin!r} is also the app user: the two must differ (the app has no sudo)")
    return admin


def _host_mode(reader: _Reader, app_user: str) -> tuple[HetznerServer | None, ExistingHost | None]:
    image = _choice(reader, "image", IMAGES)
    address = reader.string("existingHost")
    if not address:
        server_type = reader.string("serverType")
        if not _SERVER_TYPE.match(server_type):
            raise SettingError(
                "serverType", f"{server_type!r} is not a Hetzner server type: use e.g. cx23, cpx21, cax11 or ccx13"
            )
        location = _choice(reader, "location", LOCATIONS)
        admin_keys = tuple(_public_key("adminSshKeys", k) for k in reader.value("adminSshKeys"))
        admin = _admin_user(reader, app_user)
        replace = reader.value("replaceServer")
        volume = _data_volume(reader)
        return (
            HetznerServer(server_type, image, location, reader.value("backups"), admin_keys, admin, replace, volume),
            None,
        )

    for key in SERVER_ONLY_SETTINGS:
        if reader.differs_from_default(key):
            raise SettingError(
                key,
                f"{reader.value(key)!r} is set together with existingHost ({address}): it describes a new "
                "Hetzner server; unset one of the two",
            )
    _address("existingHost", address)
    user = reader.string("existingHostUser")
    if not _UNIX_NAME.match(user):
        raise SettingError(
            "existingHostUser", f"{user!r} is not a unix user name: use root or a user with passwordless sudo"
        )
    if user == app_user:
        raise SettingError(
            "existingHostUser", f"{user!r} is also the app user: log in as root or another user with passwordless sudo"
        )
    host_key = reader.string("existingHostKey")
    if not host_key:
        raise SettingError(
            "existingHostKey",
            "is required with existingHost: give its SSH host public key "
            f"(ssh-keyscan -t ed25519 {address}, checked on the console)",
        )
    host_key = _host_key(host_key)
    private_key = reader.string("existingHostPrivateKey")
    if not private_key:
        raise SettingError(
            "existingHostPrivateKey",
            "is required with existingHost: pulumi config set --secret existingHostPrivateKey < ~/.ssh/id_ed25519",
        )
    try:
        # Exactly one PEM block: cryptography would skip text around it, and the key is passed on.
        lone = private_key.count("-----BEGIN") == 1 and private_key.count("-----END") == 1
        if not (lone and private_key.startswith(_PRIVATE_KEY_BEGIN) and private_key.endswith(_PRIVATE_KEY_END)):
            raise ValueError("not a lone PEM block")
        load_ssh_private_key(private_key.encode() + b"\n", password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The value is a secret: never echo it.
        raise SettingError(
            "existingHostPrivateKey", "is not an unencrypted OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----)"
        ) from None
    return None, ExistingHost(address, user, host_key, pulumi.Output.secret(private_key + "\n"), image)


def _data_volume(reader: _Reader) -> DataVolume | None:
    size = reader.value("dataVolume")
    volume_id = reader.value("dataVolumeId")
    keep = reader.value("dataVolumeKeep")
    if size != 0 and not VOLUME_MIN_GB <= size <= VOLUME_MAX_GB:
        raise SettingError(
            "dataVolume",
            f"{size} is not a Hetzner Volume size: {VOLUME_MIN_GB} to {VOLUME_MAX_GB} (GB), or 0 for no volume",
        )
    if volume_id < 0:
        raise SettingError("dataVolumeId", f"{volume_id} is not a Hetzner Volume id: a whole number above 0")
    if not size and not volume_id:
        # A declared default reaches the program as if set (the real CLI passes it): only a value
        # other than the default is a mistake here.
        if reader.differs_from_default("dataVolumeKeep"):
            raise SettingError("dataVolumeKeep", "is only used with dataVolume: set dataVolume too, or remove it")
        return None
    return DataVolume(size, volume_id, keep)


def _host_key(text: str) -> str:
    """ "type base64", from that, a public key line with a comment, or a known_hosts line (what
    ssh-keyscan prints)."""
    tokens = text.split(" ")
    if tokens[0] in sshkeys.KEY_TYPES or len(tokens) < 3:
        return _public_key("existingHostKey", text, keep_comment=False)
    try:
        return sshkeys.known_host(text).key.line()
    except sshkeys.KeyFormatError as error:
        raise SettingError("existingHostKey", f"{_shown(text)} {error}") from None


def _address(key: str, address: str) -> str:
    try:
        ipaddress.ip_address(address)
        return address
    except ValueError:
        pass
    if not _HOSTNAME.match(address):
        raise SettingError(key, f"{address!r} is neither an IP address nor a hostname")
    return address


def _zone(reader: _Reader, domain: str) -> str:
    zone = reader.string("dnsZone")
    if not zone:
        zone = _public_suffixes().privatesuffix(domain)
        if zone is None:
            raise SettingError("domain", f"{domain!r} is a public suffix: give a domain you own")
        return zone
    validate_domain("dnsZone", zone)
    if domain != zone and not domain.endswith("." + zone):
        raise SettingError(
            "dnsZone",
            f"{zone!r} does not contain the domain {domain!r}: give the zone "
            f"the domain is in, e.g. {_public_suffixes().privatesuffix(domain) or domain}",
        )
    return zone


def _https_host(parsed: ParseResult) -> bool:
    """An https URL to a plain host (a hostname or an IP, no user) with a valid port if any: what the
    ACME directory and an S3 endpoint share; each checks its own path."""
    try:
        parsed.port  # noqa: B018  (raises for a port that is no number or out of range)
    except ValueError:
        return False
    host = parsed.hostname
    if parsed.scheme != "https" or not host or parsed.username is not None:
        return False
    return bool(_HOSTNAME.match(host) or _is_ip(host))


def _acme(reader: _Reader) -> str:
    value = reader.string("acmeServer")
    if value in ACME_SERVERS:
        return ACME_SERVERS[value]
    parsed = urlparse(value)
    if (
        not _https_host(parsed)
        or not _URL_PATH.match(parsed.path + ("?" + parsed.query if parsed.query else ""))
        or parsed.fragment
        or value != value.strip()
        or " " in value
    ):
        raise SettingError(
            "acmeServer",
            f"{_shown(value)} is not allowed: use production, staging or an https:// ACME directory URL "
            "(host, optional port, a path of URL characters)",
        )
    return value


def _env_pairs(key: str, items: list[str], *, secret: bool) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        name, sep, value = item.partition("=")
        name = name.strip()
        shown = (name if sep else f"{key}[{index}]") if secret else item
        if not sep or not _ENV_KEY.match(name):
            raise SettingError(key, f"{shown[:60]!r} is not KEY=value with KEY in A-Z, 0-9 and '_'")
        if name in MANAGED_ENV:
            raise SettingError(
                key, f"{name} is set by the program itself" + ("; use djangoSecretKey" if name == "SECRET_KEY" else "")
            )
        if name in seen:
            raise SettingError(key, f"{name} is given twice")
        seen.add(name)
        pairs.append((name, value))
    return pairs


def _logs(reader: _Reader, app_dir: str, app_name: str, data_dir: str | None = None) -> LogSettings:
    directory = reader.string("logsDir") or f"{data_dir or app_dir}/shared/logs"
    parts = directory.split("/")
    if (
        not directory.startswith("/")
        or any(part in ("", ".", "..") or part.startswith("-") for part in parts[1:])
        or not re.match(r"^[A-Za-z0-9_./-]+$", directory)
    ):
        raise SettingError(
            "logsDir",
            f"{_shown(directory)} is not an absolute path of letters, digits, '.', '_', '-' and '/' "
            "(no '..', '.', '//', trailing '/' or leading '-' in a part)",
        )
    # The app user owns its log directory: anywhere else than its own tree or ours, chowning it
    # would hand it a system directory (/, /etc, /var/log, another user's).
    dedicated = f"{LOGS_ROOT}/{app_name}"
    own = [app_dir, *([data_dir] if data_dir else [])]
    if not (
        any(directory.startswith(tree + "/") for tree in own)
        or directory == dedicated
        or directory.startswith(dedicated + "/")
    ):
        raise SettingError(
            "logsDir",
            f"{_shown(directory)} is outside the app's own trees: use a directory inside "
            f"{'/ or '.join(own)}/ or {dedicated} (or inside it)",
        )
    filename = reader.string("logFilename") or f"{app_name}.log"
    if not re.match(r"^[A-Za-z0-9_.-]{1,100}$", filename) or filename in (".", ".."):
        raise SettingError("logFilename", f"{filename!r} is not a file name: use letters, digits, '.', '_' and '-'")
    return LogSettings(
        directory,
        filename,
        _positive(reader, "logSize"),
        _positive(reader, "logRotate"),
        _choice(reader, "logLevel", LOG_LEVELS),
    )


REDIS_POLICIES = (
    "allkeys-lru",
    "allkeys-lfu",
    "volatile-lru",
    "volatile-lfu",
    "volatile-ttl",
    "allkeys-random",
    "volatile-random",
    "noeviction",
)
REDIS_SOCKET = "/run/redis/redis-server.sock"


def _redis_memory(reader: _Reader) -> str:
    value = reader.string("redisMaxMemory").lower()
    if not re.match(r"^[1-9][0-9]{0,5}(kb|mb|gb)$", value):
        raise SettingError("redisMaxMemory", f"{value!r} is not a size: a number and kb, mb or gb, e.g. 64mb")
    return value


_PROCESS_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def _words(key: str, what: str, text: str) -> tuple[str, ...]:
    try:
        words = tuple(shlex.split(text))
    except ValueError as error:
        raise SettingError(key, f"{what}: {text[:60]!r} does not split into words ({error})") from None
    if not words:
        raise SettingError(key, f"{what}: the command is empty")
    if words[0].startswith("-"):
        raise SettingError(key, f"{what}: {words[0]!r} is not a command: the command comes first")
    return words


def _schedule(reader: _Reader) -> tuple[ScheduledCommand, ...]:
    found: list[ScheduledCommand] = []
    for index, item in enumerate(reader.value("schedule")):
        keys = set(item)
        if not {"name", "on"} <= keys or len(keys & {"command", "run"}) != 1 or keys - {"name", "on", "command", "run"}:
            raise SettingError(
                "schedule", f"item {index} has {sorted(keys)}: give name, on and one of command (manage.py) or run"
            )
        name, on = item["name"], item["on"]
        if not _PROCESS_NAME.match(name):
            raise SettingError("schedule", f"{name!r} is not a name: a-z first, then a-z, 0-9 and '-', e.g. sessions")
        if any(other.name == name for other in found):
            raise SettingError("schedule", f"{name!r} is given twice: give each command its own name")
        if not _CALENDAR.match(on):
            raise SettingError(
                "schedule",
                f"{name}: {on[:60]!r} is not a systemd calendar expression, e.g. daily, hourly, Mon *-*-* 06:00",
            )
        manage = _words("schedule", name, item["command"]) if "command" in item else ()
        run = _words("schedule", name, item["run"]) if "run" in item else ()
        found.append(ScheduledCommand(name, on, manage, run))
    return tuple(found)


def _processes(reader: _Reader) -> tuple[tuple[str, tuple[str, ...]], ...]:
    found = []
    for name, command in sorted(reader.value("processes").items()):
        if not _PROCESS_NAME.match(name):
            raise SettingError(
                "processes", f"{name!r} is not a process name: a-z first, then a-z, 0-9 and '-', e.g. worker"
            )
        try:
            argv = tuple(shlex.split(command))
        except ValueError as error:
            raise SettingError("processes", f"{name}: {command[:60]!r} does not split into words ({error})") from None
        if not argv:
            raise SettingError("processes", f"{name}: the command is empty: give one, e.g. celery -A main worker")
        if argv[0].startswith("-"):
            raise SettingError(
                "processes", f"{name}: {argv[0]!r} is not a program: the command starts with its program"
            )
        found.append((name, argv))
    return tuple(found)


def _names_list(reader: _Reader, key: str, what: str) -> tuple[str, ...]:
    """Dependency group and extra names, as PEP 735/685 normalise them (and a word to the shell)."""
    names = tuple(reader.value(key))
    for name in names:
        if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", name):
            raise SettingError(key, f"{name!r} is not {what}: letters, digits, '.', '_' and '-', e.g. prod")
    return names


def _requirements_file(reader: _Reader) -> str:
    path = reader.string("requirementsFile")
    parts = path.split("/")
    if path and (
        not re.match(r"^[\w.-]+(/[\w.-]+)*$", path)
        or any(part in (".", "..") or part.startswith("-") for part in parts)
    ):
        raise SettingError(
            "requirementsFile", f"{path!r} is not a file path inside the repository, e.g. requirements/production.txt"
        )
    return path


# The characters of systemd calendar expressions (Mon..Fri *-*-* 03:00:00, daily, *:0/15, ~).
_CALENDAR = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9 ,.:*/~+-]{0,199}$")


def _backup_schedule(reader: _Reader) -> str:
    value = reader.string("backupSchedule")
    if not _CALENDAR.match(value) or "  " in value:
        raise SettingError(
            "backupSchedule",
            f"{_shown(value)} is not a systemd calendar expression (OnCalendar): e.g. daily, hourly, "
            "*-*-* 03:00:00 or Mon..Fri 02:30",
        )
    return value


SFTP_SETTINGS = ("offsiteSftpUser", "offsiteSftpPath", "offsiteSftpHostKey")
S3_SETTINGS = (
    "offsiteS3Bucket",
    "offsiteS3Path",
    "offsiteS3Region",
    "offsiteS3AccessKeyId",
    "offsiteS3SecretAccessKey",
)
_REPOSITORY_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


def _offsite(reader: _Reader, app_name: str) -> Offsite | None:
    host = reader.string("offsiteSftpHost")
    endpoint = reader.string("offsiteS3Endpoint")
    # Read (and checked) whether used or not: a bad value never waits for the day it is used.
    port = _positive(reader, "offsiteSftpPort")
    keep_daily = _positive(reader, "offsiteKeepDaily")
    keep_weekly = _positive(reader, "offsiteKeepWeekly", allow_zero=True)
    if host and endpoint:
        raise SettingError(
            "offsiteS3Endpoint", "and offsiteSftpHost are both set: off-site backups go to one target, remove one"
        )
    for key in () if host else SFTP_SETTINGS:
        if reader.string(key):
            raise SettingError(key, "is only used with offsiteSftpHost: set offsiteSftpHost too, or remove it")
    for key in () if endpoint else S3_SETTINGS:
        if reader.string(key):
            raise SettingError(key, "is only used with offsiteS3Endpoint: set offsiteS3Endpoint too, or remove it")
    password = reader.string("offsiteRepositoryPassword")
    if not host and not endpoint:
        if password:
            raise SettingError(
                "offsiteRepositoryPassword",
                "is only used with off-site backups: set offsiteSftpHost or offsiteS3Endpoint too, or remove it",
            )
        return None
    if password and len(password) < 16:
        raise SettingError("offsiteRepositoryPassword", "is shorter than 16 characters: use a long random password")
    target = _sftp_target(reader, host, port, app_name) if host else _s3_target(reader, endpoint, app_name)
    return Offsite(
        target=target,
        password=pulumi.Output.secret(password) if password else None,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
    )


def _sftp_target(reader: _Reader, host: str, port: int, app_name: str) -> SftpTarget:
    host = _address("offsiteSftpHost", host)
    if port > 65535:
        raise SettingError("offsiteSftpPort", f"{port} is not a TCP port: 1 to 65535 (a Storage Box uses 23)")
    user = reader.string("offsiteSftpUser")
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$", user):
        raise SettingError(
            "offsiteSftpUser", f"{_shown(user)} is not an SFTP user name: letters, digits, '.', '_', '-', e.g. u123456"
        )
    path = reader.string("offsiteSftpPath") or f"django-vps/{app_name}"
    if not _REPOSITORY_PATH.match(path) or ".." in path.split("/"):
        raise SettingError(
            "offsiteSftpPath",
            f"{_shown(path)} is not a directory relative to the SFTP user's home: parts of letters, digits, "
            "'.', '_', '-' separated by '/', e.g. backups/blog",
        )
    key_text = reader.string("offsiteSftpHostKey")
    if not key_text:
        raise SettingError(
            "offsiteSftpHostKey", "is required with offsiteSftpHost: the server's host key (ssh-keyscan it once)"
        )
    tokens = key_text.split(" ")
    if tokens[0] in sshkeys.KEY_TYPES or len(tokens) < 3:
        host_key = _public_key("offsiteSftpHostKey", key_text, keep_comment=False)
    else:
        try:
            host_key = sshkeys.known_host(key_text).key.line()
        except sshkeys.KeyFormatError as error:
            raise SettingError("offsiteSftpHostKey", f"{_shown(key_text)} {error}") from None
    return SftpTarget(host=host, port=port, user=user, path=path, host_key=host_key)


# S3 bucket names (the rules AWS and Hetzner share): 3-63 of a-z, 0-9, '.', '-', a letter or digit at
# each end.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _s3_target(reader: _Reader, endpoint: str, app_name: str) -> S3Target:
    parsed = urlparse(endpoint)
    if (
        not _https_host(parsed)
        or parsed.path not in ("", "/")
        or parsed.query
        or parsed.fragment
        or ";" in endpoint
        or " " in endpoint
    ):
        raise SettingError(
            "offsiteS3Endpoint",
            f"{_shown(endpoint)} is not an S3 endpoint: https://host or https://host:port, no path "
            "(the bucket is offsiteS3Bucket), e.g. https://fsn1.your-objectstorage.com",
        )
    bucket = reader.string("offsiteS3Bucket")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise SettingError(
            "offsiteS3Bucket",
            f"{_shown(bucket)} is not a bucket name: 3 to 63 of a-z, 0-9, '.' and '-', a letter or digit at "
            "each end, e.g. blog-backups",
        )
    path = reader.string("offsiteS3Path") or f"django-vps/{app_name}"
    if not _REPOSITORY_PATH.match(path) or ".." in path.split("/"):
        raise SettingError(
            "offsiteS3Path",
            f"{_shown(path)} is not a prefix in the bucket: parts of letters, digits, '.', '_', '-' separated "
            "by '/', e.g. backups/blog",
        )
    region = reader.string("offsiteS3Region")
    if region and not re.match(r"^[a-z0-9][a-z0-9-]{0,31}$", region):
        raise SettingError(
            "offsiteS3Region", f"{_shown(region)} is not a region: a-z, 0-9 and '-', e.g. fsn1 (or empty)"
        )
    key_id = reader.string("offsiteS3AccessKeyId")
    if not re.match(r"^[A-Za-z0-9]{8,128}$", key_id):
        raise SettingError(
            "offsiteS3AccessKeyId",
            "is not an access key ID: 8 to 128 letters and digits (required with offsiteS3Endpoint)",
        )
    secret = reader.string("offsiteS3SecretAccessKey")
    if not re.match(r"^[\x21-\x7e]{8,256}$", secret):
        raise SettingError(
            "offsiteS3SecretAccessKey",
            "is not a secret access key: 8 to 256 printable ASCII characters, no space (required with "
            "offsiteS3Endpoint; set it with --secret)",
        )
    return S3Target(
        endpoint=f"https://{parsed.netloc}",
        bucket=bucket,
        path=path,
        region=region,
        access_key_id=pulumi.Output.secret(key_id),
        secret_access_key=pulumi.Output.secret(secret),
    )


def _backup_keep(reader: _Reader) -> tuple[int, int]:
    # The engine passes Pulumi.yaml's default (0) when unset: any other value was set by the user.
    old = reader.value("backupKeep")
    if old != 0:
        raise SettingError(
            "backupKeep",
            f"{old} is no longer read: local retention is backupKeepDaily and backupKeepWeekly "
            "(default 7 and 4); set those and remove backupKeep (pulumi config rm backupKeep)",
        )
    return _positive(reader, "backupKeepDaily"), _positive(reader, "backupKeepWeekly", allow_zero=True)


def _health_path(reader: _Reader) -> str:
    path = reader.string("healthCheckPath")
    if not re.match(r"^/[A-Za-z0-9._~/?=&%+-]*$", path):
        raise SettingError("healthCheckPath", f"{path!r} is not a URL path: start with / (e.g. / or /health/)")
    return path


_URL_PREFIX = re.compile(r"^/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*/)+$")


def _served_urls(reader: _Reader) -> tuple[str, str]:
    """staticUrl and mediaUrl: URL paths nginx serves files at, neither inside the other (nginx
    picks the longest prefix: /static/media/ would hide the uploads inside the static files)."""
    static, media = reader.string("staticUrl"), reader.string("mediaUrl")
    for key, url, example in (("staticUrl", static, "/static/"), ("mediaUrl", media, "/media/")):
        if not _URL_PREFIX.match(url) or "/../" in url or "/./" in url:
            raise SettingError(
                key, f"{url[:80]!r} is not a URL path like {example}: start and end with /, letters, digits and ._~-"
            )
    if static.startswith(media) or media.startswith(static):
        raise SettingError("mediaUrl", f"{media} and staticUrl {static} overlap: give each its own path")
    return static, media


# Paths the release machinery owns: sharing them would break releases.
RESERVED_RELEASE_PATHS = frozenset(
    {".env", ".venv", "static", "node_modules", "REVISION", ".git", ".django-vps", "django_vps_wsgi.py",
     "django_vps_asgi.py", "django_vps_uvicorn.py", "django_vps_settings.py"}
)  # fmt: skip


def _shared_paths(reader: _Reader) -> tuple[str, ...]:
    paths = tuple(reader.value("sharedPaths"))
    for index, path in enumerate(paths):
        parts = path.split("/")
        # '.' parts would slip a reserved path past the check below (./static); a leading '-' would
        # reach deploy.sh's cp/ln/rm as an option.
        if not re.match(r"^[\w.-]+(/[\w.-]+)*$", path) or any(
            part in (".", "..") or part.startswith("-") for part in parts
        ):
            raise SettingError(
                "sharedPaths",
                f"{path!r} is not a relative path inside the project (no '.', '..' or leading '-'), e.g. media",
            )
        if parts[0] in RESERVED_RELEASE_PATHS:
            raise SettingError("sharedPaths", f"{path!r} is managed per release; accepted: any other project path")
        if path in paths[:index]:
            raise SettingError("sharedPaths", f"{path!r} is listed twice: give each path once")
    for path in paths:
        # A path inside another shared one is already shared; linking it again loops onto itself.
        for other in paths:
            if path.startswith(other + "/"):
                raise SettingError(
                    "sharedPaths", f"{path!r} is inside {other!r}, which is shared already: list only {other!r}"
                )
    return paths


def hetzner_prefix(app_name: str, stack: str) -> str:
    """What the stack's Hetzner SSH key and firewall are named."""
    return f"{app_name}-{stack}"


def hetzner_server_name(prefix: str, location: str, image: str) -> str:
    """The server's Hetzner name. Names are unique in a project, and a replacement creates the new
    server before it deletes the old one: the name changes with what replaces a server."""
    return f"{prefix}-{location}-{image.replace('.', '')}"


def hetzner_labels(app_name: str, stack: str) -> dict[str, str]:
    """The labels on every Hetzner resource of the stack; the server is found again by them."""
    return {"managed-by": PROJECT, "app": app_name, "stack": stack}


def _hetzner_names(app_name: str, stack: str, server: HetznerServer | None) -> None:
    """Hetzner's naming rules, before anything is asked of it: label values of at most 63 characters,
    alphanumeric at both ends; a server name that is a hostname (here one label: a-z, 0-9, '-')."""
    if not _LABEL_VALUE.match(app_name):
        raise SettingError("appName", f"{app_name!r} is no Hetzner label value (the app label): end it with a-z or 0-9")
    if not _LABEL_VALUE.match(stack):
        raise pulumi.RunError(
            f"{PROJECT}: the stack name {_shown(stack)} is no Hetzner label value (the stack label): at most 63 "
            "characters, a letter or digit at both ends; rename the stack (pulumi stack rename)"
        )
    if server is None:
        return
    name = hetzner_server_name(hetzner_prefix(app_name, stack), server.location, server.image)
    if len(name) > 63:
        raise SettingError(
            "appName",
            f"with the stack {stack!r} the server's Hetzner name {name!r} has {len(name)} characters, and a "
            "hostname label at most 63: shorten appName or the stack name (appName-stack-location-image)",
        )
    if not _LABEL.match(name):
        if _LABEL.match(app_name):
            raise pulumi.RunError(
                f"{PROJECT}: the stack name {stack!r} makes the server's Hetzner name {name!r}, which is no hostname: "
                "use a-z, 0-9 and '-' in the stack name (pulumi stack rename)"
            )
        suggestion = re.sub(r"[^a-z0-9-]", "-", app_name).strip("-")
        raise SettingError(
            "appName",
            f"{app_name!r} makes the server's Hetzner name {name!r}, which is no hostname (a-z, 0-9 and '-', "
            f"no '_'): set appName, e.g. {suggestion!r}",
        )


def github_environment(stack: str) -> str:
    """The GitHub Environment the stack deploys through: named after the stack, checked as GitHub
    checks environment names (and as a file name: deploy-<stack>.yml)."""
    if not _GITHUB_ENVIRONMENT.match(stack):
        raise pulumi.RunError(
            f"{PROJECT}: the stack name {_shown(stack)} cannot name its GitHub Environment: use 1 to 255 of "
            "A-Z, a-z, 0-9, '.', '_' and '-' (not only dots); rename the stack (pulumi stack rename)"
        )
    return stack


def load_settings(raw: Callable[[str], Any] = pulumi.runtime.get_config, stack: str | None = None) -> Settings:
    """Read and validate all config; raise SettingError (a RunError: one line, no traceback). `stack`
    (default: the running stack's) is part of the Hetzner resources' names and labels."""
    reader = _Reader(raw)
    domain = validate_domain("domain", reader.string("domain"))
    repository = _repository(reader)
    branch = reader.string("branch")
    if not _BRANCH.match(branch):
        raise SettingError(
            "branch", f"{branch!r} is not a git branch name: use letters, digits, '.', '_', '-' and '/', e.g. main"
        )
    clone_url, clone_host_keys = _clone(reader, repository)
    app_name, user = _names(reader, repository)
    wsgi = reader.string("wsgiApplication")
    if wsgi and not _WSGI.match(wsgi):
        raise SettingError(
            "wsgiApplication", f"{wsgi!r} is not module.path:callable, e.g. main.wsgi:application (or empty: Django's)"
        )
    asgi = reader.string("asgiApplication")
    if asgi and not _WSGI.match(asgi):
        raise SettingError(
            "asgiApplication", f"{asgi!r} is not module.path:callable, e.g. main.asgi:application (or empty: derived)"
        )
    if reader.string("uvGroup"):
        raise SettingError(
            "uvGroup",
            "was replaced by dependencyGroups: pulumi config rm uvGroup, then set dependencyGroups (e.g. [prod])",
        )
    groups = _names_list(reader, "dependencyGroups", "a dependency group name")
    extras = _names_list(reader, "dependencyExtras", "an extra's name")
    overlay_skip = tuple(reader.value("settingsOverlaySkip"))
    for name in overlay_skip:
        if name not in OVERLAY_SETTINGS:
            raise SettingError(
                "settingsOverlaySkip",
                f"{name!r} is not an override of the overlay: one of {', '.join(OVERLAY_SETTINGS)}",
            )
    server, existing = _host_mode(reader, user)
    data_dir = data_dir_of(app_name) if server and server.data_volume else None
    backup_keep = _backup_keep(reader)
    served_urls = _served_urls(reader)
    stack = pulumi.get_stack() if stack is None else stack
    # Outside a Pulumi run (a plain function call) no stack may be known: nothing to name then.
    if stack and (server is not None or reader.value("manageDns")):
        _hetzner_names(app_name, stack, server)
    email = reader.string("letsencryptEmail")
    if not _EMAIL.match(email):
        raise SettingError("letsencryptEmail", f"{email!r} is not an email address (name@example.com)")
    body = reader.string("clientMaxBodySize")
    if not _BODY_SIZE.match(body) or int(body.rstrip("kKmMgG")) == 0:
        raise SettingError(
            "clientMaxBodySize",
            f"{body!r} is not an nginx size: a positive number optionally followed by k, m or g, e.g. 10M",
        )
    secret_key = reader.string("djangoSecretKey")
    if secret_key and len(secret_key) < 32:
        raise SettingError("djangoSecretKey", "is shorter than 32 characters: Django needs a long random key")
    secret_env = _env_pairs("djangoSecretEnv", reader.value("djangoSecretEnv"), secret=True)
    github_token = raw("github:token")
    github_base_url = raw("github:baseUrl") or None
    if github_base_url is not None and not _GITHUB_BASE_URL.fullmatch(github_base_url):
        raise pulumi.RunError(
            f"github:baseUrl: {_shown(github_base_url)} is not a URL: give GitHub Enterprise's, e.g. https://ghe.example.com/"
        )
    plain_env = _env_pairs("djangoEnv", reader.value("djangoEnv"), secret=False)
    if reader.value("redis") and "REDIS_URL" in {name for name, _ in [*plain_env, *secret_env]}:
        raise SettingError("djangoEnv", "REDIS_URL is set by the program itself when redis is on: leave it out")
    return Settings(
        domain=domain,
        repository=repository,
        branch=branch,
        clone_url=clone_url,
        clone_host_keys=clone_host_keys,
        app_name=app_name,
        user=user,
        wsgi_application=wsgi,
        interface=_choice(reader, "server", ("wsgi", "asgi")),  # type: ignore[arg-type]
        asgi_application=asgi,
        dependencies=_choice(reader, "dependencies", DEPENDENCY_MODES),  # type: ignore[arg-type]
        dependency_groups=groups,
        dependency_extras=extras,
        requirements_file=_requirements_file(reader),
        settings_overlay=reader.value("settingsOverlay"),
        settings_overlay_skip=overlay_skip,
        fail_on_debug=reader.value("failOnDebug"),
        gunicorn_workers=_positive(reader, "gunicornWorkers", allow_zero=True),
        processes=_processes(reader),
        process_stop_seconds=_positive(reader, "processStopSeconds"),
        schedule=_schedule(reader),
        redis=reader.value("redis"),
        redis_max_memory=_redis_memory(reader),
        redis_eviction_policy=_choice(reader, "redisEvictionPolicy", REDIS_POLICIES),
        server=server,
        existing_host=existing,
        manage_dns=reader.value("manageDns"),
        dns_zone=_zone(reader, domain),
        create_dns_zone=reader.value("createDnsZone"),
        letsencrypt_email=email,
        acme_server=_acme(reader),
        client_max_body_size=body,
        logs=_logs(reader, app_dir_of(user, app_name), app_name, data_dir),
        django_env=tuple(plain_env),
        django_secret_env=tuple((k, pulumi.Output.secret(v)) for k, v in secret_env),
        django_secret_key=pulumi.Output.secret(secret_key) if secret_key else None,
        deploy_workflow=reader.value("deployWorkflow"),
        # Outside a Pulumi run the SDK's placeholder stack name stands in.
        github_environment=github_environment(stack or "stack"),
        keep_releases=_positive(reader, "keepReleases"),
        health_check_path=_health_path(reader),
        static_url=served_urls[0],
        media_url=served_urls[1],
        shared_paths=_shared_paths(reader),
        database=_choice(reader, "database", DATABASES),  # type: ignore[arg-type]
        backup_schedule=_backup_schedule(reader),
        backup_keep_daily=backup_keep[0],
        backup_keep_weekly=backup_keep[1],
        offsite=_offsite(reader, app_name),
        hsts=reader.value("hsts"),
        host_firewall=reader.value("hostFirewall"),
        fail2ban=reader.value("fail2ban"),
        github_token=pulumi.Output.secret(github_token) if github_token else None,
        github_base_url=github_base_url,
    )
