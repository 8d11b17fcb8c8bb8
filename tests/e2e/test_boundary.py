"""Issue 11 on a real server: the app user (who runs the Django code, the CI key's user, the user of
every pushed commit) tries each way to root the issue found, with Debian's own supervisor, sudo,
sshd and nginx, and root's steps run again as `pulumi up` runs them (the engine's SSH command,
`sudo -n bash -c <script>`, the secrets by stdin). Each attempt fails: the app user ends without
root, and no root-owned file under /etc, /opt, /usr or /home changed.

The render suite makes the same attacks in a jail (tests/render/test_boundary.py); here they meet
the distribution's programs: Debian's supervisorctl (which reads ./supervisord.conf first), the
login shell sshd starts the forced command with, nginx serving the media."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from components import host, render
from components.settings import SUPERVISOR_CONF
from tests.e2e import web
from tests.e2e.providers.command import CommandFailed, run_remote
from tests.e2e.site import APP, DOMAIN, Deployed, deploy_site
from tests.e2e.testhost import Lab

pytestmark = pytest.mark.e2e

REPO = "boundary"
TLS_KEY = "tls:index/privateKey:PrivateKey"
PWNED = "/etc/pwned"
VICTIM = "/etc/victim"
CTLPLUGIN_CONF = (
    "[supervisorctl]\nserverurl = unix:///run/none.sock\n[ctlplugin:x]\nsupervisor.ctl_factory = code:interact\n"
)
PAYLOAD = f'import os; open("{PWNED}", "w").write(str(os.getuid()))\n'
# Root's files an attack could reach: under /etc, /opt and /home each root-owned entry's metadata
# and content; under /usr the metadata (a new or changed setuid program shows there).
ROOT_STATE = (
    "find /etc /opt /home /usr -xdev -user root -printf '%p %m %u:%g %y %l\\n' | sort; "
    "find /etc /opt /home -xdev -user root -type f -print0 | sort -z | xargs -0 sha256sum"
)


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    deployed = deploy_site(lab, tmp_path_factory.mktemp("pebble") / "root.pem", repo=REPO)
    deployed.sh(f"install -d -m 0700 {VICTIM} && for f in .env authorized_keys deploy_key run.sh; do "
                f"echo 'root own' >{VICTIM}/$f; chmod 0600 {VICTIM}/$f; done")  # fmt: skip
    yield deployed
    deployed.remove()


def as_app(site: Deployed, script: str, *, check: bool = False, stdin: str | None = None):
    """`script` as the app user on the server (a login-less switch, as the code it runs would be)."""
    command = f"runuser -u {site.settings.user} -- sh -c {shlex.quote(f'cd && {script}')}"
    if stdin is not None:
        command = f"printf '%s' {shlex.quote(stdin)} | {command}"
    return site.server.run(command, check=check)


def root_state(site: Deployed) -> str:
    return site.sh(ROOT_STATE)


def no_root(site: Deployed) -> None:
    s = site.settings
    assert as_app(site, "sudo -n id -u").returncode != 0
    listed = as_app(site, "sudo -n -l").stdout
    rules = " ".join(line.strip() for line in listed.splitlines() if "supervisorctl" in line or "NOPASSWD" in line)
    expected = ", ".join(" ".join(argv) for argv in render.sudo_commands(s))
    assert rules == f"(root) CWD=/ NOPASSWD: {expected}", listed
    assert site.server.run(f"test -e {PWNED}").returncode != 0, "root ran the app user's code"
    assert site.sh(f"stat -c '%U %a' {VICTIM} {VICTIM}/.env {VICTIM}/run.sh").split() == ["root", "700"] + [
        "root", "600"] * 2  # fmt: skip


def run_step(site: Deployed, role: str, stdin: str | None = None) -> str:
    """A host step as the engine runs it: the admin user's SSH session, sudo, the secret by stdin."""
    connection = {
        "host": site.ip,
        "user": site.settings.login_user,
        "privateKey": site.outputs_of("blog-server-provisioning-key", TLS_KEY)["privateKeyOpenssh"],
        "hostKey": site.exports["hostKey"],
    }
    s = site.settings
    scripts = {
        "app-user": lambda: render.app_user_step(s, site.outputs_of("blog-github-ci-key", TLS_KEY)["publicKeyOpenssh"]),
        "clone": lambda: render.clone_step(s),
        "env": lambda: render.env_step(s),
        "deploy": lambda: render.deploy_step(s),
        "supervisor": lambda: render.supervisor_step(s),
    }
    try:
        out, _ = run_remote(connection, host.as_root(scripts[role](), s.login_user), stdin)
    except CommandFailed as failure:
        return f"failed: {failure}"
    return out


