"""Real projects as they are (tests/e2e/fixtures, the shapes public Django projects have), each
deployed by the real Pulumi CLI with settings only, one stack per project on one existing host:
`/` answers, nginx serves a collected static file and the admin's CSS, an upload made through the
site is served from MEDIA_URL after a second deploy, a 404 is not Django's debug page, and the
deploy prints what it detected and overrode. Without the overlay the hard-coded project fails in one
line naming the edit, and passes after that edit."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.e2e import web
from tests.e2e.cli import CliStack
from tests.e2e.load import steady_load
from tests.e2e.site import FIXTURES, _plain
from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.forge import Forge
from tests.e2e.testhost.github_api import GitHubAPI
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

IP = "198.51.100.7"
OWNER = "example"
GITHUB_TOKEN = "ghp_" + "corpus" * 6
# fixture -> what the user sets besides the usual (domain, repository, the host).
PROJECTS: dict[str, dict[str, str]] = {
    "startproject-whitenoise": {},
    "poetry-getenv": {},
    "settings-package": {"djangoEnv": json.dumps(["DJANGO_SETTINGS_MODULE=config.settings.production"])},
    "environ-media": {},
    "src-pipenv": {},
    "hardcoded": {},
}
# fixture -> what the deploy must say it detected (the tool and its file).
DETECTED: dict[str, str] = {
    "startproject-whitenoise": "requirements (requirements.txt found)",
    "poetry-getenv": "poetry (poetry.lock found)",
    "settings-package": "requirements (requirements/production.txt found)",
    "environ-media": "uv (uv.lock found)",
    "src-pipenv": "pipenv (Pipfile.lock found)",
    "hardcoded": "requirements (requirements.txt found)",
}
# The longest e2e file, in two halves for pytest-xdist (tests/conftest.py): this group goes to a
# worker of its own, with its own corpus server (the same address, in that worker's lab). The
# hard-coded project stays in the first half: the overlay test below goes on from its stack.
PART_TWO = pytest.mark.xdist_group("tests/e2e/test_real_projects.py-2")
IN_PART_TWO = ("environ-media",)
# Django's technical 404 page (its apostrophe is a typographic one: match the markup).
DEBUG_PAGE = "because you have <code>DEBUG = True</code>"


@dataclass
class Corpus:
    lab: Lab
    server: Server
    forge: Forge
    github: GitHubAPI
    login_private_key: str
    login_host_key: str
    cafile: str
    table: list[dict[str, str]] = field(default_factory=list)
    stacks: dict[str, CliStack] = field(default_factory=dict)

    def stack(self, fixture: str, directory: Path, **extra: str) -> CliStack:
        domain = f"{fixture}.corpus.test"
        self.lab.set_a(domain, IP)
        stack = CliStack(directory)
        stack.configure(
            {
                "domain": domain,
                "repository": f"{OWNER}/{fixture}",
                "appName": fixture,
                "cloneUrl": self.forge.url(fixture),
                "cloneHostKeys": json.dumps([f"{self.forge.ip} {self.forge.host_public_key()}"]),
                "letsencryptEmail": "admin@corpus.test",
                "acmeServer": self.lab.acme_directory,
                "manageDns": "false",
                "existingHost": IP,
                "existingHostUser": "admin",
                "existingHostKey": self.login_host_key,
                "existingHostPrivateKey": self.login_private_key,
                "deployWorkflow": "false",
                "github:token": GITHUB_TOKEN,
                "github:baseUrl": self.github.url,
                **extra,
            }
        )
        return stack

    def https(self, fixture: str, path: str) -> web.Response:
        return web.get(IP, f"{fixture}.corpus.test", path, cafile=self.cafile)

    def deploy(self, fixture: str) -> str:
        """A second deploy, as the workflow's forced command runs it (the app user's deploy.sh)."""
        result = self.server.run(f"sudo -u {fixture} -H /opt/django-vps/{fixture}/bin/deploy.sh 2>&1")
        assert result.returncode == 0, result.stdout
        return result.stdout

    def post_row(self, fixture: str, text: str) -> str:
        domain = f"{fixture}.corpus.test"
        result = subprocess.run(
            ["curl", "-sS", "--cacert", self.cafile, "--resolve", f"{domain}:443:{IP}", "-F", f"text={text}",
             f"https://{domain}/rows/"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return result.stdout.strip()

    def upload(self, fixture: str, name: str, content: str) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=name) as file:
            file.write(content)
            file.flush()
            domain = f"{fixture}.corpus.test"
            result = subprocess.run(
                ["curl", "-sS", "--cacert", self.cafile, "--resolve", f"{domain}:443:{IP}",
                 "-F", f"file=@{file.name};filename={name}", f"https://{domain}/upload/"],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
        assert result.stdout.startswith("saved "), result.stdout
        return result.stdout.removeprefix("saved ").strip()


def _deploy_output(stack: CliStack) -> str:
    """What the deploy step printed in the first up (its stdout, in the state)."""
    state = json.loads(stack.cli("stack", "export", "--show-secrets").stdout)
    (deploy,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith("-host-deploy")]
    return _plain(deploy["outputs"])["stdout"]


@pytest.fixture(scope="module")
def corpus(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    server = lab.server("corpus", IP)
    github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=(*PROJECTS, "blog", "rq-worker", "asgi-echo"))
    try:
        login = server.add_sudo_login()
        forge = lab.forge()
        for fixture in PROJECTS:
            forge.create_repo(fixture, FIXTURES / fixture)
        cafile = tmp_path_factory.mktemp("ca") / "root.pem"
        cafile.write_text(lab.acme_ca_pem())
        corpus = Corpus(lab, server, forge, github, login.private_openssh, server.host_public_key(), str(cafile))
        yield corpus
        rows = [
            f"| {r['fixture']} | {r['detected']} | {r['set']} | {r['seconds']} | {r['warnings']} |"
            for r in corpus.table
        ]
        figure(
            "\n".join(
                ["| fixture | detected | set by the user | converge (s) | warnings |", "|---|---|---|---|---|", *rows]
            )
        )
    finally:
        github.stop()
        lab.remove("corpus")


@pytest.mark.parametrize("fixture", [pytest.param(f, marks=PART_TWO) if f in IN_PART_TWO else f for f in PROJECTS])
def test_a_real_project_reaches_production_with_settings_only(corpus: Corpus, fixture: str, tmp_path: Path) -> None:
    stack = corpus.stacks[fixture] = corpus.stack(fixture, tmp_path, **PROJECTS[fixture])
    first = stack.up(echo=None)
    Path(corpus.cafile).write_text(corpus.lab.acme_ca_pem())
    output = _deploy_output(stack)
    assert "==> release check: GET / answered 200 OK" in output, output
    detected = next(line for line in output.splitlines() if line.startswith("==> dependencies: "))
    assert detected.startswith(f"==> dependencies: {DETECTED[fixture]}"), detected
    overlay = [line for line in output.splitlines() if line.startswith("==> settings overlay: ")]
    # The others read ALLOWED_HOSTS from the environment, which has the domain: nothing to add.
    added_host = f"==> settings overlay: ALLOWED_HOSTS: added {fixture}.corpus.test"
    assert (added_host in overlay) == (fixture == "hardcoded"), overlay
    # DEBUG = True in the hard-coded project only: turned off, and said.
    assert ("==> settings overlay: DEBUG: True -> False" in overlay) == (fixture == "hardcoded"), overlay
    if fixture == "poetry-getenv":  # poetry's main group only: the dev group stays out of production
        venv = f"/home/{fixture}/{fixture}/current/.venv/bin/python"
        dev = corpus.server.run(f"sudo -u {fixture} {venv} -c 'import debug_toolbar'")
        assert dev.returncode != 0 and "ModuleNotFoundError" in dev.stderr, dev.stdout + dev.stderr

    page = corpus.https(fixture, "/")
    assert page.status == 200 and f"Hello from {fixture}" in page.body, (page.status, page.body[:300])
    # nginx serves the collected files, the page's own CSS as the page links it and the admin's.
    assets = corpus.server.run(f"cat /home/{fixture}/{fixture}/current/.django-vps/assets", check=True).stdout.split()
    assert "/static/admin/css/base.css" in assets and len(assets) == 2, assets
    for path in assets:
        response = corpus.https(fixture, path)
        assert response.status == 200 and response.body, (path, response.status)
    assert assets[0] in page.body, (assets, page.body[:500])
    missing = corpus.https(fixture, "/no-such-page/")
    assert missing.status == 404 and DEBUG_PAGE not in missing.body

    # An upload through the site, then a second deploy: the file is still served, from MEDIA_URL.
    url = corpus.upload(fixture, "proof.txt", f"uploaded to {fixture}\n")
    assert url.startswith("/media/"), url
    again = corpus.deploy(fixture)
    assert "==> dependencies unchanged" in again
    assert "==> nginx serves /static/admin/css/base.css" in again, again
    served = corpus.https(fixture, url)
    assert (served.status, served.body) == (200, f"uploaded to {fixture}\n")

    # A management command by the admin's helper: the app's environment, settings and database.
    assert corpus.post_row(fixture, "from the site") == "rows 1"
    count = corpus.server.run(
        f"django-vps-manage {fixture} shell -c 'from django.apps import apps; "
        'print(next(m for m in apps.get_models() if m.__name__ == "Note").objects.count())\'',
        check=True,
    ).stdout.splitlines()[-1]
    assert count == "1"
    if fixture == "src-pipenv":  # the project without gunicorn
        assert "==> gunicorn is not among the project's dependencies: adding gunicorn==27.0.1" in output

    warnings = [line.removeprefix("warning: ") for line in output.splitlines() if line.startswith("warning: ")]
    corpus.table.append(
        {
            "fixture": fixture,
            "detected": detected.removeprefix("==> dependencies: "),
            "set": ", ".join(f"{k}={v}" for k, v in PROJECTS[fixture].items()) or "nothing",
            "seconds": f"{first.seconds:.1f}",
            "warnings": "; ".join(
                re.sub(r"^check --deploy: \?: \((\S+)\).*", r"check --deploy \1", w)[:70] for w in warnings
            )
            or "none",
        }
    )
    figure(f"{fixture}: converge {first.seconds:.1f} s; {detected}")
    print("\n".join(line for line in output.splitlines() if line.startswith(("==> settings overlay", "warning:"))))


def test_without_the_overlay_the_hard_coded_project_fails_in_one_line_then_passes_after_the_edit(
    corpus: Corpus,
) -> None:
    fixture = "hardcoded"
    stack = corpus.stacks[fixture]  # as deployed with the overlay by the test above
    stack.configure({"settingsOverlay": "false"})
    with pytest.raises(auto.CommandError) as failed:
        stack.up(echo=None)
    wanted = (
        "release check: ALLOWED_HOSTS in mysite/settings.py (line 28) is ['localhost', '127.0.0.1'], which does not "
        f"admit {fixture}.corpus.test: add '{fixture}.corpus.test' to it"
    )
    assert wanted in str(failed.value), str(failed.value)[-3000:]
    # The live release (the overlay's, from the first test) was left serving.
    assert corpus.https(fixture, "/").status == 200

    settings = (corpus.forge.work / fixture / "mysite" / "settings.py").read_text()
    corpus.forge.push_commit(
        fixture,
        {"mysite/settings.py": settings.replace("ALLOWED_HOSTS = [", f"ALLOWED_HOSTS = ['{fixture}.corpus.test', ")},
        "Admit the production domain",
    )
    stack.up(echo=None)
    output = _deploy_output(stack)
    assert "==> release check: GET / answered 200 OK" in output
    assert "warning: DEBUG is True in production (mysite/settings.py (line 26))" in output, output
    assert "==> settings overlay" not in output
    # DEBUG on, as the project has it: the warning said so; the 404 page is Django's debug page.
    assert DEBUG_PAGE in corpus.https(fixture, "/no-such-page/").body


def _admin_login(corpus: Corpus, directory: Path) -> tuple[Path, Path]:
    """The admin's key and a known_hosts pinning the host: what the user has on their machine."""
    key, known = directory / "admin_key", directory / "known_hosts"
    if not key.exists():
        key.write_text(corpus.login_private_key)
        key.chmod(0o600)
        known.write_text(f"{IP} {corpus.login_host_key}\n")
    return key, known


