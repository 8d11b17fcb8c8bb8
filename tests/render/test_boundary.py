"""Issue 11's attacks, made as the app user in a jail (jail.py: real root, real uid, real sudo,
git and Django) on a site the real host steps provisioned (boundary_site.py), each followed by
root's steps running again as `pulumi up` would. Each fails: the app user ends without root, and
no root-owned file the jail holds changed (root_state, before and after). Where the attack is only
as good as what it attacks, a control shows it working against the old code.

  1. supervisorctl reading ./supervisord.conf (a ctlplugin: a Python console as root)
  2. root's temp file + chown in a directory the app user owns (a swap for a link in between)
  3. install -d -o <user> through a link (shared/media, logs) or on a system directory (logsDir)
  4. ~/bin swapped for a link, root's scripts written through it; git run as root on the app's repo
  6. deploy.sh and the repository's content: a failed start reported as a deploy, links out of the
     release (media, REVISION), a committed .venv, ~/.bashrc before the forced command
(5, values that break out of their file, is test_hostile_values.py.)
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from components import render
from components.settings import OPT_ROOT, SUPERVISOR_CONF
from tests.conftest import ROOT_NEEDED
from tests.render import jail as jails
from tests.render.boundary_site import DEPLOY_KEY, SECRET_KEY, VICTIM, VICTIM_NAMES, JailSite, Link, provision
from tests.render.conftest import CI_PUBLIC_KEY, make_settings

pytestmark = pytest.mark.skipif(jails.available() is not None, reason=ROOT_NEEDED)

PWNED = "/etc/pwned"
# A ctlplugin whose factory is code.interact: supervisorctl then reads Python from stdin.
CTLPLUGIN_CONF = (
    "[supervisorctl]\nserverurl = unix:///run/none.sock\n[ctlplugin:x]\nsupervisor.ctl_factory = code:interact\n"
)
PAYLOAD = f'import os; open("{PWNED}", "w").write(str(os.getuid()))\n'


@pytest.fixture(scope="module")
def provisioned() -> Iterator[JailSite]:
    jail = jails.Jail.new()
    try:
        yield provision(jail)
    finally:
        jail.remove()


@pytest.fixture
def site(provisioned: JailSite) -> Iterator[JailSite]:
    """A copy of the provisioned jail for one test."""
    jail = provisioned.jail.clone()
    try:
        yield JailSite(jail, provisioned.s)
    finally:
        jail.remove()


def victim_intact(site: JailSite) -> None:
    files = " ".join(shlex.quote(f"{VICTIM}/{name}") for name in VICTIM_NAMES)
    listing = site.jail.run(f"stat -c '%n %a %U:%G' {VICTIM} {files} && cat {files}").stdout.splitlines()
    assert listing[0] == f"{VICTIM} 700 root:root", listing[0]
    for name, line in zip(VICTIM_NAMES, listing[1 : 1 + len(VICTIM_NAMES)], strict=False):
        assert line.endswith(" 600 root:root"), f"{name}: {line}"
    assert set(listing[1 + len(VICTIM_NAMES) :]) == {"root own"}, "a victim file's content changed"


def app_user_has_no_root(site: JailSite) -> None:
    s = site.s
    assert site.as_app("sudo -n id -u", check=False).returncode != 0
    allowed = site.as_app("sudo -n -l", check=False).stdout
    commands = [line.strip() for line in allowed.splitlines() if "/usr/bin/supervisorctl" in line]
    expected = [" ".join(argv) for argv in render.sudo_commands(s)]
    assert ", ".join(commands).replace("(root) CWD=/ NOPASSWD: ", "") == ", ".join(expected), allowed
    assert site.jail.stat(PWNED) == "absent"


def unchanged(site: JailSite, before: dict) -> None:
    after = site.root_state()
    changed = {path: (before.get(path), after.get(path)) for path in before.keys() | after.keys()
               if before.get(path) != after.get(path)}  # fmt: skip
    assert not changed, f"root-owned entries changed: {changed}"
    victim_intact(site)
    app_user_has_no_root(site)


# --- at rest -----------------------------------------------------------------------------------


def test_at_rest_root_owns_nothing_in_the_app_tree_and_runs_nothing_of_it(site: JailSite) -> None:
    s = site.s
    jail = site.jail
    assert jail.run(f"find {s.home} -user root").stdout == "", "root owns something in the app user's tree"
    assert jail.stat(s.bin_dir) == "755 root:root directory"
    for path in (s.run_script, s.deploy_script, s.ci_command):
        assert jail.stat(path) == "755 root:root regular file", path
    for path in (s.deploy_key_file, s.authorized_keys, s.env_file):
        assert jail.stat(path) == f"600 {s.user}:{s.user} regular file", path
    assert jail.run(f"getent passwd {s.user} | cut -d: -f7").stdout == "/bin/sh\n"
    # Root ran git never, and Python only as its own tool (unlink_beneath.py on stdin), from /.
    root_calls = [(name, where, args) for uid, name, where, args in jail.calls() if uid == 0]
    assert not [c for c in root_calls if c[0] == "git" and "/srv/work" not in c[1]], root_calls
    assert [c for c in root_calls if c[0] == "python3"] == [
        ("python3", "/", f"-I - {s.home} bin {' '.join(render.LEGACY_BIN_FILES)}")
    ]
    assert {where for name, where, _ in root_calls if name == "supervisorctl"} == {"/"}
    app_user_has_no_root(site)


# --- 1. supervisorctl's configuration ----------------------------------------------------------


def test_control_the_old_sudo_rule_gave_a_root_python_console(site: JailSite) -> None:
    """Control: supervisor's own supervisorctl, allowed as `supervisorctl status <app>` (no -c) and
    run from a directory of the app user's with a supervisord.conf in it, runs the app user's
    Python as root."""
    site.jail.use_real_supervisorctl()
    old_rule = f"{site.s.user} ALL=(root) NOPASSWD: /usr/bin/supervisorctl status blog\n"
    site.jail.write("/etc/sudoers.d/old-rule", old_rule, 0o440)
    site.as_app(f"mkdir -p ~/attack && printf '%s' {shlex.quote(CTLPLUGIN_CONF)} >~/attack/supervisord.conf")
    site.as_app("cd ~/attack && sudo -n /usr/bin/supervisorctl status blog", check=False, stdin=PAYLOAD)
    assert site.jail.read(PWNED) == "0", "the control attack did not get root"


def test_supervisorctl_never_reads_the_app_users_configuration(site: JailSite) -> None:
    s = site.s
    site.jail.use_real_supervisorctl()
    site.as_app(f"mkdir -p ~/attack && printf '%s' {shlex.quote(CTLPLUGIN_CONF)} >~/attack/supervisord.conf")
    before = site.root_state()
    allowed = f"/usr/bin/supervisorctl -c {SUPERVISOR_CONF} status {s.app_name}"
    attempts = {
        "the old form, no -c": "cd ~/attack && sudo -n /usr/bin/supervisorctl status blog",
        "the allowed form from the attack directory": f"cd ~/attack && sudo -n {allowed}",
        "another working directory": f"sudo -n -D ~/attack {allowed}",
        "another configuration": "sudo -n /usr/bin/supervisorctl -c ~/attack/supervisord.conf status blog",
        "two configurations": f"cd ~/attack && sudo -n {allowed} -c ./supervisord.conf",
        "another program": f"sudo -n /usr/bin/supervisorctl -c {SUPERVISOR_CONF} start all",
    }
    for what, attempt in attempts.items():
        site.as_app(attempt, check=False, stdin=PAYLOAD)
        assert site.jail.stat(PWNED) == "absent", what
    # As deploy.sh runs it: from inside a release whose commit holds the supervisord.conf.
    site.push({"supervisord.conf": CTLPLUGIN_CONF, "etc/supervisord.conf": CTLPLUGIN_CONF})
    site.as_app(shlex.quote(s.deploy_script), check=False, stdin=PAYLOAD * 5)
    unchanged(site, before)


# --- 2. root's writes into the app user's directories ------------------------------------------

OLD_PUT = """put() {
    local mode=$1 owner=$2 path=$3 tmp
    tmp=$(mktemp "$path.XXXXXX") || exit 1
    chmod 0600 "$tmp" && cat >"$tmp" || exit 1
    chown "$owner" "$tmp" && chmod "$mode" "$tmp" && mv -f "$tmp" "$path" || exit 1
}
"""

RACER = """while :; do
    for f in {dirs}; do
        case $f in *.??????) if [ ! -L "$f" ]; then ln -sf {target} "$f" 2>/dev/null; fi ;; esac
    done