def step_stdins(site: Deployed) -> dict[str, str]:
    s = site.settings
    secret_key = site.outputs_of("blog-secret-key")["result"]
    return {
        "app-user": site.outputs_of("blog-github-deploy-key", TLS_KEY)["privateKeyOpenssh"],
        "env": render.django_env(s, secret_key, []),
    }


# --- 1. supervisorctl's configuration --------------------------------------------------------


def test_debians_supervisorctl_reads_no_configuration_of_the_app_users(site: Deployed) -> None:
    s = site.settings
    before = root_state(site)
    as_app(site, f"mkdir -p attack && printf '%s' {shlex.quote(CTLPLUGIN_CONF)} >attack/supervisord.conf", check=True)
    allowed = f"/usr/bin/supervisorctl -c {SUPERVISOR_CONF} status {s.app_name}"
    # The rule's own command works, from the attack directory too: it reads Debian's file only.
    status = as_app(site, f"cd attack && sudo -n {allowed}", stdin=PAYLOAD)
    assert "RUNNING" in status.stdout, status.stdout + status.stderr
    for attempt in (
        f"cd attack && sudo -n /usr/bin/supervisorctl status {s.app_name}",  # the old rule's form
        f"sudo -n -D $HOME/attack {allowed}",
        f"sudo -n /usr/bin/supervisorctl -c $HOME/attack/supervisord.conf status {s.app_name}",
        f"cd attack && sudo -n {allowed} -c ./supervisord.conf",
        f"sudo -n /usr/bin/supervisorctl -c {SUPERVISOR_CONF} start all",
    ):
        as_app(site, attempt, stdin=PAYLOAD)
        assert site.server.run(f"test -e {PWNED}").returncode != 0, attempt
    assert root_state(site) == before
    no_root(site)


# --- 2, 3, 4. links where root used to write, chown or run -----------------------------------


def test_links_the_app_user_plants_change_no_root_file_when_the_steps_run_again(site: Deployed) -> None:
    s = site.settings
    # The layout of earlier versions: root's scripts in ~/bin; the app user swaps it for a link.
    site.sh(f"install -d -m 0755 -o root -g root {s.home}/bin && echo old >{s.home}/bin/run.sh")
    as_app(
        site,
        f"""mv {s.home}/bin {s.home}/bin.aside && ln -s {VICTIM} {s.home}/bin
ln -sfn {VICTIM}/.env {s.env_file}
rm -rf {s.shared_dir}/logs && ln -s {VICTIM} {s.shared_dir}/logs
ln -s {VICTIM} {s.app_dir}/releases/planted
git --git-dir={s.app_dir}/repo.git config include.path $HOME/evil.gitconfig
printf '[core]\\n\\tsshCommand = "touch /tmp/ssh-command-as-$(id -u); ssh"\\n' >$HOME/evil.gitconfig""",
        check=True,
    )
    before = root_state(site)
    stdins = step_stdins(site)
    outcomes = {
        role: run_step(site, role, stdins.get(role)) for role in ("app-user", "clone", "env", "deploy", "supervisor")
    }
    assert root_state(site) == before, outcomes
    no_root(site)
    # The repository's own sshCommand ran, as the app user only.
    ran = site.sh("ls /tmp").split()
    assert "ssh-command-as-0" not in ran and any(name.startswith("ssh-command-as-") for name in ran)
    assert site.sh(f"stat -c %F {s.home}/bin").strip() == "symbolic link", "root removed the app user's link"
    # What the app user broke is its own (Django cannot write its log through the link, git fetches
    # with its sshCommand, which lacks the pinned host key): undone, the next deploy serves again.
    as_app(
        site,
        f"rm {s.shared_dir}/logs && mkdir -m 0750 {s.shared_dir}/logs"
        f" && git --git-dir={s.app_dir}/repo.git config --unset include.path",
        check=True,
    )
    assert site.ci_ssh(s.deploy_script).returncode == 0
    assert site.https("/").status == 200


def test_root_owns_nothing_in_the_home_but_what_it_left_there_before(site: Deployed) -> None:
    s = site.settings
    owned = site.sh(f"find {s.home} -user root").split()
    assert all(path.startswith(f"{s.home}/bin.aside") for path in owned), owned
    for path in (s.run_script, s.deploy_script, s.ci_command):
        assert site.sh(f"stat -c '%U:%G %a' {path}").strip() == "root:root 755", path
    assert site.sh(f"getent passwd {s.user} | cut -d: -f7").strip() == "/bin/sh"


# --- 6. deploy.sh and the repository's content -----------------------------------------------


def _push(site: Deployed, files: dict[str, str], links: dict[str, str], message: str) -> None:
    forge = site.lab.forge()
    work = forge.work / REPO
    for path, target in links.items():
        link = work / path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    forge.push_commit(REPO, files, message)


def _unpush(site: Deployed, paths: list[str]) -> None:
    work = site.lab.forge().work / REPO
    for path in paths:
        (work / path).unlink(missing_ok=True)
    site.lab.forge().push_commit(REPO, {}, "revert")


