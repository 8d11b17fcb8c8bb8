"""A site provisioned by the real host steps in a jail (jail.py): the app user a real uid, root's
steps real root, the release check real Django. What the boundary tests attack, and how they tell
whether root changed anything of its own: `root_state` is every root-owned entry of the jail's
upper layer (what the jail changed), with its metadata and content."""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from components import render
from components.settings import Settings
from tests.render.conftest import CI_PUBLIC_KEY, FIXTURE_BLOG_PIP, make_settings
from tests.render.jail import CALLS, FORGE, SUPERVISOR_STATE, Jail

WORK = "/srv/work"
DEPLOY_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"
SECRET_KEY = "jail-secret-key-" + "s" * 40
# A root-owned directory holding files named like everything the steps write: where an attacker
# points a link, hoping root writes or chowns through it.
VICTIM = "/etc/victim"
VICTIM_NAMES = (".env", "deploy_key", "authorized_keys", "known_hosts_clone", "run.sh", "deploy.sh", "ci-command",
                "gunicorn.conf.py", "release_check.py", "redact.py", "REVISION", "passwd")  # fmt: skip
# What changes as a matter of course: the stand-ins' records, the test's own repository and forge
# (its pushes), the project's environment (Python's bytecode caches, root running supervisor's
# supervisorctl), temporary directories.
CHURN = (CALLS, SUPERVISOR_STATE, WORK, FORGE, os.path.realpath(sys.prefix), "/tmp", "/var/tmp", "/root/.cache")


@dataclass(frozen=True)
class Link:
    """A symbolic link in a commit."""

    target: str


class JailSite:
    def __init__(self, jail: Jail, s: Settings) -> None:
        self.jail, self.s = jail, s

    # --- root's steps, as `pulumi up` runs them (the same scripts, as root) --------------------

    def step(self, name: str, *, check: bool = True):
        s = self.s
        scripts = {
            "app-user": (render.app_user_step(s, CI_PUBLIC_KEY), DEPLOY_KEY),
            "clone": (render.clone_step(s), ""),
            "env": (render.env_step(s), render.django_env(s, SECRET_KEY, [])),
            "deploy": (render.deploy_step(s), ""),
            "supervisor": (render.supervisor_step(s), ""),
        }
        script, stdin = scripts[name]
        return self.jail.run(script, stdin=stdin, check=check)

    def converge(self, *steps: str) -> None:
        for name in steps or ("app-user", "clone", "env", "deploy", "supervisor"):
            self.step(name)

    # --- the app user --------------------------------------------------------------------------

    def as_app(self, script: str, *, check: bool = True, stdin: str = ""):
        return self.jail.run(script, user=self.s.user, check=check, stdin=stdin)

    def deploy(self, *args: str):
        """deploy.sh as the app user, as the CI key's forced command runs it."""
        return self.as_app(shlex.join([self.s.deploy_script, *args]), check=False)

    # --- the repository ------------------------------------------------------------------------

    def push(self, files: dict[str, str | Link | None], message: str = "change") -> None:
        """A commit on main of the forge's repository: path -> content, a Link, or None (removed)."""
        lines = [f"cd {WORK}"]
        for path, content in files.items():
            quoted = shlex.quote(path)
            lines.append(f'rm -rf {quoted}; mkdir -p "$(dirname {quoted})"')
            if isinstance(content, Link):
                lines.append(f"ln -s {shlex.quote(content.target)} {quoted}")
            elif content is not None:
                lines.append(f"printf '%s' {shlex.quote(content)} >{quoted}")
        lines.append(f"git add -A && git -c user.name=t -c user.email=t@t commit -q -m {shlex.quote(message)}")
        lines.append("git push -q origin main")
        self.jail.run("\n".join(lines))

    # --- what root owns ------------------------------------------------------------------------

    def root_state(self) -> dict[str, tuple]:
        """Every root-owned entry the jail has changed or made (its upper layer), links not
        followed: path -> (type, mode, uid, gid, content digest or link target)."""
        state = {}
        upper = self.jail.upper
        for directory, dirs, files in os.walk(upper):
            for name in dirs + files:
                path = Path(directory) / name
                info = path.lstat()
                if info.st_uid != 0 and info.st_gid != 0:
                    continue
                where = "/" + str(path.relative_to(upper))
                if any(where == churn or where.startswith(churn + "/") for churn in CHURN):
                    continue
                if stat.S_ISREG(info.st_mode):
                    detail = hashlib.sha256(path.read_bytes()).hexdigest()
                elif stat.S_ISLNK(info.st_mode):
                    detail = os.readlink(path)
                else:
                    detail = ""
                state[where] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, detail)
        return state


def provision(jail: Jail) -> JailSite:
    """The forge's repository (the blog-pip fixture), the app user, its clone, .env and first
    deploy, the supervisor program; the victim directory."""
    s = make_settings(dependencies="requirements")
    site = JailSite(jail, s)
    victim_files = "\n".join(f"printf 'root own\\n' >{VICTIM}/{shlex.quote(n)}" for n in VICTIM_NAMES)
    jail.run(
        f"""set -e
# The project's virtualenv (Django, decouple) lives under /root's pyenv: the app user may run it here.
chmod 0711 /root
install -d -m 0700 {VICTIM}
{victim_files}
chmod 0600 {VICTIM}/* {VICTIM}/.env
mkdir -p {WORK} {FORGE}/sdelquin
cp -a {FIXTURE_BLOG_PIP}/. {WORK}/
cd {WORK}
git init -q -b main
git add -A && git -c user.name=t -c user.email=t@t commit -q -m initial
git clone -q --bare {WORK} {FORGE}/sdelquin/blog.git
git config --system --add safe.directory '*'
git remote add origin {FORGE}/sdelquin/blog.git
"""
    )
    site.converge("app-user", "clone", "env")
    # deploy.sh builds the virtualenv with pip from PyPI; here it finds one already built for its
    # requirements.txt (the project's own, which has Django and decouple).
    venvs = f"{s.shared_dir}/venvs"
    site.as_app(
        # deploy.sh's key(): the requirements file, the files beside it, the pip options, gunicorn's pin.
        f"cd {WORK} && key=$({{ /usr/bin/python3 --version; cat requirements.txt ./*.txt;"
        f" printf '%s\\n' -r requirements.txt {render.GUNICORN_VERSION} {s.interface} {render.UVICORN_WORKER_VERSION};"
        " } | sha256sum | cut -c1-24)"
        f" && ln -s {os.path.realpath(sys.prefix)} {venvs}/pip-$key"
    )
    jail.run(f"touch {os.path.realpath(sys.prefix)}/.complete")
    site.converge("deploy", "supervisor")
    return site