done"""


def _race(site: JailSite, root_writes: str, tries: int) -> str:
    """The app user swaps every temporary-looking file in its directories for a link to a victim
    file, as fast as it can, while root writes `tries` times; what became of the victim."""
    s = site.s
    dirs = f"{s.shared_dir}/.??* {s.shared_dir}/* {s.home}/.ssh/.??* {s.home}/.ssh/*"
    racer = RACER.format(dirs=dirs, target=f"{VICTIM}/passwd")
    script = f"""runuser -u {s.user} -- bash -c {shlex.quote(racer)} &
racer=$!
for _ in $(seq 1 {tries}); do
    ( {root_writes} ) >/dev/null 2>&1 || true
    [ "$(stat -c %U {VICTIM}/passwd)" = root ] || break
done
kill $racer
stat -c %U {VICTIM}/passwd"""
    return site.jail.run(script).stdout.strip()


def test_control_roots_old_temp_file_and_chown_handed_over_a_root_file(site: JailSite) -> None:
    """Control: root's old put (a temp file in the target's directory, then chown) into the app
    user's shared/ loses the race to the app user: the victim becomes the app user's."""
    s = site.s
    write = f"{OLD_PUT}echo SECRET_KEY=x | put 0600 {s.user}:{s.user} {s.env_file}"
    assert _race(site, write, tries=500) == s.user


def test_root_never_writes_or_chowns_in_the_app_users_tree(site: JailSite) -> None:
    s = site.s
    # Today's put refuses a target in the app user's tree outright.
    refused = site.jail.run(
        render.render("_lib.sh.j2") + f"echo x | put 0600 {s.user}:{s.user} {s.env_file}", check=False
    )
    assert refused.returncode == 1 and "is not root's own directory" in refused.stderr
    # Links where root used to write: the .env, the SSH files, ~/.ssh and ~/run themselves.
    site.as_app(
        f"""ln -sfn {VICTIM}/.env {s.env_file}
