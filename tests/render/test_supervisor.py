"""The rendered supervisor program and run.sh, run by a real supervisord against a copy of the
fixture Django project laid out as deploy.sh lays out releases: gunicorn comes up RUNNING on the
unix socket, serves the page, keeps the socket private to the app's group and reloads on HUP
without going down; after `current` is switched to another release, a HUP makes the same master
serve the new release's code.

The program's paths are the host's (/home/<user>/..., /var/log/supervisor); `relocate` moves them
under a temporary root and sets `user =` to the user running the tests. Nothing else is changed.
Each release's .venv is a symlink to the project's environment (it has django, gunicorn, decouple);
.env and the shared paths (media, db.sqlite3) are symlinks into shared/, as deploy.sh makes them."""

from __future__ import annotations

import http.client
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from signal import SIGINT, SIGTERM

import pytest

from components import render
from components.settings import Settings
from tests.render.conftest import (
    FIXTURE_BLOG_PIP,
    find_tool,
    logs_moved,
    make_settings,
    relocate,
    short_temporary_directory,
    stop_process,
    wait_for,
)

Ctl = Callable[..., subprocess.CompletedProcess]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=60)
        self.socket_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def get(path: Path, url: str, host: str) -> tuple[int, str]:
    connection = UnixHTTPConnection(path)
    try:
        connection.request("GET", url, headers={"Host": host, "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command name is in parentheses and may hold spaces: split after it.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _copy_fixture(release: Path) -> None:
    top_level_skip = {".venv", "db.sqlite3", "static", "logs", ".env"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {name for name in names if name == "__pycache__"}
        if Path(directory) == FIXTURE_BLOG_PIP:
            skip |= top_level_skip & set(names)
        return skip

    shutil.copytree(FIXTURE_BLOG_PIP, release, ignore=ignore)


HEADING = "<h1>blog</h1>"


class Host:
    """The host's file layout under a temporary root, filled from the rendered files."""

    def __init__(self, root: Path, s: Settings) -> None:
        self.root, self.s = root, s
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.paths = {
            s.home: f"{root}{s.home}",
            s.opt_dir: f"{root}{s.opt_dir}",
            "/var/log/supervisor/": f"{root}/var/log/supervisor/",
        }
        # What run.sh names: the app's tree and root's directory for the app.
        self.run_paths = {s.home: self.paths[s.home], s.opt_dir: self.paths[s.opt_dir]}

    def path(self, host_path: str) -> Path:
        return Path(f"{self.root}{host_path}")

    def release(self, name: str, heading: str = HEADING) -> Path:
        """releases/<name>: the fixture project with the shared paths and .env linked into shared/
        and .venv linked to a virtualenv, as deploy.sh builds a release; `heading` replaces the
        index page's heading, so each release's code can be told apart."""
        s = self.s
        release = self.path(f"{s.app_dir}/releases/{name}")
        _copy_fixture(release)
        views = release / "posts" / "views.py"
        assert HEADING in views.read_text()
        views.write_text(views.read_text().replace(HEADING, heading))
        for shared_path in s.shared_paths:
            inside, target = release / shared_path, self.path(f"{s.shared_dir}/{shared_path}")
            if inside.is_dir():  # committed content seeds the shared copy (media/hello.txt)
                shutil.copytree(inside, target, dirs_exist_ok=True)
                shutil.rmtree(inside)
            assert not inside.exists(), f"{inside} is committed: not a case this fixture has"
            inside.symlink_to(target)
        (release / ".env").symlink_to(self.path(s.env_file))
        (release / ".venv").symlink_to(Path(sys.prefix))
        # What deploy.sh copies in, and the facts its release check writes (the project's own module).
        for file_name, text in render.runtime_files().items():
            (release / file_name).write_text(text)
        (release / ".django-vps").mkdir()
        facts = {"project_dir": ".", "settings_module": "main.settings", "project_settings": "main.settings",
                 "wsgi_application": "main.wsgi:application"}  # fmt: skip
        (release / ".django-vps" / "release.json").write_text(json.dumps(facts))
        return release

    def switch(self, name: str) -> None:
        """Point `current` at releases/<name> as deploy.sh's switch_to does."""
        app_dir = self.path(self.s.app_dir)
        subprocess.run(["ln", "-sfn", f"releases/{name}", str(app_dir / "current.next")], check=True)
        subprocess.run(["mv", "-T", str(app_dir / "current.next"), str(app_dir / "current")], check=True)

    def build(self) -> Path:
        s = self.s
        self.path(s.shared_dir).mkdir(parents=True)
        env = self.path(s.env_file)
        env.write_text(render.django_env(s, "x" * 50, []))
        env.chmod(0o600)
        self.release("r1")
        self.switch("r1")
        self.path(f"{s.home}/run").mkdir(parents=True)
        self.path(s.bin_dir).mkdir(parents=True)
        self.path("/var/log/supervisor").mkdir(parents=True)
        run = self.path(s.run_script)
        run.write_text(relocate(render.run_sh(s), self.run_paths))
        run.chmod(0o755)
        self.path(s.gunicorn_conf).write_text(render.gunicorn_conf(s))
        conf_d = self.path("/etc/supervisor/conf.d")
        conf_d.mkdir(parents=True)
        program = relocate(render.supervisor_program(s), {**self.paths, f"user = {s.user}\n": f"user = {self.user}\n"})
        (conf_d / f"{s.app_name}.conf").write_text(program)
        conf = self.root / "supervisord.conf"
        conf.write_text(
            f"""[unix_http_server]
file = {self.root}/supervisor.sock
chmod = 0700

[supervisord]
logfile = {self.root}/supervisord.log
pidfile = {self.root}/supervisord.pid
childlogdir = {self.root}/var/log/supervisor

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://{self.root}/supervisor.sock

[include]
files = {conf_d}/*.conf
"""
        )
        return conf


# A release's interpreter that records how run.sh started it, and which release it belongs to.
STUB_PYTHON = """#!/bin/bash
printf '%s\\n' "$0" {release} "$PWD" "$VIRTUAL_ENV" "${{PATH%%:*}}" "$@" >"{record}"
"""


def _run_sh_starts(s: Settings, run_sh: str, root: Path) -> list[list[str]]:
    """Runs run.sh (its home moved under root) in a layout of two releases whose .venv/bin/python
    record how they were started: once with `current` on r1, once after switching it to r2, as a
    restart or a HUP after a deploy starts it again. What each start recorded: the interpreter's
    path as run.sh called it, the release, the working directory, VIRTUAL_ENV, PATH's first entry,
    the arguments."""
    host = Host(root, s)
    record = root / "started"
    for release in ("r1", "r2"):
        python = host.path(f"{s.app_dir}/releases/{release}/.venv/bin/python")
        python.parent.mkdir(parents=True)
        python.write_text(STUB_PYTHON.format(release=release, record=record))
        python.chmod(0o755)
    script = host.path(s.run_script)
    script.parent.mkdir(parents=True)
    script.write_text(relocate(run_sh, host.run_paths))
    script.chmod(0o755)
    starts = []
    for release in ("r1", "r2"):
        host.switch(release)
        subprocess.run([str(script)], env={"PATH": "/usr/bin:/bin"}, check=True, timeout=60)
        starts.append(record.read_text().splitlines())
    return starts


def _expected_starts(s: Settings, root: Path) -> list[list[str]]:
    current = f"{root}{s.current_dir}"
    arguments = ["-P", "-m", "gunicorn", "--chdir", current, "--bind", f"unix:{root}{s.socket_path}"]
    arguments += ["--umask", "007", "--config", f"{root}{s.gunicorn_conf}", "--access-logfile", "-"]
    arguments += ["--error-logfile", "-"]
    entry = render.WSGI_ENTRY
    if s.interface == "asgi":  # uvicorn's workers, serving the ASGI entry
        arguments += ["--worker-class", render.UVICORN_WORKER]
        entry = render.ASGI_ENTRY
    python, venv = f"{current}/.venv/bin/python", f"{current}/.venv"
    return [[python, release, current, venv, f"{venv}/bin", *arguments, entry] for release in ("r1", "r2")]


def test_run_sh_starts_gunicorn_through_current(variant: Settings, tmp_path: Path) -> None:
    """The interpreter and gunicorn's --chdir are the `current` link's paths, unresolved, so that a
    start after a switch (and a HUP, which re-enters --chdir) runs the new release."""
    assert _run_sh_starts(variant, render.run_sh(variant), tmp_path) == _expected_starts(variant, tmp_path)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('exec "$current/.venv/bin/python"', 'exec "$(readlink -f "$current")/.venv/bin/python"'),
        ('--chdir "$current"', '--chdir "$(pwd -P)"'),
        ('cd "$current"\n', 'cd -P "$current"\n'),
        ("    --umask 007 \\\n", ""),
    ],
    ids=["resolved-interpreter", "resolved-chdir", "resolved-working-directory", "no-umask"],
)
def test_run_sh_check_notices_a_resolved_path(tmp_path: Path, old: str, new: str) -> None:
    """Control: a run.sh that resolves the link (or drops an argument) fails the check above."""
    s = make_settings()
    text = render.run_sh(s)
    assert text.count(old) == 1
    assert _run_sh_starts(s, text.replace(old, new), tmp_path) != _expected_starts(s, tmp_path)


def _program(s: Settings, text: str, name: str | None = None) -> tuple[str, object]:
    """The program as supervisor itself reads it: (name, its process config). supervisor resolves
    `user =` and checks the log directories when it reads the file: the user running the tests,
    and /var/log/supervisor/ moved to a temporary directory (given back as /var/log/supervisor/)."""
    from supervisor.options import ServerOptions

    with tempfile.TemporaryDirectory() as directory:
        user = pwd.getpwuid(os.getuid()).pw_name
        here = {f"user = {s.user}\n": f"user = {user}\n", "/var/log/supervisor/": f"{directory}/"}
        program = Path(directory) / "program.conf"
        program.write_text(relocate(text, here))
        conf = Path(directory) / "supervisord.conf"
        conf.write_text(
            f"[supervisord]\nlogfile = {directory}/log\npidfile = {directory}/pid\n[include]\nfiles = {program}\n"
        )
        options = ServerOptions()
        options.configfile = str(conf)
        options.process_config(do_usage=False)
        groups = {group.name: group for group in options.process_group_configs}
        assert set(groups) == {s.app_name, *s.process_programs}
        group = groups[name or s.app_name]
        (process,) = group.process_configs
        for name in ("stdout_logfile", "stderr_logfile"):
            setattr(process, name, getattr(process, name).replace(f"{directory}/", "/var/log/supervisor/"))
    return group.name, process


def test_supervisor_runs_run_sh_in_current(variant: Settings) -> None:
    s = variant
    name, process = _program(s, render.supervisor_program(s))
    assert (name, process.command, process.directory) == (s.app_name, s.run_script, s.current_dir)
    assert process.environment == {"HOME": s.home, "USER": s.user}
    logs = (process.stdout_logfile, process.stderr_logfile)
    assert logs == (f"/var/log/supervisor/{s.app_name}.out.log", f"/var/log/supervisor/{s.app_name}.err.log")
    assert (process.stopsignal, process.killasgroup, process.stopasgroup) == (SIGINT, True, True)


def test_each_process_is_a_program_as_the_app_user_stopped_gracefully() -> None:
    """processes, as supervisor itself reads them: <app>.<name>, run-process NAME in `current`, TERM
    first and processStopSeconds to finish, its own logs; run-process finds the argv in root's file."""
    s = make_settings(processes={"worker": "rq worker --url $REDIS_URL", "beat": "celery -A main beat"},
                      processStopSeconds=90)  # fmt: skip
    assert s.process_programs == ("blog.beat", "blog.worker")
    for program, name in zip(s.process_programs, ("beat", "worker"), strict=True):
        found, process = _program(s, render.supervisor_program(s), program)
        assert (found, process.command, process.directory) == (program, f"{s.run_process_script} {name}", s.current_dir)
        assert (process.stopsignal, process.stopwaitsecs, process.killasgroup) == (SIGTERM, 90, True)
        assert process.stopasgroup is False  # TERM to the worker itself, which lets its children finish
        assert process.stdout_logfile == f"/var/log/supervisor/{program}.out.log"
    assert json.loads(render.processes_json(s)) == {
        "beat": ["celery", "-A", "main", "beat"],
        "worker": ["rq", "worker", "--url", "$REDIS_URL"],
    }
    # A deploy may restart and ask after exactly these, and nothing else of supervisor's.
    sudo = render.sudo_commands(s)
    for program in s.process_programs:
        base = (render.SUPERVISORCTL, "-c", "/etc/supervisor/supervisord.conf")
        assert (*base, "restart", program) in sudo and (*base, "status", program) in sudo


def test_supervisor_program_check_notices_a_resolved_directory() -> None:
    """Control: the same check on a program whose directory is a release, not the link."""
    s = make_settings()
    text = render.supervisor_program(s)
    _, process = _program(s, text.replace(f"directory = {s.current_dir}\n", f"directory = {s.app_dir}/releases/r1\n"))
    assert process.directory != s.current_dir


def test_python_started_through_current_imports_through_current(tmp_path: Path) -> None:
    """What run.sh relies on: a virtualenv's Python started by a path through `current` keeps that
    path in sys.prefix and sys.path, so new workers import packages from the live release's
    virtualenv (an interpreter started by its resolved path would keep the old one)."""
    s = make_settings()
    host = Host(tmp_path, s)
    host.path(s.shared_dir).mkdir(parents=True)
    host.path(s.env_file).write_text("")
    host.release("r1")
    host.switch("r1")
    current = host.path(s.current_dir)
    result = subprocess.run(
        [f"{current}/.venv/bin/python", "-P", "-c", "import sys, django; print(sys.prefix); print(django.__file__)"],
        cwd=current,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
        capture_output=True,
        text=True,
        check=True,
    )
    prefix, django_file = result.stdout.splitlines()
    assert prefix == f"{current}/.venv"
    assert django_file.startswith(f"{current}/.venv/lib/")


@pytest.fixture(scope="module")
def tools() -> tuple[str, str]:
    supervisord = find_tool("supervisord", venv=True)
    supervisorctl = find_tool("supervisorctl", venv=True)
    if not (supervisord and supervisorctl):
        pytest.skip("supervisor is not installed in the project's environment (uv sync)")
    if not (Path(sys.prefix) / "bin" / "gunicorn").exists():
        pytest.skip("gunicorn is not installed in the project's environment (uv sync)")
    return supervisord, supervisorctl


@pytest.fixture(scope="module")
def running(tools: tuple[str, str]) -> Iterator[tuple[Settings, Host, Ctl]]:
    """One supervisord for the module (starting it takes startsecs = 3 s)."""
    supervisord, supervisorctl = tools
    with short_temporary_directory() as short_tmp:
        yield from _running(supervisord, supervisorctl, short_tmp)


def _running(supervisord: str, supervisorctl: str, short_tmp: Path) -> Iterator[tuple[Settings, Host, Ctl]]:
    s = logs_moved(make_settings(gunicornWorkers=2), short_tmp / "logs")
    host = Host(short_tmp, s)
    conf = host.build()
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=host.path(s.current_dir),
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
    )
    assert migrate.returncode == 0, migrate.stderr

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([supervisorctl, "-c", str(conf), *args], capture_output=True, text=True, check=False)

    # supervisord's programs inherit its environment: none of the test run's Python or Django
    # variables (a PYTHONPATH would let gunicorn import the project from somewhere else).
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO_", "VIRTUAL_ENV"))}
    process = subprocess.Popen(
        [supervisord, "-n", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean
    )
    gunicorn = None
    try:

        def settled() -> str | None:
            status = ctl("status", s.app_name).stdout
            return status if "RUNNING" in status or "FATAL" in status else None

        status = wait_for(settled, timeout=60, what=f"{s.app_name} RUNNING or FATAL")
        if "RUNNING" not in status:
            err_log = host.path(f"/var/log/supervisor/{s.app_name}.err.log")
            log = err_log.read_text()[-3000:] if err_log.exists() else "(no log)"
            pytest.fail(f"{s.app_name} is not RUNNING: {status}\n{log}")
        gunicorn = int(ctl("pid", s.app_name).stdout)
        yield s, host, ctl
    finally:
        stop_process(process)  # supervisord stops the program (stopsignal INT) before it exits
        if gunicorn is not None and alive(gunicorn):
            os.kill(gunicorn, 9)
            pytest.fail("gunicorn outlived supervisord")


def test_program_runs_serves_and_reloads(running) -> None:
    s, host, ctl = running
    socket_path = host.path(s.socket_path)
    status = ctl("status", s.app_name)
    assert status.returncode == 0 and "RUNNING" in status.stdout

    code, page = get(socket_path, "/", s.domain)
    assert code == 200 and "Hello from django-vps" in page
    # ALLOWED_HOSTS comes from the rendered .env: another host is refused.
    assert get(socket_path, "/", "evil.example.net")[0] == 400

    info = os.stat(socket_path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) & 0o007 == 0, f"socket mode {stat.S_IMODE(info.st_mode):o}: others may connect"
    assert info.st_uid == os.getuid()

    master = int(ctl("pid", s.app_name).stdout)
    workers = wait_for(lambda: len(children(master)) == 2 and children(master), timeout=60, what="2 workers")

    signal = ctl("signal", "HUP", s.app_name)
    assert signal.returncode == 0 and "signalled" in signal.stdout
    # gunicorn starts new workers and retires the old ones; the master and the socket stay.
    wait_for(
        lambda: (new := children(master)) and not (new & workers) and len(new) == 2,
        timeout=60,
        what="the HUP to replace both workers",
    )
    assert int(ctl("pid", s.app_name).stdout) == master
    assert "RUNNING" in ctl("status", s.app_name).stdout
    code, page = get(socket_path, "/", s.domain)
    assert code == 200 and "Hello from django-vps" in page

    err_log = host.path(f"/var/log/supervisor/{s.app_name}.err.log").read_text()
    assert f"Listening at: unix:{socket_path}" in err_log
    assert "Handling signal: hup" in err_log
    out_log = host.path(f"/var/log/supervisor/{s.app_name}.out.log")
    wait_for(lambda: '"GET / HTTP/1.1" 200' in out_log.read_text(), timeout=30, what="the access log line")


def test_django_errors_reach_the_log_file(running) -> None:
    """The rendered .env's LOGS_DIR/LOG_FILENAME reach the project's logging (the seed's block)."""
    s, host, _ = running
    assert get(host.path(s.socket_path), "/boom/", s.domain)[0] == 500
    log = Path(s.logs.directory) / s.logs.filename
    wait_for(lambda: log.exists() and "django-vps boom" in log.read_text(), timeout=30, what=f"the error in {log}")
    assert log.read_text().startswith("ERROR ")


def test_hup_after_switching_current_serves_the_new_release(running) -> None:
    """What a deploy does after its release check: switch `current` (ln -sfn + mv -T) and HUP.
    The master stays (same PID, same socket); the new workers import the new release's code,
    through the link, with the shared database. Switching back and HUP-ing again is a rollback.
    Runs last: it leaves `current` on r1 again but with new workers."""
    s, host, ctl = running
    socket_path = host.path(s.socket_path)
    r2_heading = "<h1>blog, release two</h1>"
    master = int(ctl("pid", s.app_name).stdout)
    socket_inode = os.stat(socket_path).st_ino

    code, page = get(socket_path, "/", s.domain)
    assert code == 200 and HEADING in page and r2_heading not in page
    host.release("r2", r2_heading)

    for name, heading, other in (("r2", r2_heading, HEADING), ("r1", HEADING, r2_heading)):
        workers = wait_for(lambda: len(children(master)) == 2 and children(master), timeout=60, what="2 workers")
        host.switch(name)
        assert os.readlink(host.path(s.current_dir)) == f"releases/{name}"
        # (Not checked before the HUP: Django imports views on a worker's first request, and a
        # worker that has not had one yet would import them through the link already switched.)
        signal = ctl("signal", "HUP", s.app_name)
        assert signal.returncode == 0 and "signalled" in signal.stdout
        wait_for(
            lambda heading=heading: heading in get(socket_path, "/", s.domain)[1],
            timeout=60,
            interval=0.2,
            what=f"the page to show {name}'s heading {heading!r} after the HUP",
        )
        wait_for(
            lambda workers=workers: (new := children(master)) and not (new & workers) and len(new) == 2,
            timeout=60,
            what="the HUP to replace both workers",
        )
        # Once the old workers are gone, every answer comes from the new release, with the data
        # of the shared database.
        for _ in range(6):
            code, page = get(socket_path, "/", s.domain)
            assert code == 200 and heading in page and other not in page, page
            assert "Hello from django-vps" in page
        assert int(ctl("pid", s.app_name).stdout) == master, "the master was restarted, not reloaded"
        assert os.stat(socket_path).st_ino == socket_inode, "the listening socket was replaced"
        assert "RUNNING" in ctl("status", s.app_name).stdout


def test_a_new_worker_count_is_live_after_a_hup(running) -> None:
    """gunicornWorkers reaches a running site with the deploy's HUP, no restart: gunicorn reads its
    config file again. (The control is the HUP in test_program_runs_serves_and_reloads: the file
    unchanged, the count stays 2.)"""
    s, host, ctl = running
    master = int(ctl("pid", s.app_name).stdout)
    wait_for(lambda: len(children(master)) == 2, timeout=60, what="2 workers")
    changed = logs_moved(make_settings(gunicornWorkers=3), s.logs.directory)
    host.path(s.gunicorn_conf).write_text(render.gunicorn_conf(changed))
    assert ctl("signal", "HUP", s.app_name).returncode == 0
    wait_for(lambda: len(children(master)) == 3, timeout=60, what="3 workers after the HUP")
    assert int(ctl("pid", s.app_name).stdout) == master
    code, page = get(host.path(s.socket_path), "/", s.domain)
    assert code == 200 and "Hello from django-vps" in page


def test_redis_on_puts_its_socket_url_in_the_apps_environment_beside_the_database() -> None:
    """(A merge once dropped it: the worker then met `--url $REDIS_URL` unexpanded.)"""
    s = make_settings(redis="true")
    lines = render.django_env(s, "k" * 50, []).splitlines()
    assert "REDIS_URL=unix:///run/redis/redis-server.sock?db=0" in lines
    assert any(line.startswith("DATABASE_URL=") for line in lines)
    assert not any(
        line.startswith("REDIS_URL=") for line in render.django_env(make_settings(), "k" * 50, []).splitlines()
    )
