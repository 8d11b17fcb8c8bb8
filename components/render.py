"""Pure rendering: Settings (and plain values) in, file and script text out.

Every script that runs on the host comes from here, so each can be read, diffed, tested and run
on the test host without Pulumi. Rendering is deterministic: the same input gives the same bytes,
which is what lets the engine re-run a step (an update) exactly when its content changes.

Templates write values only through the encoders of encode.py, as filters chosen by the file's
syntax (`{{ domain | nginx }}`, `{{ clone_url | sh }}`, `{{ run_sh | heredoc("SCRIPT") }}`): the
environment's `finalize` refuses any other output, so a raw `{{ value }}` fails to render.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jinja2
import yaml

from components import encode, sshkeys
from components.encode import Encoded
from components.settings import (
    DATA_MOUNT,
    LOGS_ROOT,
    OPT_ROOT,
    POSTGRES_SOCKET_DIR,
    REDIS_SOCKET,
    SUPERVISOR_CONF,
    Settings,
)

FILES = Path(__file__).resolve().parent.parent / "files"
UV_VERSION = "0.13.9"
# What a deploy runs for projects that do not bring them (PyPI, pinned).
GUNICORN_VERSION = "27.0.1"
POETRY_VERSION = "2.5.1"
POETRY_EXPORT_VERSION = "1.10.1"
PIPENV_VERSION = "2026.10.3"
# Served by gunicorn in every release (files/django_vps_wsgi.py): the project's WSGI callable, with
# the app's environment in the process.
WSGI_ENTRY = "django_vps_wsgi:application"
ASGI_ENTRY = "django_vps_asgi:application"
# gunicorn's worker class for server asgi (files/django_vps_uvicorn.py: uvicorn-worker's, with a stop
# that answers the requests already sent), and what a release gets when the project has neither.
UVICORN_WORKER = "django_vps_uvicorn.UvicornWorker"
UVICORN_WORKER_VERSION = "0.4.0"
UVICORN_VERSION = "0.54.0"
# Copied into each release from root's directory by deploy.sh.
RUNTIME_FILES = ("django_vps_wsgi.py", "django_vps_asgi.py", "django_vps_uvicorn.py", "django_vps_settings.py")
# The admin's entry to every app's manage.py (sudo django-vps-manage APP ...).
MANAGE_COMMAND = "/usr/local/bin/django-vps-manage"
DNS_WAIT_ATTEMPTS = 60
DNS_WAIT_INTERVAL = 10
SUPERVISORCTL = "/usr/bin/supervisorctl"
# What earlier versions installed in ~/bin; the supervisor step removes them (files/unlink_beneath.py).
# Hetzner's name for a volume's device (terraform-provider-hcloud's linux_device).
_VOLUME_DEVICE = re.compile(r"^/dev/disk/by-id/scsi-0HC_Volume_[0-9]{1,12}$")
DATA_MOUNT_OPTIONS = "defaults,nofail,discard"
# The services that read or write data on the volume: never started on an unmounted one.
DATA_VOLUME_UNITS = ("supervisor.service", "postgresql@.service")
LEGACY_BIN_FILES = ("run.sh", "gunicorn.conf.py", "deploy.sh", "release_check.py", "redact.py", "ci-command")


def _only_encoded(value: object) -> object:
    """Jinja's finalize: an output is encoded text, or a number (which every syntax reads as is)."""
    if isinstance(value, Encoded) or type(value) is int:
        return value
    raise encode.EncodeError(f"a template writes {str(value)[:60]!r} without an encoder (| sh, | nginx, ...)")


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(FILES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
    finalize=_only_encoded,
)
_env.filters.update(
    {
        "sh": encode.shell,
        "sh_words": encode.shell_words,
        "heredoc": encode.heredoc,
        "comment": encode.comment,
        "nginx": encode.nginx,
        "supervisor": encode.supervisor,
        "supervisor_command": encode.supervisor_command,
        "redis_word": encode.redis_word,
        "systemd_word": encode.systemd_word,
        "systemd_calendar": encode.systemd_calendar,
        "dotenv": encode.dotenv,
        "sudoers": encode.sudoers,
        "systemd": encode.systemd,
        "sshd": encode.sshd,
        "yaml": encode.yaml,
        "yaml_block": encode.yaml_block,
        "py": encode.python,
    }
)


