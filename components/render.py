"""Pure rendering: Settings (and plain values) in, file and script text out.

Every script that runs on the host comes from here, so each can be read, diffed, tested and run
on the test host without Pulumi. Rendering is deterministic: the same input gives the same bytes,
which is what lets the engine re-run a step (an update) exactly when its content changes.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import jinja2

from components.settings import Settings

FILES = Path(__file__).resolve().parent.parent / "files"
UV_VERSION = "0.13.9"
DNS_WAIT_ATTEMPTS = 60
DNS_WAIT_INTERVAL = 10

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(FILES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
# `| sh` quotes a value for bash: URLs and emails may hold characters the shell would interpret.
_env.filters["sh"] = shlex.quote


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
        "domain": s.domain,
    }


# Files that land on the host.


def run_sh(s: Settings) -> str:
    return render("run.sh.j2", **_paths(s), wsgi_application=s.wsgi_application)


def gunicorn_conf(s: Settings) -> str:
    return render("gunicorn.conf.py.j2", app_name=s.app_name, workers=s.gunicorn_workers)


def deploy_sh(s: Settings) -> str:
    return render(
        "deploy.sh.j2",
        **_paths(s),
        branch=s.branch,
        dependencies=s.dependencies,
        uv_group=s.uv_group,
        wsgi_application=s.wsgi_application,
        health_check_path=s.health_check_path,
        keep_releases=s.keep_releases,
        shared_paths=s.shared_paths,
    )


def ci_command_sh(s: Settings) -> str:
    return render(
        "ci-command.sh.j2",
        deploy_script=s.deploy_script,
        redact=s.redact_script,
        env_file=s.env_file,
        secret_names=secret_names(s),
    )


def redact_py() -> str:
    """Static: the env file and the names come as arguments."""
    return (FILES / "redact.py").read_text()


def secret_names(s: Settings) -> str:
    """The .env names whose values a deploy's output must never show, for redact.py."""
    return " ".join(["SECRET_KEY", *(name for name, _ in s.django_secret_env)])


def release_check_py() -> str:
    """Static: its inputs come as arguments from deploy.sh."""
    return (FILES / "release_check.py").read_text()


def supervisor_program(s: Settings) -> str:
    return render("supervisor-program.conf.j2", **_paths(s))


def sudoers(s: Settings) -> str:
    return render("sudoers.j2", **_paths(s))


# nginx 1.25.1 (Debian 13) deprecates `listen ... http2` for `http2 on`, which 1.22 and 1.24 lack.
NGINX_HTTP2_DIRECTIVE_IMAGES = frozenset({"debian-13"})


def nginx_site(s: Settings, *, tls: bool) -> str:
    return render(
        "nginx-site.conf.j2",
        **_paths(s),
        tls=tls,
        client_max_body_size=s.client_max_body_size,
        http2_directive=s.image in NGINX_HTTP2_DIRECTIVE_IMAGES,
        hsts=s.hsts,
    )


def django_env(s: Settings, secret_key: str, secret_env: list[tuple[str, str]]) -> str:
    """The .env file; holds secrets, so only ever rendered inside an apply and sent by stdin."""
    return render(
        "django.env.j2", domain=s.domain, logs=s.logs, secret_key=secret_key, extra=[*s.django_env, *secret_env]
    )


def cloud_init(host_private_key: str, host_public_key: str, authorized_keys: list[str], admin_user: str) -> str:
    return render(
        "cloud-init.yaml.j2",
        admin_user=admin_user,
        host_private_key=host_private_key.strip(),
        host_public_key=host_public_key.strip(),
        authorized_keys=[key.strip() for key in authorized_keys],
    )


def deploy_workflow(s: Settings) -> str:
    return render(
        "deploy-workflow.yml.j2",
        repository=s.repository,
        domain=s.domain,
        branch=s.branch,
        deploy_script=s.deploy_script,
    )


# The host steps, in the order host.py runs them.


def packages_step(s: Settings) -> str:
    return render("host-packages.sh.j2", uv_version=UV_VERSION)


def app_user_step(s: Settings, ci_public_key: str) -> str:
    return render(
        "host-app-user.sh.j2",
        **_paths(s),
        clone_host_keys=s.clone_host_keys,
        ci_public_key=ci_public_key.strip(),
        ci_command=s.ci_command,
        ci_command_sh=ci_command_sh(s),
        sudoers=sudoers(s).rstrip("\n"),
    )


def security_step(s: Settings) -> str:
    return render(
        "host-security.sh.j2",
        login_user=s.login_user,
        host_firewall=s.host_firewall,
        fail2ban=s.fail2ban,
    )


def clone_step(s: Settings) -> str:
    return render("host-clone.sh.j2", **_paths(s), clone_url=s.clone_url, branch=s.branch, logs_dir=s.logs.directory)


def env_step(s: Settings) -> str:
    return render("host-env.sh.j2", **_paths(s))


def deploy_step(s: Settings) -> str:
    return render(
        "host-deploy.sh.j2",
        **_paths(s),
        run_sh=run_sh(s),
        gunicorn_conf_py=gunicorn_conf(s),
        deploy_sh=deploy_sh(s),
        release_check_py=release_check_py(),
        redact=s.redact_script,
        redact_py=redact_py(),
        secret_names=secret_names(s),
    )


def supervisor_step(s: Settings) -> str:
    return render("host-supervisor.sh.j2", **_paths(s), program_conf=supervisor_program(s))


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


def certbot_step(s: Settings) -> str:
    return render(
        "host-certbot.sh.j2", **_paths(s), **_site_context(s), email=s.letsencrypt_email, acme_server=s.acme_server
    )


TEARDOWN_PARTS = ("nginx", "supervisor", "app-user", "security")


def teardown_step(s: Settings, part: str) -> str:
    if part not in TEARDOWN_PARTS:
        raise ValueError(f"no teardown for {part!r}: one of {', '.join(TEARDOWN_PARTS)}")
    return render("host-teardown.sh.j2", **_paths(s), part=part, ci_command=s.ci_command)
