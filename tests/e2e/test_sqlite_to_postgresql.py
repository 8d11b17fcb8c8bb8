"""A SQLite site on Debian 13 on the real CLI, then moved to PostgreSQL: one existing-host lab server
(trixie) running the postgres-uv fixture on SQLite (the default database). First SQLite's backups
on Debian 13 (Debian 12's run in test_offsite.py): rows and an upload, the timer's own backup, the
database file corrupted and the upload deleted, `backup.sh restore`, everything back. Then
`database: postgresql` and one `pulumi up`: its deploy moves the SQLite data into PostgreSQL with the
app stopped for the copy, the same rows (and new ones after them) are served from PostgreSQL, the
upload stays, the SQLite file is kept under another name and no later deploy moves anything. Before
that, the same up with a commit whose release fails its check: refused before the move, and the site
stays on SQLite even when restarted (the .env on PostgreSQL waits for the deploy that moves)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pulumi import automation as auto

from tests.e2e.cli import CliStack
from tests.e2e.site import FIXTURES, _plain
from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.forge import Forge
from tests.e2e.testhost.image import build_image
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

IP = "198.51.100.14"
OWNER = "example"
FIXTURE = "postgres-uv"
DOMAIN = "move.data.test"
GITHUB_TOKEN = "ghp_" + "moving" * 6
SHARED = f"/home/{FIXTURE}/{FIXTURE}/shared"
UPLOAD = "an upload that outlives the database's move\n"


@dataclass
class Site:
    server: Server
    stack: CliStack
    forge: Forge
    config: dict[str, str]
    cafile: str
    upload_url: str = ""

    def https(self, path: str, form: dict[str, str] | None = None, *, check: bool = True) -> str:
        argv = ["curl", "-sS", "--fail-with-body", "--cacert", self.cafile, "--resolve", f"{DOMAIN}:443:{IP}"]
        for key, value in (form or {}).items():
            argv += ["--data-urlencode", f"{key}={value}"]
        result = subprocess.run([*argv, f"https://{DOMAIN}{path}"], capture_output=True, text=True, timeout=30)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def as_app(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        words = " ".join(shlex.quote(arg) for arg in args)
        return self.server.run(f"cd / && sudo -u {FIXTURE} -H /opt/django-vps/{FIXTURE}/bin/{script} {words} 2>&1")

    def sql(self, query: str) -> str:
        command = f"cd / && runuser -u {FIXTURE} -- psql -X -At -w -d {FIXTURE} -c {shlex.quote(query)}"
        return self.server.run(command, check=True).stdout

    def step_output(self, role: str) -> str:
        state = json.loads(self.stack.cli("stack", "export", "--show-secrets").stdout)
        (step,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith(f"-host-{role}")]
        return _plain(step["outputs"])["stdout"]


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = lab.server("moving", IP, image=build_image(suite="trixie"))
    github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=("moving",))
    try:
        login = server.add_sudo_login()
        forge = lab.forge()
        forge.create_repo("moving", FIXTURES / FIXTURE)
        lab.set_a(DOMAIN, IP)
        config = {
            "domain": DOMAIN,
            "repository": f"{OWNER}/moving",
            "appName": FIXTURE,
            "cloneUrl": forge.url("moving"),
            "cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
            "letsencryptEmail": "admin@data.test",
            "acmeServer": lab.acme_directory,
            "manageDns": "false",
            "existingHost": IP,
            "existingHostUser": "admin",
            "existingHostKey": server.host_public_key(),
            "existingHostPrivateKey": login.private_openssh,
            "deployWorkflow": "false",
            "image": "debian-13",
            "github:token": GITHUB_TOKEN,
            "github:baseUrl": github.url,
        }
        stack = CliStack(tmp_path_factory.mktemp("stack"))
        stack.configure(config)
        stack.up(echo=None)
        cafile = tmp_path_factory.mktemp("ca") / "root.pem"
        cafile.write_text(lab.acme_ca_pem())
        yield Site(server, stack, forge, config, str(cafile))
    finally:
        github.stop()
        lab.remove("moving")


def test_sqlite_on_debian_13_the_timers_backup_restores_a_corrupted_database_and_a_deleted_upload(
    site: Site,
) -> None:
    assert site.server.run("cat /etc/debian_version", check=True).stdout.startswith("13")
    assert site.https("/rows/", {"text": "first row"}) == "rows 1"
    assert site.https("/rows/", {"text": "second row"}) == "rows 2"
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write(UPLOAD)
        file.flush()
        saved = subprocess.run(
            ["curl", "-sS", "--cacert", site.cafile, "--resolve", f"{DOMAIN}:443:{IP}",
             "-F", f"file=@{file.name};filename=moving.txt", f"https://{DOMAIN}/upload/"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    site.upload_url = saved.removeprefix("saved ").strip()
    assert site.upload_url == "/media/uploads/moving.txt", saved

    started = time.monotonic()
    site.server.run(f"systemctl start django-vps-backup-{FIXTURE}.service", check=True)
    seconds = time.monotonic() - started
    journal = site.server.run(f"journalctl -u django-vps-backup-{FIXTURE}.service -o cat --no-pager").stdout
    assert "==> backup " in journal, journal
    (line,) = site.as_app("backup.sh", "list").stdout.splitlines()
    backup_id = line.split()[0]

    # The database file corrupted (its header overwritten) and the upload deleted.
    site.server.run(f"dd if=/dev/urandom of={SHARED}/db.sqlite3 bs=100 count=1 conv=notrunc status=none", check=True)
    site.server.run(f"rm {SHARED}/media/uploads/moving.txt", check=True)
    broken = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", site.cafile,
         "--resolve", f"{DOMAIN}:443:{IP}", f"https://{DOMAIN}/rows/"],
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    assert broken == "500", broken

    restored = site.as_app("backup.sh", "restore", backup_id)
    assert restored.returncode == 0, restored.stdout
    assert "the live file was not a readable database: replaced" in restored.stdout, restored.stdout
    found = re.search(r"restored backup \S+ in ([0-9.]+) s", restored.stdout)
    assert found, restored.stdout
    assert site.https("/rows/") == "rows 2"
    assert site.https(site.upload_url) == UPLOAD
    mode = site.server.run(f"stat -c '%a %U' {SHARED}/db.sqlite3", check=True).stdout.strip()
    assert mode == f"600 {FIXTURE}", mode
    figure(f"SQLite on Debian 13: the timer's backup {seconds:.2f} s; restore of a corrupted file {found.group(1)} s")


def test_switched_to_postgresql_one_up_moves_the_sites_rows_there(site: Site) -> None:
    assert site.https("/rows/", {"text": "written just before the switch"}) == "rows 3"
    # The switch with a commit whose page fails: refused by the release check, before anything moved.
    page = "notes/templates/notes/index.html"
    site.forge.push_commit("moving", {page: "{% if %}a broken page{% endif %}\n"}, "A page that fails")
    site.stack.configure({"database": "postgresql"})
    with pytest.raises(auto.CommandError) as refused:
        site.stack.up(echo=None)
    assert "did not pass its check" in str(refused.value), str(refused.value)[-3000:]
    assert f"the new .env waits as {SHARED}/.env.pending" in site.step_output("env")
    urls = site.server.run(f"grep -h ^DATABASE_URL= {SHARED}/.env {SHARED}/.env.pending", check=True).stdout.split()
    assert [url.split(":")[0] for url in urls] == ["DATABASE_URL=sqlite", "DATABASE_URL=postgres"], urls
    # Restarted (as a reboot would), the live release still reads SQLite's .env: the same rows.
    site.server.run(f"supervisorctl restart {FIXTURE}", check=True)
    assert site.https("/rows/") == "rows 3"
    site.forge.push_commit("moving", {page: (FIXTURES / FIXTURE / page).read_text()}, "The page again")
    site.stack.up(echo=None)
    deploy = site.step_output("deploy")
    assert f"==> database postgresql: moving {SHARED}/db.sqlite3 into PostgreSQL" in deploy, deploy
    moved = re.search(r"==> moved (\d+) rows of \d+ tables from \S+ into PostgreSQL database \S+ in ([\d.]+) s", deploy)
    assert moved, deploy
    assert int(moved.group(1)) >= 3  # the three notes (and the content of auth, sessions, if any)
    kept = re.search(rf"SQLite file kept as ({re.escape(SHARED)}/db\.sqlite3\.moved-\d{{8}}-\d{{6}})", deploy)
    assert kept, deploy

    # Served from PostgreSQL: the same rows, with their ids, and the next one after them.
    assert site.https("/rows/") == "rows 3"
    assert site.sql("SELECT id, text FROM notes_note ORDER BY id").splitlines() == [
        "1|first row",
        "2|second row",
        "3|written just before the switch",
    ]
    assert site.https("/rows/", {"text": "the first on PostgreSQL"}) == "rows 4"
    assert site.sql("SELECT id FROM notes_note WHERE text = 'the first on PostgreSQL'").strip() == "4"
    assert site.https(site.upload_url) == UPLOAD
    # The waiting .env is the site's now.
    assert site.server.run(f"test -e {SHARED}/.env.pending").returncode == 1
    assert site.server.run(f"grep -c ^DATABASE_URL=postgres: {SHARED}/.env", check=True).stdout.strip() == "1"
    # The SQLite file: renamed, still the app user's (and still holding the rows), never read again.
    assert site.server.run(f"test -e {SHARED}/db.sqlite3").returncode == 1
    assert site.server.run(f"stat -c %U {kept.group(1)}", check=True).stdout.strip() == FIXTURE
    figure(f"SQLite -> PostgreSQL in the deploy of the up that switched: {moved.group(2)} s for {moved.group(1)} rows")

    # A deploy after it moves nothing, and the backups are PostgreSQL's now.
    again = site.as_app("deploy.sh")
    assert again.returncode == 0 and "into PostgreSQL" not in again.stdout, again.stdout
    assert site.https("/rows/") == "rows 4"
    backup = site.as_app("backup.sh", "now")
    assert backup.returncode == 0 and "==> database: db.pgdump" in backup.stdout, backup.stdout