_env.globals["supervisor_conf"] = SUPERVISOR_CONF


def render(template: str, **context: object) -> str:
    return _env.get_template(template).render(**context)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _paths(s: Settings) -> dict[str, object]:
    return {
        "app_name": s.app_name,
        "user": s.user,
        "home": s.home,
        "app_dir": s.app_dir,
        "socket_path": s.socket_path,
        "run_script": s.run_script,
        "gunicorn_conf": s.gunicorn_conf,
        "deploy_script": s.deploy_script,
        "release_check": s.release_check,
        "current_dir": s.current_dir,
        "shared_dir": s.shared_dir,
        "env_file": s.env_file,
        "pending_env_file": s.pending_env_file,
        "domain": s.domain,
        "opt_root": OPT_ROOT,
        "opt_dir": s.opt_dir,
        "bin_dir": s.bin_dir,
    }


# Files that land on the host.


def run_sh(s: Settings) -> str:
    asgi = s.interface == "asgi"
    return render(
        "run.sh.j2",
        **_paths(s),
        wsgi_application=ASGI_ENTRY if asgi else WSGI_ENTRY,
        worker_class=UVICORN_WORKER if asgi else None,
    )


def gunicorn_conf(s: Settings) -> str:
    return render("gunicorn.conf.py.j2", app_name=s.app_name, workers=s.gunicorn_workers)


def _release_check_context(s: Settings) -> dict[str, object]:
    """What the release check is run with (files/_release_check.sh.j2), by deploy.sh and backup.sh."""
    return {
        "health_check_path": s.health_check_path,
        "wsgi_application": s.wsgi_application,
        "server": s.interface,
        "asgi_application": s.asgi_application,
        "overlay": "on" if s.settings_overlay else "off",
        "overlay_skip": ",".join(s.settings_overlay_skip),
        "fail_on_debug": "yes" if s.fail_on_debug else "no",
        "hsts": "on" if s.hsts else "off",
        "database": s.database,
        "static_url": s.static_url,
        "media_url": s.media_url,
    }


def deploy_sh(s: Settings) -> str:
    return render(
        "deploy.sh.j2",
        **_paths(s),
        **_release_check_context(s),
        branch=s.branch,
        dependencies=s.dependencies,
        dependency_groups=s.dependency_groups,
        dependency_extras=s.dependency_extras,
        requirements_file=s.requirements_file,
        nginx_site_file=s.nginx_site_file,
        gunicorn_version=GUNICORN_VERSION,
        poetry_version=POETRY_VERSION,
        poetry_export_version=POETRY_EXPORT_VERSION,
        pipenv_version=PIPENV_VERSION,
        uvicorn_worker_version=UVICORN_WORKER_VERSION,
        uvicorn_version=UVICORN_VERSION,
        runtime_files=RUNTIME_FILES,
        keep_releases=s.keep_releases,
        shared_paths=s.shared_paths,
        supervisorctl=SUPERVISORCTL,
        process_programs=s.process_programs,
        process_stop_seconds=s.process_stop_seconds,
    )


def ci_command_sh(s: Settings) -> str:
    return render(
        "ci-command.sh.j2",
        deploy_script=s.deploy_script,
        legacy_deploy_script=f"{s.legacy_bin_dir}/deploy.sh",
        redact=s.redact_script,
        env_file=s.env_file,
        secret_names=secret_names(s),
    )


def redact_py() -> str:
    """Static: the env file and the names come as arguments."""
    return (FILES / "redact.py").read_text()


def unlink_beneath_py() -> str:
    """Static: root's tool for removing files in the app user's tree without following a link."""
    return (FILES / "unlink_beneath.py").read_text()


def secret_names(s: Settings) -> tuple[str, ...]:
    """The .env names whose values a deploy's output must never show, for redact.py."""
    return ("SECRET_KEY", *(name for name, _ in s.django_secret_env))


def release_check_py() -> str:
    """Static: its inputs come as arguments from deploy.sh."""
    return (FILES / "release_check.py").read_text()


def _launcher_sh(s: Settings, what: str, commands_file: str) -> str:
    """run-process and run-scheduled: one launcher (django_vps_exec.py), each with its commands' file."""
    return render(
        "run-process.sh.j2",
        **_paths(s),
        what=what,
        exec_py=f"{s.bin_dir}/django_vps_exec.py",
        processes_json=commands_file,
    )


