"""The host steps, run by real bash in a sandbox (see sandbox.py): the files they install are
byte-identical to what render.py renders, with the intended mode and owner; a second run with
nothing changed installs and reloads nothing; a site nginx rejects never stays installed."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from components import render
from components.settings import SUPERVISOR_CONF
from tests.render.catalog import ocsp_snippet
from tests.render.conftest import CI_PUBLIC_KEY, find_tool, make_settings
from tests.render.sandbox import Sandbox, sandboxed

HOOK = "/etc/letsencrypt/renewal-hooks/deploy/django-vps-reload-nginx"
# Every supervisorctl of root's steps names Debian's configuration.
SUPERVISORCTL = ["supervisorctl", "-c", SUPERVISOR_CONF]


def as_app(s, *command: str) -> list[str]:
    """How a step runs a command as the app user."""
    return ["sudo", "-n", "-u", s.user, "-H", "--", *command]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


def _site(s) -> str:
    return f"/etc/nginx/conf.d/{s.app_name}.conf"


def _reloads(sandbox: Sandbox) -> list[list[str]]:
    return [call for call in sandbox.calls("systemctl") if call[1:] == ["reload", "nginx"]]


def test_deploy_step_installs_run_and_deploy_scripts_then_deploys(variant, sandbox: Sandbox) -> None:
    s = variant
    sandbox.run(render.deploy_step(s))
    assert sandbox.files() == {
        s.run_script: render.run_sh(s),
        s.gunicorn_conf: render.gunicorn_conf(s),
        s.deploy_script: render.deploy_sh(s),
        s.release_check: render.release_check_py(),
        f"{s.bin_dir}/snapshot.py": render.snapshot_py(),
        s.redact_script: render.redact_py(),
        **{f"{s.bin_dir}/{name}": text for name, text in render.runtime_files().items()},
        f"{s.bin_dir}/django_vps_manage.py": (render.FILES / "django_vps_manage.py").read_text(),
        s.manage_script: render.manage_sh(s),
        f"{s.bin_dir}/django_vps_exec.py": (render.FILES / "django_vps_exec.py").read_text(),
        f"{s.bin_dir}/move_sqlite.py": (render.FILES / "move_sqlite.py").read_text(),
        s.processes_file: render.processes_json(s),
        s.run_process_script: render.run_process_sh(s),
        s.schedule_file: render.schedule_json(s),
        f"{s.bin_dir}/run-scheduled": render.run_scheduled_sh(s),
        render.MANAGE_COMMAND: render.manage_command_sh(),
    }
    assert sandbox.meta(s.run_script) == ("0755", "root:root")
    assert sandbox.meta(s.deploy_script) == ("0755", "root:root")
    # Run by deploy.sh with the release's Python, never executed directly: readable, not executable.
    assert sandbox.meta(s.release_check) == ("0644", "root:root")
    assert sandbox.meta(s.redact_script) == ("0644", "root:root")
    assert sandbox.meta(f"{s.bin_dir}/snapshot.py") == ("0644", "root:root")
    assert sandbox.meta(f"{s.bin_dir}/move_sqlite.py") == ("0644", "root:root")
    assert sandbox.meta(s.gunicorn_conf) == ("0644", "root:root")  # read by gunicorn, which the app user runs
    # Root's directory for the app, outside the app user's home.
    assert s.bin_dir == f"/opt/django-vps/{s.app_name}/bin" and not s.bin_dir.startswith(s.home)
    assert ["install", "-d", "-m", "0755", "-o", "root", "-g", "root", "/opt/django-vps", s.opt_dir, s.bin_dir] in (
        sandbox.calls("install")
    )
    # deploy.sh as the app user, its output through the mask (as the app user too: root reads nothing
    # in the app user's tree), with the .env and the names of the secrets.
    assert sorted(sandbox.calls("sudo")) == sorted(
        [
            as_app(s, s.deploy_script),
            as_app(s, "python3", "-I", s.redact_script, s.env_file, "SECRET_KEY",
                   *(name for name, _ in s.django_secret_env)),
        ]
    )  # fmt: skip


def test_supervisor_step_installs_the_program(variant, sandbox: Sandbox) -> None:
    s = variant
    sandbox.run(render.supervisor_step(s))
    conf = f"/etc/supervisor/conf.d/{s.app_name}.conf"
    assert sandbox.files() == {conf: render.supervisor_program(s)}
    assert sandbox.meta(conf) == ("0644", "root:root")
    calls = sandbox.calls("supervisorctl")
    # (the recording stub's reread names no change, so no update follows: test_supervisor and the
    # e2e run the real supervisorctl's answers)
    assert calls[0] == [*SUPERVISORCTL, "reread"]
    assert [*SUPERVISORCTL, "status", s.app_name] in calls
    # Once it runs, what earlier versions left in ~/bin goes, by the tool that follows no link.
    (python,) = sandbox.calls("python3")
    assert python == ["python3", "-I", "-", s.home, "bin", *render.LEGACY_BIN_FILES]
    assert calls.index([*SUPERVISORCTL, "status", s.app_name]) < sandbox.calls().index(python)


def test_app_user_step_installs_keys_and_sudo_rule(variant, sandbox: Sandbox) -> None:
    s = variant
    deploy_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH PRIVATE KEY-----\n"
    sandbox.run(render.app_user_step(s, CI_PUBLIC_KEY + "\n"), stdin=deploy_key)
    sudoers = f"/etc/sudoers.d/django-vps-{s.app_name}"
    assert sandbox.files() == {
        f"{s.home}/.ssh/deploy_key": deploy_key,
        f"{s.home}/.ssh/known_hosts_clone": "".join(f"{line}\n" for line in s.clone_host_keys),
        s.ci_command: render.ci_command_sh(s),
        f"{s.home}/.ssh/authorized_keys": f'restrict,command="{s.ci_command}" {CI_PUBLIC_KEY}\n',
        sudoers: render.sudoers(s),
    }
    # The app user's own files are written by the app user (root never writes in its tree).
    owner = f"{s.user}:{s.user}"
    assert sandbox.meta(f"{s.home}/.ssh/deploy_key") == ("0600", owner)
    assert sandbox.meta(f"{s.home}/.ssh/known_hosts_clone") == ("0644", owner)
    assert sandbox.meta(f"{s.home}/.ssh/authorized_keys") == ("0600", owner)
    assert as_app(s, "install", "-d", "-m", "0700", f"{s.home}/.ssh") in sandbox.calls("sudo")
    assert not [c for c in sandbox.calls("chown") if c[-1].startswith(s.home)], "root chowned in the home"
    # The forced command is root's, beside deploy.sh, outside the home: the CI key (the app user)
    # cannot change it.
    assert s.ci_command == f"{s.bin_dir}/ci-command"
    assert sandbox.meta(s.ci_command) == ("0755", "root:root")
    assert sandbox.meta(sudoers) == ("0440", "root:root")
    # sh (dash): sshd runs the forced command with it, and it reads no ~/.bashrc.
    assert sandbox.calls("useradd") == [
        ["useradd", "--create-home", "--home-dir", s.home, "--shell", "/bin/sh", "--user-group", s.user]
    ]
    assert sandbox.calls("usermod") == [["usermod", "--append", "--groups", s.user, "www-data"]]
    # The rule is checked by visudo before it is installed.
    calls = [call[0] for call in sandbox.calls() if call[0] in ("visudo", "mv")]
    assert calls.index("visudo") < len(calls) - 1 - calls[::-1].index("mv")

    sandbox.clear_calls()
    sandbox.run(render.app_user_step(s, CI_PUBLIC_KEY + "\n"), stdin=deploy_key)
    assert sandbox.calls("useradd") == [], "the user exists: not created again"
    assert sandbox.calls("mv") == [], "nothing changed: nothing installed again"


def test_env_step_reloads_gunicorn_only_when_the_env_changed(sandbox: Sandbox) -> None:
    s = make_settings()
    env = render.django_env(s, "x" * 50, [])
    step = render.env_step(s)
    hup = [*SUPERVISORCTL, "signal", "HUP", s.app_name]

    sandbox.run(step, stdin=env)
    assert s.env_file == f"{s.app_dir}/shared/.env"
    assert sandbox.files() == {s.env_file: env}
    # Written by the app user, in its own tree.
    assert sandbox.meta(s.env_file) == ("0600", f"{s.user}:{s.user}")
    assert sandbox.calls("chown") == []
    # The shared directory may not exist yet when the .env is written; the app user makes it.
    assert as_app(s, "install", "-d", "-m", "0755", s.app_dir, s.shared_dir) in sandbox.calls("sudo")
    assert hup in sandbox.calls("supervisorctl")

    sandbox.clear_calls()
    sandbox.run(step, stdin=env)
    assert hup not in sandbox.calls("supervisorctl"), "unchanged .env: no reload"

    sandbox.run(step, stdin=env + "EXTRA=1\n")
    assert hup in sandbox.calls("supervisorctl")
    assert sandbox.files() == {s.env_file: env + "EXTRA=1\n"}


def test_env_step_restarts_the_processes_only_when_the_env_changed(sandbox: Sandbox) -> None:
    """A worker reads its environment once, at start (a HUP is gunicorn's alone): a changed .env
    restarts each of the processes; an unchanged one touches none."""
    s = make_settings(processes={"worker": "rq worker", "beat": "celery -A main beat"})
    env = render.django_env(s, "x" * 50, [])
    step = render.env_step(s)
    # In the settings' order: by name.
    restarts = [[*SUPERVISORCTL, "restart", f"{s.app_name}.{name}"] for name in ("beat", "worker")]

    sandbox.run(step, stdin=env)
    assert [c for c in sandbox.calls("supervisorctl") if "restart" in c] == restarts
    sandbox.clear_calls()
    sandbox.run(step, stdin=env)
    assert not [c for c in sandbox.calls("supervisorctl") if "restart" in c], "unchanged .env: no restart"
    sandbox.run(step, stdin=env + "EXTRA=1\n")
    assert [c for c in sandbox.calls("supervisorctl") if "restart" in c] == restarts
    # Without processes, only gunicorn's HUP.
    plain = make_settings()
    sandbox.clear_calls()
    sandbox.run(render.env_step(plain), stdin=env + "OTHER=2\n")
    assert not [c for c in sandbox.calls("supervisorctl") if "restart" in c]


def test_env_step_leaves_a_site_moving_to_postgresql_on_sqlite_until_its_deploy(sandbox: Sandbox) -> None:
    """database sqlite -> postgresql: the site's .env stays SQLite's and nothing reloads (the live
    release, reloaded or rebooted, would meet an empty PostgreSQL, or one it has no driver for); the
    new .env waits beside it for the deploy that moves the data (deploy.sh makes it the .env at the
    switch). Once on PostgreSQL, a changed .env reloads as usual; a move given up leaves none waiting."""
    sqlite, postgresql = make_settings(), make_settings(database="postgresql")
    hup = [*SUPERVISORCTL, "signal", "HUP", sqlite.app_name]
    on_sqlite = render.django_env(sqlite, "x" * 50, [])
    sandbox.run(render.env_step(sqlite), stdin=on_sqlite)
    sandbox.clear_calls()
    moved = render.django_env(postgresql, "x" * 50, [])
    result = sandbox.run(render.env_step(postgresql), stdin=moved)
    assert sandbox.files() == {postgresql.env_file: on_sqlite, postgresql.pending_env_file: moved}
    assert sandbox.meta(postgresql.pending_env_file)[0] == "0600"
    assert hup not in sandbox.calls("supervisorctl"), "the live SQLite release was pointed at PostgreSQL"
    assert (
        "the database moves to PostgreSQL: the site keeps SQLite and its .env until a deploy has moved the data; "
        f"the new .env waits as {postgresql.pending_env_file}"
    ) in result.stdout
    # Another up before that deploy: the waiting .env follows the settings, the live one stays.
    sandbox.run(render.env_step(postgresql), stdin=moved + "EXTRA=1\n")
    assert sandbox.files() == {postgresql.env_file: on_sqlite, postgresql.pending_env_file: moved + "EXTRA=1\n"}
    assert hup not in sandbox.calls("supervisorctl")
    # The deploy moved the data and made the waiting .env the site's (take_pending_env in deploy.sh).
    (sandbox.root / postgresql.pending_env_file.lstrip("/")).replace(sandbox.root / postgresql.env_file.lstrip("/"))
    sandbox.run(render.env_step(postgresql), stdin=moved)
    assert hup in sandbox.calls("supervisorctl")
    assert sandbox.files() == {postgresql.env_file: moved}
    # A move given up before its deploy: back on sqlite, nothing waits.
    sandbox.run(render.env_step(sqlite), stdin=on_sqlite)
    sandbox.run(render.env_step(postgresql), stdin=moved)
    assert postgresql.pending_env_file in sandbox.files()
    sandbox.run(render.env_step(sqlite), stdin=on_sqlite)
    assert sandbox.files() == {sqlite.env_file: on_sqlite}
    # The user's own DATABASE_URL is theirs to change: it reloads at once.
    own = make_settings(database="postgresql", djangoEnv=["DATABASE_URL=postgres://db.internal/blog"])
    sandbox.clear_calls()
    sandbox.run(render.env_step(own), stdin=render.django_env(own, "x" * 50, []))
    assert hup in sandbox.calls("supervisorctl")


def test_nginx_site_lifecycle(variant, sandbox: Sandbox) -> None:
    """nginx step (HTTP) -> certbot step (certificate, hook, HTTPS) -> nginx step again -> teardown."""
    s = variant
    site, http, https = _site(s), render.nginx_site(s, tls=False), render.nginx_site(s, tls=True)
    nginx_step = sandboxed(render.nginx_step(s), s.domain)

    sandbox.run(nginx_step)
    assert sandbox.files() == {site: http}
    assert sandbox.meta(site) == ("0644", "root:root")
    assert sandbox.calls("nginx") == [["nginx", "-t", "-q"]]
    assert len(_reloads(sandbox)) == 1

    sandbox.clear_calls()
    sandbox.run(nginx_step)
    assert sandbox.calls("nginx") == [] and _reloads(sandbox) == [], "nothing changed: no check, no reload"

    sandbox.clear_calls()
    sandbox.run(sandboxed(render.certbot_step(s), s.domain))
    (certbot,) = sandbox.calls("certbot")
    assert certbot[1:] == [
        "certonly", "--nginx", "--non-interactive", "--agree-tos", "--no-eff-email",
        f"--email={s.letsencrypt_email}", f"--server={s.acme_server}",
        f"--cert-name={s.domain}", f"--domains={s.domain}", "--keep-until-expiring",
    ]  # fmt: skip
    files = sandbox.files()
    assert files[site] == https
    # The certbot stub leaves no cert.pem, so openssl finds no OCSP responder: no snippet.
    assert _ocsp_snippet(s) not in files
    assert sandbox.meta(HOOK) == ("0755", "root:root")
    assert len(_reloads(sandbox)) == 1
    assert _renewal_hook_behaviour(sandbox) == RENEWAL_HOOK_BEHAVIOUR

    sandbox.clear_calls()
    sandbox.run(nginx_step)
    assert sandbox.files()[site] == https, "with the certificate the nginx step keeps the HTTPS site"
    assert _reloads(sandbox) == []

    sandbox.clear_calls()
    sandbox.run(render.teardown_step(s, "nginx"))
    assert site not in sandbox.files()
    assert sandbox.calls("nginx") == [["nginx", "-t", "-q"]] and len(_reloads(sandbox)) == 1


# What certbot's deploy hook must do after a renewal: check nginx's configuration, and reload it
# only if the check passed (else fail, so certbot reports it). (exit code, calls) per case.
RENEWAL_HOOK_BEHAVIOUR = {
    "accepted": (0, [["nginx", "-t", "-q"], ["systemctl", "reload", "nginx"]]),
    "rejected": (1, [["nginx", "-t", "-q"]]),
}


def _renewal_hook_behaviour(sandbox: Sandbox) -> dict[str, tuple[int, list[list[str]]]]:
    """Runs the installed hook as certbot would (executed, by its #! line) with nginx accepting,
    then rejecting, the configuration; the sandbox's state is left as it was."""
    found = {}
    for case in ("accepted", "rejected"):
        sandbox.clear_calls()
        sandbox.reject_nginx_config(case == "rejected")
        result = sandbox.run_installed(HOOK)
        found[case] = (result.returncode, sandbox.calls())
    sandbox.reject_nginx_config(False)
    sandbox.clear_calls()
    return found


@pytest.mark.parametrize(
    "hook",
    [
        "#!/bin/sh\nnginx -t -q; systemctl reload nginx\n",  # reloads an unchecked config
        "#!/bin/sh\nsystemctl reload nginx\n",  # no check at all
        "#!/bin/sh\nnginx -t -q || true\nsystemctl reload nginx\n",
        "#!/bin/sh\nnginx -t -q && systemctl restart nginx\n",  # a restart drops connections
        "#!/bin/sh\nnginx -t -q && systemctl reload nginx || true\n",  # certbot never hears of a failure
    ],
    ids=["no-and", "no-check", "check-ignored", "restart", "failure-hidden"],
)
def test_renewal_hook_check_rejects_a_wrong_hook(sandbox: Sandbox, hook: str) -> None:
    """Control: a hook that reloads without a passing check, restarts, or hides a failure fails the
    check the lifecycle test applies to the installed one."""
    path = sandbox.root / HOOK.lstrip("/")
    path.parent.mkdir(parents=True)
    path.write_text(hook)
    path.chmod(0o755)
    assert _renewal_hook_behaviour(sandbox) != RENEWAL_HOOK_BEHAVIOUR


def test_rejected_site_is_rolled_back(sandbox: Sandbox) -> None:
    s = make_settings()
    site = _site(s)

    sandbox.reject_nginx_config()
    first = sandbox.run(sandboxed(render.nginx_step(s), s.domain), check=False)
    assert first.returncode == 1 and "previous one is kept" in first.stderr
    assert site not in sandbox.files(), "a first site nginx rejects is removed"
    assert _reloads(sandbox) == []

    sandbox.reject_nginx_config(False)
    sandbox.run(sandboxed(render.nginx_step(s), s.domain))
    sandbox.reject_nginx_config()
    sandbox.clear_calls()
    second = sandbox.run(sandboxed(render.certbot_step(s), s.domain), check=False)
    assert second.returncode == 1
    assert sandbox.files()[site] == render.nginx_site(s, tls=False), "the previous site is restored"
    assert _reloads(sandbox) == []


@pytest.mark.parametrize(("recorded_server", "forced"), [(None, False), ("same", False), ("other", True)])
def test_certbot_forces_renewal_only_when_the_acme_server_changed(
    sandbox: Sandbox, recorded_server: str | None, forced: bool
) -> None:
    s = make_settings(acmeServer="staging")
    if recorded_server:
        renewal = sandbox.root / f"etc/letsencrypt/renewal/{s.domain}.conf"
        renewal.parent.mkdir(parents=True)
        server = s.acme_server if recorded_server == "same" else "https://acme-v02.api.letsencrypt.org/directory"
        renewal.write_text(f"version = 2.9.0\narchive_dir = /x\nserver = {server}\n")
    sandbox.run(sandboxed(render.certbot_step(s), s.domain))
    (certbot,) = sandbox.calls("certbot")
    assert ("--force-renewal" in certbot) is forced


def _ocsp_snippet(s) -> str:
    return f"/etc/nginx/snippets/django-vps-{s.app_name}-ocsp.conf"


def _certificate(path: Path, ocsp_url: str | None) -> None:
    """A real certificate, naming an OCSP responder (Authority Information Access) or not."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "blog.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ocsp_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]
            ),
            critical=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def test_certbot_step_writes_the_ocsp_snippet_only_for_a_certificate_with_a_responder(sandbox: Sandbox) -> None:
    """The step asks the real openssl for the certificate's OCSP URI: a snippet turning stapling
    on when there is one, none (and an old one removed) when there is not."""
    s = make_settings()
    snippet = _ocsp_snippet(s)
    cert = sandbox.root / f"etc/letsencrypt/live/{s.domain}/cert.pem"
    step = sandboxed(render.certbot_step(s), s.domain)
    assert f"include /etc/nginx/snippets/django-vps-{s.app_name}-ocsp*.conf;" in render.nginx_site(s, tls=True)
    assert "ocsp" not in render.nginx_site(s, tls=False)

    _certificate(cert, "http://ocsp.example.org/")
    sandbox.run(step)
    assert ["openssl", "x509", "-noout", "-ocsp_uri", "-in", f"/etc/letsencrypt/live/{s.domain}/cert.pem"] in (
        sandbox.calls("openssl")
    )
    assert sandbox.files()[snippet] == ocsp_snippet(s)
    assert sandbox.meta(snippet) == ("0644", "root:root")

    sandbox.clear_calls()
    sandbox.run(step)
    assert [c for c in sandbox.calls("mv") if c[-1] == snippet] == [], "unchanged: not written again"

    _certificate(cert, None)  # renewed by a CA without OCSP
    sandbox.run(step)
    assert snippet not in sandbox.files()


def test_teardown_app_user_removes_keys_and_sudo_rule(sandbox: Sandbox) -> None:
    s = make_settings()
    sandbox.run(render.app_user_step(s, CI_PUBLIC_KEY), stdin="key\n")
    sandbox.run(render.deploy_step(s))
    assert {s.ci_command, s.deploy_script, s.run_script} <= set(sandbox.files())
    sandbox.clear_calls()
    result = sandbox.run(render.teardown_step(s, "app-user"))
    assert sandbox.files() == {f"{s.home}/.ssh/known_hosts_clone": "".join(f"{k}\n" for k in s.clone_host_keys)}
    # The keys in the app user's tree are removed by the app user; root's tree for the app by root.
    assert as_app(s, "rm", "-f", s.authorized_keys, s.deploy_key_file) in sandbox.calls("sudo")
    assert ["rm", "-rf", s.opt_dir] in sandbox.calls("rm")
    assert ["rm", "-f", render.MANAGE_COMMAND] in sandbox.calls("rm")  # no other app was left
    assert "removed the CI key, the deploy key, the sudo rule and /opt/django-vps/blog" in result.stdout


def test_teardown_supervisor_removes_the_program(sandbox: Sandbox) -> None:
    s = make_settings()
    sandbox.run(render.supervisor_step(s))
    sandbox.clear_calls()
    sandbox.run(render.teardown_step(s, "supervisor"))
    assert sandbox.files() == {}
    assert sandbox.calls("supervisorctl") == [
        [*SUPERVISORCTL, "stop", s.app_name],
        [*SUPERVISORCTL, "reread"],
        [*SUPERVISORCTL, "update"],
    ]


def test_sandbox_refuses_unknown_commands(sandbox: Sandbox) -> None:
    """Control: a command without a stub is not found, so no step can reach the real system."""
    result = sandbox.run("set -e\ntouch /tmp/django-vps-must-not-exist\necho reached\n", check=False)
    assert result.returncode == 127 and "reached" not in result.stdout
    assert not Path("/tmp/django-vps-must-not-exist").exists()


def test_sudoers_rule_passes_visudo(variant, tmp_path: Path) -> None:
    visudo = find_tool("visudo")
    if visudo is None:
        pytest.skip("visudo is not installed: apt-get install -y sudo")
    rule = tmp_path / "rule"
    rule.write_text(render.sudoers(variant))
    result = subprocess.run([visudo, "-c", "-q", "-f", str(rule)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rule.write_text(render.sudoers(variant).replace("NOPASSWD:", "NOPASSWD"))
    assert subprocess.run([visudo, "-c", "-q", "-f", str(rule)], capture_output=True, check=False).returncode != 0