mv {s.ssh_dir} {s.home}/.ssh.old && ln -s {VICTIM} {s.ssh_dir}
rm -rf {s.home}/run && ln -s {VICTIM} {s.home}/run"""
    )
    before = site.root_state()
    for step in ("app-user", "clone", "env"):
        site.step(step, check=False)
    unchanged(site, before)


def test_racing_the_steps_writes_gains_nothing(site: JailSite) -> None:
    """The race of the control, against the steps that write in the app user's tree: the temp
    files there are the app user's own (swapping one only breaks its own write)."""
    before = site.root_state()
    assert _race(site, "; ".join(_scripts(site, "app-user", "env")), tries=10) == "root"
    unchanged(site, before)


def _scripts(site: JailSite, *names: str) -> list[str]:
    s = site.s
    known = {
        "app-user": (render.app_user_step(s, CI_PUBLIC_KEY), DEPLOY_KEY),
        "env": (render.env_step(s), render.django_env(s, SECRET_KEY, [])),
    }
    return [f"printf '%s' {shlex.quote(known[n][1])} | bash -c {shlex.quote(known[n][0])}" for n in names]


# --- 3. install -d -o through links; logsDir ----------------------------------------------------


def test_no_root_step_chowns_through_a_link_in_the_app_tree(site: JailSite) -> None:
    s = site.s
    site.as_app(
        f"""rm -rf {s.shared_dir}/media && ln -s {VICTIM} {s.shared_dir}/media
rm -rf {s.shared_dir}/logs && ln -s {VICTIM} {s.shared_dir}/logs
ln -s {VICTIM} {s.app_dir}/releases/evil"""
    )
    before = site.root_state()
    for step in ("clone", "env", "app-user"):
        site.step(step, check=False)
    unchanged(site, before)


def test_a_dedicated_logs_dir_is_roots_down_to_the_apps_own(site: JailSite) -> None:
    s = make_settings(dependencies="requirements", logsDir="/var/log/django-vps/blog/django")
    dedicated = JailSite(site.jail, s)
    dedicated.step("clone")
    jail = site.jail
    assert jail.stat("/var/log/django-vps") == "755 root:root directory"
    assert jail.stat("/var/log/django-vps/blog") == f"750 {s.user}:{s.user} directory"
    assert jail.stat("/var/log/django-vps/blog/django") == f"750 {s.user}:{s.user} directory"
    # The app user cannot plant anything beside its own directory, and a link inside it is
    # followed by the app user only.
    assert dedicated.as_app("mkdir /var/log/django-vps/other", check=False).returncode != 0
    dedicated.as_app(f"rm -rf /var/log/django-vps/blog/django && ln -s {VICTIM} /var/log/django-vps/blog/django")
    before = site.root_state()
    dedicated.step("clone", check=False)
    unchanged(dedicated, before)