def run_process_sh(s: Settings) -> str:
    return _launcher_sh(s, "processes", s.processes_file)


def run_scheduled_sh(s: Settings) -> str:
    return _launcher_sh(s, "scheduled commands", s.schedule_file)


def schedule_json(s: Settings) -> str:
    """What each scheduled command runs, as an argv in the project's directory ("python" is the
    release's: the launcher puts its virtualenv first on PATH)."""
    commands = {entry.name: ["python", "manage.py", *entry.manage] if entry.manage else list(entry.run)
                for entry in s.schedule}  # fmt: skip
    return json.dumps(commands, indent=1, sort_keys=True) + "\n"


def schedule_step(s: Settings) -> str:
    entries = [{"name": e.name, "on": e.on, "unit": s.schedule_unit(e.name)} for e in s.schedule]
    return render(
        "host-schedule.sh.j2",
        **_paths(s),
        entries=entries,
        units_wanted=[entry["unit"] for entry in entries],
        run_scheduled=f"{s.bin_dir}/run-scheduled",
        schedule_due=f"{s.bin_dir}/schedule-due",
        schedule_due_sh=(FILES / "schedule-due.sh").read_text(),
    )


def processes_json(s: Settings) -> str:
    """JSON is the file's syntax: json.dumps is its encoder."""
    return json.dumps({name: list(argv) for name, argv in s.processes}, indent=1, sort_keys=True) + "\n"


def manage_sh(s: Settings) -> str:
    return render(
        "manage.sh.j2", **_paths(s), manage_script=s.manage_script, manage_py=f"{s.bin_dir}/django_vps_manage.py"
    )


def manage_command_sh() -> str:
    """Static: django-vps-manage, the same for every app on the host."""
    return (FILES / "django-vps-manage.sh").read_text()


def snapshot_py() -> str:
    """Static: the database snapshots and their restore (release check, deploy.sh, backup.sh)."""
    return (FILES / "snapshot.py").read_text()


def runtime_files() -> dict[str, str]:
    """Static: the WSGI entry and the settings overlay, by file name."""
    return {name: (FILES / name).read_text() for name in RUNTIME_FILES}


def supervisor_program(s: Settings) -> str:
    return render(
        "supervisor-program.conf.j2",
        **_paths(s),
        # supervisor restarts a program whose configuration changed: a new run.sh (what gunicorn is
        # started with, which a HUP keeps) then reaches the running site.
        run_sh_digest=sha256(run_sh(s))[:16],
        process_names=[name for name, _ in s.processes],
        run_process=s.run_process_script,
        processes_digest=sha256(run_process_sh(s) + processes_json(s))[:16],
        stop_seconds=s.process_stop_seconds,
        environment=encode.supervisor_environment([("HOME", s.home), ("USER", s.user)]),
    )


# What the app user may run as root: supervisorctl with Debian's configuration named (never the
# search that starts in the working directory), for its own program, from / (sudoers CWD).
# `stop` is backup.sh restore's: the app is stopped while its data is put back.
SUDO_COMMANDS = (("avail",), ("status", "{app}"), ("signal", "HUP", "{app}"), ("start", "{app}"), ("stop", "{app}"))


def sudo_commands(s: Settings) -> tuple[tuple[str, ...], ...]:
    base = (SUPERVISORCTL, "-c", SUPERVISOR_CONF)
    commands = [(*base, *(word.format(app=s.app_name) for word in args)) for args in SUDO_COMMANDS]
    # A deploy restarts the processes: each by its exact name (and stops them while it moves a
    # SQLite database into PostgreSQL: deploy.sh move_sqlite).
    for program in s.process_programs:
        commands += [(*base, "restart", program), (*base, "status", program), (*base, "stop", program)]
    return tuple(commands)


def sudoers(s: Settings) -> str:
    commands = Encoded(", ".join(encode.sudoers_command(argv) for argv in sudo_commands(s)))
    return render("sudoers.j2", user=s.user, commands=commands)


# nginx 1.25.1 (Debian 13) deprecates `listen ... http2` for `http2 on`, which 1.22 and 1.24 lack.
NGINX_HTTP2_DIRECTIVE_IMAGES = frozenset({"debian-13"})