def _admin_ssh(corpus: Corpus, directory: Path, command: str) -> subprocess.CompletedProcess[str]:
    """`command` run over SSH as the admin user, as a user's terminal would send it."""
    key, known = _admin_login(corpus, directory)
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o",
         f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", f"admin@{IP}", command],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _operate_commands() -> list[str]:
    """The README's "Operate it" block, command by command (comments dropped)."""
    section = (Path(__file__).parents[2] / "README.md").read_text().split("\n## Operate it\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip() and line[0] != "#"]


@PART_TWO
def test_the_readmes_operate_it_commands_run_as_written(corpus: Corpus, tmp_path: Path) -> None:
    """A startproject-shaped site (the hard-coded fixture) as app `blog`, then every command of the
    README's "Operate it" as the admin user over SSH; createsuperuser answers its prompts on a
    terminal (script(1))."""
    corpus.forge.create_repo("blog", FIXTURES / "hardcoded")
    stack = corpus.stack(
        "blog", tmp_path, appName="blog", repository=f"{OWNER}/blog", cloneUrl=corpus.forge.url("blog")
    )
    stack.up(echo=None)
    commands = _operate_commands()
    assert len(commands) >= 12 and commands[0] == "sudo django-vps-manage blog createsuperuser", commands
    key, known = _admin_login(corpus, tmp_path)

    def ssh(command: str) -> subprocess.CompletedProcess[str]:
        return _admin_ssh(corpus, tmp_path, command)

    def interactive(command: str, answers: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
        """ssh -tt, each answer typed once its prompt is on the terminal (getpass flushes input
        typed ahead, as a terminal user's would be)."""
        process = subprocess.Popen(
            ["ssh", "-tt", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o",
             f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", f"admin@{IP}", command],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        seen, deadline = b"", time.monotonic() + 120
        for prompt, answer in answers:
            while prompt.encode() not in seen.rsplit(b"\n", 1)[-1] and time.monotonic() < deadline:
                ready, _, _ = select.select([process.stdout], [], [], 1)
                if ready:
                    chunk = os.read(process.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    seen += chunk
            process.stdin.write(answer.encode() + b"\n")
            process.stdin.flush()
        rest, _ = process.communicate(timeout=120)
        return subprocess.CompletedProcess(command, process.returncode, (seen + rest).decode(errors="replace"), "")

    password = "Corpus-pass-4711-!"
    prompts = [("Username", "ops"), ("Email address", "ops@blog.test"), ("Password:", password),
               ("Password (again)", password)]  # fmt: skip
    for command in commands:
        result = interactive(command, prompts) if command.endswith("createsuperuser") else ssh(command)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
        print(f"\n$ {command}\n{result.stdout.strip()[-600:]}")
        if command.endswith("deploy.sh rollback"):
            assert "==> rolled back to " in result.stdout
        if command.endswith("deploy.sh verify"):
            assert "==> verified: " in result.stdout and "==> nginx serves " in result.stdout
        if "diffsettings" in command:  # the overlay's overrides of the project's hard-coded settings
            assert "ALLOWED_HOSTS" in result.stdout and "DEBUG = False" in result.stdout, result.stdout
    superusers = ssh(
        "sudo django-vps-manage blog shell -c "
        "'from django.contrib.auth.models import User; print(User.objects.filter(is_superuser=True).count())'"
    )
    assert superusers.stdout.splitlines()[-1] == "1", superusers.stdout + superusers.stderr


def _rows(corpus: Corpus, fixture: str, wanted: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = corpus.https(fixture, "/rows/").body
        if body == wanted:
            return body
        time.sleep(0.5)
    raise AssertionError(f"/rows/ answers {body!r}, not {wanted!r}, after {timeout} s")


@PART_TWO
def test_a_worker_on_redis_runs_jobs_and_finishes_a_long_one_through_a_deploy_under_load(
    corpus: Corpus, tmp_path: Path
) -> None:
    """processes + redis: an RQ worker (its own supervisor program) runs the jobs a web request
    queues on the host's Redis socket; a deploy under load while a long job runs fails no request
    and loses no job (TERM: RQ's warm shutdown finishes it); a process taken out of the setting goes."""
    fixture = "rq-worker"
    corpus.forge.create_repo(fixture, FIXTURES / fixture)
    tick = {
        "name": "tick",
        "on": "*-01-01 04:00:00",  # scheduled, but never due while the test runs (rows are counted)
        "command": "shell -c \"from polls.models import Note; Note.objects.create(text='tick')\"",
    }
    stack = corpus.stack(
        fixture,
        tmp_path,
        processes=json.dumps({"worker": "rq worker -c rqsettings --url $REDIS_URL"}),
        redis="true",
        schedule=json.dumps([tick, {"name": "slow", "on": "*-01-01 04:00:00", "run": "sleep 30"}]),
        processStopSeconds="60",
    )
    first = stack.up(echo=None)
    program = f"{fixture}.worker"
    assert "RUNNING" in corpus.server.run(f"supervisorctl status {program}").stdout
    assert corpus.server.run("ss -ltn | grep -c ':6379 '").stdout.strip() == "0", "redis listens on TCP"
    domain = f"{fixture}.corpus.test"

    def enqueue(text: str, seconds: float) -> str:
        result = subprocess.run(
            ["curl", "-sS", "--cacert", corpus.cafile, "--resolve", f"{domain}:443:{IP}", "-F", f"text={text}",
             "-F", f"seconds={seconds}", f"https://{domain}/enqueue/"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert result.stdout.startswith("queued "), result.stdout
        return result.stdout

    enqueue("first", 0)
    _rows(corpus, fixture, "rows 1")

    # The scheduled command: its timer is scheduled, and its service (started here) writes a row.
    unit = f"django-vps-{fixture}.tick"
    enabled = corpus.server.run(f"systemctl is-enabled {unit}.timer").stdout.strip()
    next_run = corpus.server.run(f"systemctl show -P NextElapseUSecRealtime {unit}.timer").stdout.strip()
    assert enabled == "enabled" and next_run, (enabled, next_run)  # scheduled: enabled, with a next run
    corpus.server.run(f"systemctl start {unit}.service", check=True)
    _rows(corpus, fixture, "rows 2")
    # The stack output's command, from the user's machine as the admin: it shows that run.
    logs = _admin_ssh(corpus, tmp_path, first.outputs["scheduleLogs"].split(f"admin@{IP} ", 1)[1])
    assert logs.returncode == 0 and f"{unit}.service" in logs.stdout, logs.stdout + logs.stderr
    assert "Finished" in logs.stdout or "Deactivated successfully" in logs.stdout, logs.stdout
    # Due while its last run is still going (started as its timer starts it): skipped, and said.
    slow = f"django-vps-{fixture}.slow"
    corpus.server.run(f"systemctl start {slow}.due.service", check=True)
    deadline = time.monotonic() + 30
    while corpus.server.run(f"systemctl show -P ActiveState {slow}.service").stdout.strip() != "activating":
        assert time.monotonic() < deadline, "the slow command did not start"
        time.sleep(0.2)
    corpus.server.run(f"systemctl start {slow}.due.service", check=True)
    said = corpus.server.run(f"journalctl -u {slow}.due.service -o cat --no-pager", check=True).stdout
    assert f"skipped this run of {slow}.service: the last run, started " in said, said
    corpus.server.run(f"systemctl stop {slow}.service", check=True)

    worker_log = f"/var/log/supervisor/{program}.out.log"  # RQ logs below ERROR to stdout
    logged_before = int(corpus.server.run(f"wc -l < {worker_log}", check=True).stdout)
    job = enqueue("long", 20).split()[1]  # longer than the deploy's way to the restart
    time.sleep(1)  # the worker has taken it
    with steady_load(IP, domain, "/") as load:
        started = time.monotonic()
        output = corpus.deploy(fixture)
        deploy_seconds = time.monotonic() - started
    assert f"==> restarting {program}" in output, output
    assert load.errors == 0 and set(load.statuses) == {200}, (load.statuses, load.errors)
    _rows(corpus, fixture, "rows 3")  # the long job was finished, not lost
    # ... by the old worker, told to stop while the job ran (RQ's warm shutdown), not after it.
    logged = corpus.server.run(f"tail -n +{logged_before + 1} {worker_log}", check=True).stdout.splitlines()
    stop = next((i for i, line in enumerate(logged) if "warm shut down requested" in line.lower()), None)
    done = next((i for i, line in enumerate(logged) if "Job OK" in line and job in line), None)
    assert stop is not None and done is not None and stop < done, "\n".join(logged)
    time.sleep(2)
    assert corpus.https(fixture, "/rows/").body == "rows 3", "a job ran twice"
    figure(f"deploy with a worker finishing a 20 s job, under load: {deploy_seconds:.1f} s, "
          f"{load.sent} requests, {load.errors} failed, statuses {dict(load.statuses)}")  # fmt: skip

    # A commit whose worker cannot start: the deploy fails and switches back, the worker runs again.
    live = corpus.server.run(f"readlink /home/{fixture}/{fixture}/current", check=True).stdout.strip()
    settings = (corpus.forge.work / fixture / "rqsettings.py").read_text()
    corpus.forge.push_commit(fixture, {"rqsettings.py": "raise RuntimeError('broken on purpose')\n"}, "Break it")
    failed = corpus.server.run(f"sudo -u {fixture} -H /opt/django-vps/{fixture}/bin/deploy.sh 2>&1")
    assert failed.returncode != 0, failed.stdout
    said = (f"{program} is not RUNNING after its restart", f"{program} did not restart")
    assert any(line in failed.stdout for line in said), failed.stdout
    assert f"switched back to {live.removeprefix('releases/')}" in failed.stdout, failed.stdout
    assert corpus.server.run(f"readlink /home/{fixture}/{fixture}/current").stdout.strip() == live
    assert "RUNNING" in corpus.server.run(f"supervisorctl status {program}").stdout
    enqueue("after the failed deploy", 0)
    _rows(corpus, fixture, "rows 4")  # the worker of the live release runs jobs again
    corpus.forge.push_commit(fixture, {"rqsettings.py": settings}, "Fix it")

    stack.configure({"processes": None, "schedule": None})
    stack.up(echo=None)
    assert "no such process" in corpus.server.run(f"supervisorctl status {program}").stdout.lower()
    assert corpus.server.run(f"test -e /etc/systemd/system/{unit}.timer").returncode != 0, "the timer stayed"


@PART_TWO
def test_asgi_answers_a_websocket_over_wss_through_nginx_and_after_a_deploy(corpus: Corpus, tmp_path: Path) -> None:
    """server asgi: uvicorn workers (supplied: the project has none), nginx passing the upgrade, a
    websocket echo over wss:// with the lab CA's certificate; a deploy under load reloads gracefully
    (no request fails), a websocket held through it is closed by its stopping worker, and a client
    that reconnects is served by a new worker."""
    import socket
    import ssl

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import ClientConnection, connect

    fixture = "asgi-echo"
    domain = f"{fixture}.corpus.test"
    corpus.forge.create_repo(fixture, FIXTURES / fixture)
    stack = corpus.stack(fixture, tmp_path, server="asgi")
    stack.up(echo=None)
    output = _deploy_output(stack)
    assert "==> server asgi and the project does not depend on uvicorn-worker: adding uvicorn-worker==0.4.0" in output
    assert "==> ASGI application: mysite.asgi:application" in output, output
    assert corpus.https(fixture, "/").status == 200

    context = ssl.create_default_context(cafile=corpus.cafile)

    def connected() -> ClientConnection:
        return connect(
            f"wss://{domain}/ws/echo/", sock=socket.create_connection((IP, 443), timeout=10), ssl=context,
            server_hostname=domain, open_timeout=10,
        )  # fmt: skip

    def echo(message: str) -> str:
        with connected() as websocket:
            websocket.send(message)
            return str(websocket.recv(timeout=10))

    before = echo("hello")
    assert before.startswith("echo from ") and before.endswith(": hello"), before
    # A connection held through a deploy under load: no request fails; the old worker, stopping,
    # closes the connection (the client's cue to reconnect), and a new one is served by a new worker.
    held = connected()
    held.send("held")
    worker = str(held.recv(timeout=10)).split(":")[0]
    with steady_load(IP, domain, "/") as load:
        again = corpus.deploy(fixture)
    assert "==> reloading asgi-echo gracefully" in again
    assert load.errors == 0 and set(load.statuses) == {200}, (load.statuses, load.errors)
    started = time.monotonic()
    with pytest.raises(ConnectionClosed):
        held.recv(timeout=90)  # gunicorn's graceful timeout at the latest
    closed_after = time.monotonic() - started
    after = echo("again")
    assert after.endswith(": again") and after.split(":")[0] != worker, (worker, after)
    figure(f"ASGI deploy under load: {load.sent} requests, {load.errors} failed; a websocket held through it "
           f"closed {closed_after:.1f} s after the deploy returned; reconnected: {worker!r} -> {after!r}")  # fmt: skip