# --- 4. ~/bin, and git as root -------------------------------------------------------------------

OLD_BIN = """install -d -m 0755 -o root -g root {home}/bin
for name in {names}; do printf 'old %s\\n' "$name" >{home}/bin/$name; done
chmod 0755 {home}/bin/run.sh {home}/bin/deploy.sh {home}/bin/ci-command"""


def test_a_host_from_the_old_layout_converges_and_old_bin_goes(site: JailSite) -> None:
    """Earlier versions: scripts in ~/bin (root's), the supervisor program and the CI key's
    forced command pointing there. After the steps: the program and the key use root's
    /opt/django-vps/<app>/bin, and ~/bin is gone."""
    s = site.s
    jail = site.jail
    jail.run(OLD_BIN.format(home=s.home, names=" ".join(render.LEGACY_BIN_FILES)))
    jail.write(f"{s.home}/bin/run.sh", render.run_sh(s), 0o755)  # what the program runs until it is updated
    jail.run(f"sed -i 's#^command = .*#command = {s.home}/bin/run.sh#' /etc/supervisor/conf.d/{s.app_name}.conf")
    site.converge()
    assert jail.stat(f"{s.home}/bin") == "absent"
    assert f"command = {s.run_script}\n" in jail.read(f"/etc/supervisor/conf.d/{s.app_name}.conf")
    assert f'command="{s.ci_command}"' in jail.read(s.authorized_keys)


def test_old_bin_swapped_for_a_link_is_neither_written_nor_emptied_through(site: JailSite) -> None:
    s = site.s
    jail = site.jail
    jail.run(OLD_BIN.format(home=s.home, names=" ".join(render.LEGACY_BIN_FILES)))
    site.as_app(f"mv {s.home}/bin {s.home}/bin.aside && ln -s {VICTIM} {s.home}/bin")
    before = site.root_state()
    for step in ("app-user", "deploy", "supervisor"):
        site.step(step)
    assert jail.stat(f"{s.home}/bin").endswith("symbolic link"), "the app user's link was removed or replaced"
    unchanged(site, before)


def test_git_runs_as_the_app_user_only_whatever_the_repository_configures(site: JailSite) -> None:
    """The app user owns repo.git and its config: an sshCommand of its own (through an include,
    which outlasts the clone step's `git config`) runs on the next fetch, as the app user."""
    s = site.s
    site.as_app(
        f"""printf '[core]\\n\\tsshCommand = "touch /tmp/ssh-command-ran-as-$(id -u); ssh"\\n' >{s.home}/evil.gitconfig
git --git-dir={s.app_dir}/repo.git config include.path {s.home}/evil.gitconfig"""
    )
    before = site.root_state()
    site.jail.clear_calls()
    site.converge("clone", "deploy")
    assert site.jail.run("ls /tmp").stdout.split().count("ssh-command-ran-as-0") == 0
    assert "ssh-command-ran-as-1001" in site.jail.run("ls /tmp").stdout.split(), "the planted command never ran"
    assert not [c for c in site.jail.calls("git") if c[0] == 0], "root ran git"
    unchanged(site, before)


# --- 6. deploy.sh and the repository's content -------------------------------------------------


def _live(site: JailSite) -> str:
    return site.jail.run(f"readlink {site.s.current_dir}").stdout.strip()


def test_a_failed_start_fails_the_deploy_and_switches_back(site: JailSite) -> None:
    from tests.render.jail import SUPERVISOR_STATE

    live = _live(site)
    site.jail.run(f"rm -f {SUPERVISOR_STATE}/{site.s.app_name}.running")
    site.jail.fail_start()
    site.push({"posts/new.txt": "x"})
    result = site.deploy()
    assert result.returncode != 0, result.stdout
    assert "did not start or answer after the switch: switched back to" in result.stderr
    assert "supervisorctl start blog failed" in result.stderr
    assert _live(site) == live
    # The control: the same deploy with a start that works goes live.
    site.jail.fail_start(False)
    result = site.deploy()
    assert result.returncode == 0, result.stderr
    assert _live(site) != live


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"media/leak": Link("../db.sqlite3")}, "media/leak -> ../db.sqlite3"),
        ({"media/passwd": Link("/etc/passwd")}, "media/passwd -> /etc/passwd"),
        ({"media/code": Link("../manage.py")}, "media in the commit holds a link (media/code)"),
        ({"escape": Link("../../../.ssh")}, "escape -> ../../../.ssh"),
        ({"posts/static/db": Link("../../db.sqlite3")}, "posts/static/db -> ../../db.sqlite3"),
        ({"around": Link(".")}, "around -> ."),
    ],
    ids=["media-to-database", "media-to-etc", "media-inside", "out-of-release", "static-to-database", "around"],
)
def test_links_out_of_the_release_or_into_shared_are_refused(site: JailSite, files: dict, message: str) -> None:
    s = site.s
    live = _live(site)
    site.push(files)
    result = site.deploy()
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert _live(site) == live
    assert site.jail.run(f"find {s.shared_dir}/media -type l").stdout == "", "a link reached shared/media"