def nginx_site(s: Settings, *, tls: bool) -> str:
    return render(
        "nginx-site.conf.j2",
        **_paths(s),
        tls=tls,
        client_max_body_size=s.client_max_body_size,
        http2_directive=s.image in NGINX_HTTP2_DIRECTIVE_IMAGES,
        asgi=s.interface == "asgi",
        # map's variables are global to nginx: one per app (a digest: app names may hold '-').
        upgrade_variable=f"django_vps_upgrade_{sha256(s.app_name)[:12]}",
        hsts=s.hsts,
        static_url=s.static_url,
        media_url=s.media_url,
    )


def django_env(s: Settings, secret_key: str, secret_env: list[tuple[str, str]]) -> str:
    """The .env file; holds secrets, so only ever rendered inside an apply and sent by stdin."""
    logs = s.logs
    # DEBUG empty: off for every usual reader (decouple's and django-environ's bool casts, bool() of
    # os.getenv, == "True"), where "False" or "0" would be true for `bool(os.getenv("DEBUG"))`.
    managed = [
        ("SECRET_KEY", secret_key),
        ("DEBUG", ""),
        ("ALLOWED_HOSTS", s.domain),
        ("CSRF_TRUSTED_ORIGINS", f"https://{s.domain}"),
        ("LOGS_DIR", logs.directory),
        ("LOG_FILENAME", logs.filename),
        ("LOG_SIZE", str(logs.size_mb)),
        ("LOG_ROTATE", str(logs.rotate)),
        ("LOG_LEVEL", logs.level),
    ]
    given = {name for name, _ in [*s.django_env, *secret_env]}
    # The user's own DATABASE_URL (or DB_NAME...) wins over the database the program provides.
    provided = [(name, value) for name, value in s.database_env if name not in given]
    if s.redis:  # (settings refuse a REDIS_URL of the user's with redis on)
        provided.append(("REDIS_URL", f"unix://{REDIS_SOCKET}?db=0"))
    return render("django.env.j2", variables=[*managed, *provided, *s.django_env, *secret_env])