def live(site: Deployed) -> str:
    return site.sh(f"readlink {site.settings.current_dir}").strip()


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ({"media/leak": "../db.sqlite3"}, "media/leak -> ../db.sqlite3"),
        ({"escape": "../../../.ssh"}, "escape -> ../../../.ssh"),
        ({"media/code": "../manage.py"}, "media in the commit holds a link"),
    ],
    ids=["media-to-database", "out-of-release", "link-inside-media"],
)
def test_a_pushed_commit_with_links_out_is_refused_by_the_ci_deploy(
    site: Deployed, links: dict[str, str], message: str
) -> None:
    before_live = live(site)
    _push(site, {}, links, "links")
    try:
        result = site.ci_ssh(site.settings.deploy_script)
        assert result.returncode != 0 and message in result.stderr + result.stdout, result.stderr
        assert live(site) == before_live
        assert site.sh(f"find {site.settings.shared_dir}/media -type l") == ""
    finally:
        _unpush(site, list(links))


def test_a_pushed_supervisord_conf_and_venv_gain_nothing(site: Deployed) -> None:
    before = root_state(site)
    venv_python = '#!/bin/sh\ntouch /tmp/committed-venv-ran\nexec /usr/bin/python3 "$@"\n'
    files = {
        "supervisord.conf": CTLPLUGIN_CONF,
        "etc/supervisord.conf": CTLPLUGIN_CONF,
        ".venv/bin/python": venv_python,
    }
    _push(site, files, {"REVISION": "/home/blog/.profile"}, "supervisor plugin, venv, REVISION link")
    result = site.ci_ssh(site.settings.deploy_script)
    assert result.returncode == 0, result.stderr
    assert site.server.run(f"test -e {PWNED}").returncode != 0
    assert site.server.run("test -e /tmp/committed-venv-ran").returncode != 0, "the commit's .venv ran"
    release = f"{site.settings.app_dir}/{live(site)}"
    assert site.sh(f"stat -c %F {release}/REVISION").strip() == "regular file"
    assert site.sh(f"readlink {release}/.venv").startswith(f"{site.settings.shared_dir}/venvs/")
    assert root_state(site) == before
    no_root(site)


def test_a_failed_start_fails_the_deploy_and_switches_back(site: Deployed) -> None:
    s = site.settings
    previous = live(site)
    # gunicorn cannot bind its socket: the start fails (as a broken release's would).
    site.sh(f"supervisorctl -c {SUPERVISOR_CONF} stop {s.app_name} && chmod 0500 {s.home}/run")
    try:
        site.lab.forge().push_commit(REPO, {"posts/note.txt": "a new release\n"}, "new release")
        result = site.ci_ssh(s.deploy_script)
        assert result.returncode != 0, result.stdout
        # ci-command sends deploy.sh's stderr with its stdout through the mask.
        assert "did not start or answer after the switch: switched back to" in result.stdout, result.stdout
        assert live(site) == previous
    finally:
        site.sh(f"chmod 0750 {s.home}/run && supervisorctl -c {SUPERVISOR_CONF} start {s.app_name}")
    assert site.ci_ssh(s.deploy_script).returncode == 0
    assert live(site) != previous


# --- the CI key and nginx --------------------------------------------------------------------


def test_the_ci_keys_forced_command_reads_no_bashrc(site: Deployed) -> None:
    as_app(site, "echo 'touch /tmp/bashrc-read' >.bashrc && echo 'touch /tmp/profile-read' >.profile", check=True)
    refused = site.ci_ssh("id")
    assert refused.returncode != 0 and "may only run" in refused.stderr
    for marker in ("/tmp/bashrc-read", "/tmp/profile-read"):
        assert site.server.run(f"test -e {marker}").returncode != 0, marker


def test_nginx_serves_no_link_among_the_media(site: Deployed) -> None:
    s = site.settings
    as_app(site, f"echo hello >{s.shared_dir}/media/plain.txt && ln -sfn ../db.sqlite3 {s.shared_dir}/media/leak",
           check=True)  # fmt: skip
    assert site.https("/media/plain.txt").body == "hello\n"
    leak = site.https("/media/leak")
    assert leak.status in (403, 404) and "SQLite" not in leak.body


def test_the_app_user_cannot_write_roots_directory_for_the_app(site: Deployed) -> None:
    s = site.settings
    for attempt in (f"echo x >>{s.deploy_script}", f"mv {s.bin_dir} /tmp/x", f"ln -s /tmp {s.bin_dir}/evil",
                    f"rm -f {s.ci_command}", f"echo x >/etc/sudoers.d/django-vps-{APP}"):  # fmt: skip
        assert as_app(site, attempt).returncode != 0, attempt
    assert web.get(site.ip, DOMAIN, "/", cafile=site.cafile).status == 200