def test_the_commits_revision_venv_and_env_are_never_used(site: JailSite) -> None:
    s = site.s
    venv_python = '#!/bin/sh\ntouch /tmp/committed-venv-ran\nexec /usr/bin/python3 "$@"\n'
    site.as_app(f"echo mine >{s.home}/target")
    site.push(
        {
            "REVISION": Link(f"{s.home}/target"),
            ".venv/bin/python": venv_python,
            ".env": "DEBUG=True\n",
            "node_modules/x": "x",
        }
    )
    result = site.deploy()
    assert result.returncode == 0, result.stderr
    release = f"{s.app_dir}/{_live(site)}"
    jail = site.jail
    assert jail.read(f"{s.home}/target") == "mine\n", "REVISION was written through the commit's link"
    assert jail.stat(f"{release}/REVISION").endswith("regular file")
    assert jail.run(f"readlink {release}/.venv").stdout.startswith(f"{s.shared_dir}/venvs/pip-")
    assert jail.run(f"readlink {release}/.env").stdout.strip() == s.env_file
    assert jail.stat("/tmp/committed-venv-ran") == "absent"
    assert jail.stat(f"{release}/node_modules") == "absent"


def test_the_forced_command_runs_without_the_app_users_bashrc(site: JailSite) -> None:
    """sshd runs a forced command as `<login shell> -c <command>`; bash reads ~/.bashrc first when
    it sees SSH_CLIENT, dash (sh) does not. The control: the same with bash reads it."""
    s = site.s
    site.as_app(f"echo 'touch /tmp/bashrc-read' >{s.home}/.bashrc")
    shell = site.jail.run(f"getent passwd {s.user} | cut -d: -f7").stdout.strip()
    assert shell == "/bin/sh"
    run = f"env SSH_CLIENT='198.51.100.9 50000 22' SSH_ORIGINAL_COMMAND=id {{shell}} -c {s.ci_command}"
    refused = site.as_app(run.format(shell=shell), check=False)
    assert refused.returncode == 1 and "may only run" in refused.stderr
    assert site.jail.stat("/tmp/bashrc-read") == "absent"
    site.as_app(run.format(shell="/bin/bash"), check=False)
    assert site.jail.stat("/tmp/bashrc-read") != "absent", "control: bash would have read it"


# --- pulumi destroy on an existing host ---------------------------------------------------------


def test_teardown_removes_only_through_the_app_user(site: JailSite) -> None:
    """The app-user teardown as root, after the app user pointed its SSH files (and ~/.ssh) at root's
    files: root removes its own rule and tree, the app user's files go by the app user's hand."""
    s = site.s
    jail = site.jail
    site.as_app(
        f"ln -sfn {VICTIM}/authorized_keys {s.authorized_keys} && ln -sfn {VICTIM}/deploy_key {s.deploy_key_file}"
    )
    before = site.root_state()
    jail.run(render.teardown_step(s, "supervisor"))
    jail.run(render.teardown_step(s, "app-user"))
    assert jail.stat(s.opt_dir) == "absent" and jail.stat(f"/etc/sudoers.d/django-vps-{s.app_name}") == "absent"
    assert jail.stat(s.authorized_keys) == "absent", "the app user's link is gone, and only the link"
    after = site.root_state()
    gone = {path for path in before if path not in after}
    removed = (OPT_ROOT, f"/etc/sudoers.d/django-vps-{s.app_name}", f"/etc/supervisor/conf.d/{s.app_name}.conf",
               render.MANAGE_COMMAND)  # (the last app's teardown takes the shared entry too)  # fmt: skip
    assert all(path.startswith(removed) for path in gone), gone
    assert {path: before[path] for path in after} == after, "a root-owned entry changed"
    victim_intact(site)
    assert site.as_app("sudo -n -l", check=False).stdout.count("supervisorctl") == 0