class _CloudConfigDumper(yaml.SafeDumper):
    """PyYAML's safe serializer, with multi-line strings (the host key) as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_CloudConfigDumper.add_representer(str, _str_representer)

CLOUD_INIT_HEADER = """#cloud-config
# Rendered by django-vps (a YAML serializer writes it). The SSH host key is generated by the stack,
# so every connection pins it from the first one on. Logins go to the admin user (sudo) with keys
# only; root cannot log in. With ssh_keys given, cloud-init generates no host key of its own (cc_ssh).
"""


def data_volume_fstab(device: str) -> list[str]:
    """The data volume's fstab entry (cloud-init's `mounts` form): by its stable by-id name, never
    formatted here; nofail, so a server whose volume is gone still boots (and its units that need the
    mount stay down, see the volume step)."""
    if not _VOLUME_DEVICE.match(device):
        raise ValueError(f"{device!r} is not a Hetzner Volume's device (/dev/disk/by-id/scsi-0HC_Volume_<id>)")
    return [device, DATA_MOUNT, "ext4", DATA_MOUNT_OPTIONS, "0", "2"]


def cloud_init(
    host_private_key: str,
    host_public_key: str,
    authorized_keys: list[str],
    admin_user: str,
    *,
    data_device: str | None = None,
) -> str:
    """The user data, serialized by PyYAML rather than templated: a value cannot become YAML syntax.
    Every key is parsed and written again (sshkeys.py). With `data_device` (the data volume's
    linux_device), cloud-init's mounts module writes its fstab entry and mounts it at DATA_MOUNT
    when the device is there at its init stage; it skips an entry whose device is not a block device
    yet (cloud-init's cc_mounts.py: sanitize_devname, _is_block_device), and Hetzner attaches the
    volume only once the server exists, so then the volume step writes the same line and mounts it,
    before any step writes data."""
    private = host_private_key.strip() + "\n"
    encode.refuse_controls(private, "the host key", allow="\n")
    document = {
        "ssh_deletekeys": True,
        "ssh_keys": {
            "ed25519_private": private,
            "ed25519_public": sshkeys.public_key(host_public_key.strip(), keep_comment=False).line(),
        },
        "disable_root": True,
        "ssh_pwauth": False,
        "users": [
            {
                "name": admin_user,
                "gecos": "django-vps administrator",
                "shell": "/bin/bash",
                "groups": ["sudo"],
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": True,
                "ssh_authorized_keys": [sshkeys.public_key(key.strip()).line() for key in authorized_keys],
            }
        ],
        "package_update": False,
    }
    if data_device is not None:
        document["mounts"] = [data_volume_fstab(data_device)]
    body = yaml.dump(document, Dumper=_CloudConfigDumper, sort_keys=False, allow_unicode=False, width=200)
    return CLOUD_INIT_HEADER + body


def deploy_workflow(s: Settings) -> str:
    return render(
        "deploy-workflow.yml.j2",
        repository=s.repository,
        domain=s.domain,
        branch=s.branch,
        environment=s.github_environment,
        deploy_script=s.deploy_script,
    )


# The host steps, in the order host.py runs them.


def packages_step(s: Settings) -> str:
    return render(
        "host-packages.sh.j2",
        uv_version=UV_VERSION,
        fail2ban=s.fail2ban,
        redis=s.redis,
        postgresql=s.database == "postgresql",
        restic=s.offsite is not None,
    )


def redis_step(s: Settings) -> str:
    return render(
        "host-redis.sh.j2",
        redis=s.redis,
        user=s.user,
        programs=(s.app_name, *s.process_programs),
        socket=REDIS_SOCKET,
        max_memory=s.redis_max_memory,
        policy=s.redis_eviction_policy,
    )


def known_hosts_clone(s: Settings) -> str:
    return "".join(f"{encode.known_host(line)}\n" for line in s.clone_host_keys)


def authorized_keys(s: Settings, ci_public_key: str) -> str:
    """The CI key may only deploy or roll back: a forced command, no pty, no forwarding of any kind."""
    return encode.authorized_key(ci_public_key.strip(), [("restrict", None), ("command", s.ci_command)]) + "\n"


def app_user_step(s: Settings, ci_public_key: str) -> str:
    return render(
        "host-app-user.sh.j2",
        **_paths(s),
        deploy_key=s.deploy_key_file,
        ssh_dir=s.ssh_dir,
        known_hosts=s.clone_known_hosts,
        known_hosts_file=known_hosts_clone(s),
        authorized_keys=s.authorized_keys,
        authorized_keys_file=authorized_keys(s, ci_public_key),
        ci_command=s.ci_command,
        ci_command_sh=ci_command_sh(s),
        sudoers=sudoers(s),
        sudoers_file=f"/etc/sudoers.d/django-vps-{s.app_name}",
        data_dir=s.data_dir,
    )


def security_step(s: Settings) -> str:
    return render(
        "host-security.sh.j2",
        permit_root_login="prohibit-password" if s.login_user == "root" else "no",
        host_firewall=s.host_firewall,
        fail2ban=s.fail2ban,
    )


ADMIN_KEYS_HEADER = "# Written by django-vps from adminSshKeys: a change here is replaced on the next pulumi up.\n"


def admin_authorized_keys(s: Settings, login_public_key: str) -> str:
    """A created server's admin user's keys: the provisioning key (the stack's own login) first."""
    assert s.server is not None, "an existing host's login keys are the user's own"
    keys = (login_public_key, *s.server.admin_ssh_keys)
    return ADMIN_KEYS_HEADER + "".join(f"{encode.authorized_key(key, [])}\n" for key in keys)


def admin_keys_step(s: Settings, login_public_key: str) -> str:
    return render(
        "host-admin-keys.sh.j2", user=s.login_user, authorized_keys_file=admin_authorized_keys(s, login_public_key)
    )


def _logs_context(s: Settings) -> dict[str, object]:
    """logsDir in our own tree (/var/log/django-vps/<app>): root makes the directories down to the
    app's one; the app user makes the rest."""
    dedicated = f"{LOGS_ROOT}/{s.app_name}"
    ours = s.logs.directory == dedicated or s.logs.directory.startswith(dedicated + "/")
    return {"logs_dir": s.logs.directory, "logs_root": LOGS_ROOT if ours else None, "logs_app_dir": dedicated}


def clone_step(s: Settings) -> str:
    ssh_command = (
        f"ssh -i {s.deploy_key_file} -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={s.clone_known_hosts} "
        # A fetch whose connection stalls fails in a minute rather than holding a deploy for ever.
        "-o ConnectTimeout=20 -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
    )
    return render(
        "host-clone.sh.j2",
        **_paths(s),
        **_logs_context(s),
        clone_url=s.clone_url,
        branch=s.branch,
        ssh_command=ssh_command,
    )


def backup_sh(s: Settings) -> str:
    return render(
        "backup.sh.j2",
        **_paths(s),
        **_release_check_context(s),
        **_offsite_context(s),
        schedule=s.backup_schedule,
        keep_daily_local=s.backup_keep_daily,
        keep_weekly_local=s.backup_keep_weekly,
        supervisorctl=SUPERVISORCTL,
    )


def offsite_step(s: Settings, public_key: str) -> str:
    """Off-site backups: the app user's password and credentials from stdin (the repository
    password's line, then SFTP's private key, or S3's access key ID and secret key lines; the pinned
    host key of SFTP), then the restic repository, made once. `public_key` is what the SFTP server
    must authorize (unused with S3)."""
    o = s.offsite
    assert o is not None
    sftp = o.sftp
    return render(
        "host-offsite.sh.j2",
        **_paths(s),
        **_offsite_context(s),
        known_hosts_file=encode.known_host(sftp.known_host) + "\n" if sftp else "",
        public_key=encode.authorized_key(public_key.strip(), []) if sftp else "",
    )


def _offsite_context(s: Settings) -> dict[str, object]:
    o = s.offsite
    if o is None:
        return {"offsite": False}
    common = {
        "offsite": True,
        "offsite_dir": s.offsite_dir,
        "offsite_password": s.offsite_password_file,
        "repository": o.repository,
        "keep_daily": o.keep_daily,
        "keep_weekly": o.keep_weekly,
    }
    if o.s3 is not None:
        # restic's -o options of the S3 backend (restic 0.14: s3.region, as `restic help` lists it).
        options = [f"s3.region={o.s3.region}"] if o.s3.region else []
        return {
            **common,
            "target": "s3",
            "s3_credentials": s.offsite_s3_credentials,
            "restic_options": [word for option in options for word in ("-o", option)],
        }
    sftp = o.sftp
    assert sftp is not None
    return {
        **common,
        "target": "sftp",
        "offsite_key": s.offsite_key_file,
        "offsite_known_hosts": s.offsite_known_hosts,
        "sftp_command": s.sftp_command,
        "sftp_argv": s.sftp_command.split(" "),
        "sftp_target": f"{sftp.user}@{sftp.host}:{sftp.port}",
    }


def backup_service(s: Settings) -> str:
    return render("backup.service.j2", app_name=s.app_name, user=s.user, backup_script=s.backup_script)


def backup_timer(s: Settings) -> str:
    return render("backup.timer.j2", app_name=s.app_name, schedule=s.backup_schedule)


def backup_step(s: Settings) -> str:
    unit = s.backup_timer.removesuffix(".timer")
    return render(
        "host-backup.sh.j2",
        **_paths(s),
        schedule=s.backup_schedule,
        backup_script=s.backup_script,
        backup_sh=backup_sh(s),
        service=backup_service(s),
        timer=backup_timer(s),
        service_file=f"/etc/systemd/system/{unit}.service",
        timer_file=f"/etc/systemd/system/{unit}.timer",
        timer_unit=s.backup_timer,
    )


def volume_step(s: Settings, device: str) -> str:
    """The data volume (dataVolume) mounted before any data is written; `device` is its linux_device."""
    assert s.data_volume is not None
    postgresql = s.database == "postgresql"
    return render(
        "host-volume.sh.j2",
        device=device,
        mount_point=DATA_MOUNT,
        size_gb=int(s.data_volume.size_gb),
        fstab_line=" ".join(data_volume_fstab(device)),
        postgresql=postgresql,
        units=[unit for unit in DATA_VOLUME_UNITS if postgresql or not unit.startswith("postgresql")],
    )


def database_step(s: Settings) -> str:
    """PostgreSQL (database postgresql only): the unix socket only, the app's role and database."""
    return render(
        "host-database.sh.j2",
        **_paths(s),
        database=s.database_name,
        socket_dir=POSTGRES_SOCKET_DIR,
        data_volume=s.data_volume is not None,
        data_mount=DATA_MOUNT,
    )


def env_step(s: Settings) -> str:
    given = {name for name, _ in [*s.django_env, *s.django_secret_env]}
    return render(
        "host-env.sh.j2",
        **_paths(s),
        process_programs=s.process_programs,
        moves_to_postgresql=s.database == "postgresql" and "DATABASE_URL" not in given,
    )


def deploy_step(s: Settings) -> str:
    return render(
        "host-deploy.sh.j2",
        **_paths(s),
        run_sh=run_sh(s),
        gunicorn_conf_py=gunicorn_conf(s),
        deploy_sh=deploy_sh(s),
        release_check_py=release_check_py(),
        runtime_files={
            **runtime_files(),
            "django_vps_manage.py": (FILES / "django_vps_manage.py").read_text(),
            "django_vps_exec.py": (FILES / "django_vps_exec.py").read_text(),
            "move_sqlite.py": (FILES / "move_sqlite.py").read_text(),
            "processes.json": processes_json(s),
            "schedule.json": schedule_json(s),
        },
        run_scheduled_script=f"{s.bin_dir}/run-scheduled",
        run_scheduled_sh=run_scheduled_sh(s),
        run_process_script=s.run_process_script,
        run_process_sh=run_process_sh(s),
        manage_script=s.manage_script,
        manage_sh=manage_sh(s),
        manage_command=MANAGE_COMMAND,
        manage_command_sh=manage_command_sh(),
        snapshot=f"{s.bin_dir}/snapshot.py",
        snapshot_py=snapshot_py(),
        redact=s.redact_script,
        redact_py=redact_py(),
        secret_names=secret_names(s),
    )


def supervisor_step(s: Settings) -> str:
    return render(
        "host-supervisor.sh.j2",
        **_paths(s),
        program_conf=supervisor_program(s),
        programs=(s.app_name, *s.process_programs),
        legacy_files=LEGACY_BIN_FILES,
        unlink_beneath_py=unlink_beneath_py(),
    )


def _site_context(s: Settings) -> dict[str, object]:
    return {"http_site": nginx_site(s, tls=False), "https_site": nginx_site(s, tls=True)}


def nginx_step(s: Settings) -> str:
    return render("host-nginx.sh.j2", **_paths(s), **_site_context(s))


def dns_wait_step(s: Settings, expected_ipv4: str) -> str:
    return render(
        "host-dns-wait.sh.j2",
        domain=s.domain,
        expected_ipv4=expected_ipv4,
        attempts=DNS_WAIT_ATTEMPTS,
        interval=DNS_WAIT_INTERVAL,
    )


def ocsp_snippet(s: Settings) -> str:
    """What the certbot step writes for a certificate that names an OCSP responder; the https site
    includes it."""
    return render("nginx-ocsp.conf.j2", domain=s.domain)


def certbot_step(s: Settings) -> str:
    return render(
        "host-certbot.sh.j2",
        **_paths(s),
        **_site_context(s),
        email=s.letsencrypt_email,
        acme_server=s.acme_server,
        ocsp_snippet=ocsp_snippet(s),
    )


def verify_step(s: Settings) -> str:
    return render(
        "host-verify.sh.j2",
        **_paths(s),
        deploy_digest=sha256(deploy_step(s))[:16],
        nginx_digest=sha256(nginx_step(s) + certbot_step(s) + supervisor_step(s))[:16],
        redact=s.redact_script,
        secret_names=secret_names(s),
    )


TEARDOWN_PARTS = ("nginx", "supervisor", "app-user", "security")


def teardown_step(s: Settings, part: str) -> str:
    if part not in TEARDOWN_PARTS:
        raise ValueError(f"no teardown for {part!r}: one of {', '.join(TEARDOWN_PARTS)}")
    return render(
        "host-teardown.sh.j2",
        **_paths(s),
        part=part,
        backup_timer=s.backup_timer,
        offsite_repository=s.offsite.repository if s.offsite else "",
        ci_command=s.ci_command,
        deploy_key=s.deploy_key_file,
        authorized_keys=s.authorized_keys,
        sudoers_file=f"/etc/sudoers.d/django-vps-{s.app_name}",
        manage_command=MANAGE_COMMAND,
    )
