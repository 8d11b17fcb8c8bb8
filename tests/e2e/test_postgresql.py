"""database postgresql on the real CLI: one existing-host lab server (Debian 12), the postgres-uv
fixture (psycopg[binary], no DATABASES of its own) deployed with settings only. Debian's PostgreSQL
listens on its unix socket only, the app user reaches its own database by peer authentication and
nobody else does, rows written through the site are in PostgreSQL and survive a deploy, and the
database step run again changes nothing. Then the pre-migration snapshot: a migration that fails
half-way is put back by `deploy.sh restore-snapshot`, and `deploy.sh rollback --restore-database`
takes the database back with the code. Then backups: the timer's service backs up the database and
MEDIA_ROOT, and `backup.sh restore` brings back deleted rows and a deleted upload."""

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

from tests.e2e.cli import CliStack
from tests.e2e.site import FIXTURES, _plain
from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.forge import Forge
from tests.e2e.testhost.image import SUITE, build_image
from tests.render.test_snapshots import ADD_TITLE, FAIL_HALF_WAY
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

IP = "198.51.100.8"
OWNER = "example"
FIXTURE = "postgres-uv"
DOMAIN = "pg.data.test"
GITHUB_TOKEN = "ghp_" + "pgdata" * 6


@dataclass
class Deployed:
    lab: Lab
    server: Server
    forge: Forge
    stack: CliStack
    config: dict[str, str]
    cafile: str
    up_seconds: float
    image: str
    repo: str

    def https(self, path: str, form: dict[str, str] | None = None) -> str:
        argv = ["curl", "-sS", "--fail-with-body", "--cacert", self.cafile, "--resolve", f"{DOMAIN}:443:{IP}"]
        for key, value in (form or {}).items():
            argv += ["--data-urlencode", f"{key}={value}"]
        result = subprocess.run([*argv, f"https://{DOMAIN}{path}"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def sql(self, query: str, *, as_user: str = "postgres", database: str = FIXTURE) -> subprocess.CompletedProcess:
        command = f"cd / && runuser -u {as_user} -- psql -X -At -w -d {shlex.quote(database)} -c {shlex.quote(query)}"
        return self.server.run(command)


# The distribution's PostgreSQL: 15 on Debian 12, 17 on Debian 13.
POSTGRESQL = {"debian-12": ("bookworm", "15"), "debian-13": ("trixie", "17")}


@pytest.fixture(scope="module", params=list(POSTGRESQL))
def deployed(lab: Lab, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Deployed]:
    image = request.param
    suite, _ = POSTGRESQL[image]
    server = lab.server("pgdata", IP, image=None if suite == SUITE else build_image(suite=suite))
    repo = f"pg-{suite}"  # one repository per run: the forge lives as long as the lab
    github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=(repo,))
    try:
        login = server.add_sudo_login()
        forge = lab.forge()
        forge.create_repo(repo, FIXTURES / FIXTURE)
        lab.set_a(DOMAIN, IP)
        config = {
            "domain": DOMAIN,
            "repository": f"{OWNER}/{repo}",
            "appName": FIXTURE,
            "cloneUrl": forge.url(repo),
            "cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
            "letsencryptEmail": "admin@data.test",
            "acmeServer": lab.acme_directory,
            "manageDns": "false",
            "existingHost": IP,
            "existingHostUser": "admin",
            "existingHostKey": server.host_public_key(),
            "existingHostPrivateKey": login.private_openssh,
            "deployWorkflow": "false",
            "database": "postgresql",
            "image": image,
            "github:token": GITHUB_TOKEN,
            "github:baseUrl": github.url,
        }
        stack = CliStack(tmp_path_factory.mktemp("stack"))
        stack.configure(config)
        first = stack.up(echo=None)
        cafile = tmp_path_factory.mktemp("ca") / "root.pem"
        cafile.write_text(lab.acme_ca_pem())
        yield Deployed(lab, server, forge, stack, config, str(cafile), first.seconds, image, repo)
    finally:
        github.stop()
        lab.remove("pgdata")


def _step_input(stack: CliStack, role: str, name: str) -> str:
    state = json.loads(stack.cli("stack", "export", "--show-secrets").stdout)
    (step,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith(f"-host-{role}")]
    return _plain(step["outputs"])[name]


def _step_output(stack: CliStack, role: str) -> str:
    return _step_input(stack, role, "stdout")


def test_postgresql_serves_the_site_and_keeps_its_rows_in_postgresql(deployed: Deployed) -> None:
    figure(f"first pulumi up with database postgresql ({deployed.image}): {deployed.up_seconds:.1f} s")
    database = _step_output(deployed.stack, "database")
    version = POSTGRESQL[deployed.image][1]
    assert f"PostgreSQL {version}: database {FIXTURE} of role" in database, database
    assert f"database {FIXTURE} of role {FIXTURE}, on /var/run/postgresql only (peer authentication)" in database
    deploy = _step_output(deployed.stack, "deploy")
    assert "settings overlay: DATABASES: default: postgres:///postgres-uv?host=/var/run/postgresql" in deploy, deploy
    assert "database django.db.backends.postgresql" in deploy
    assert "Hello from postgres-uv" in deployed.https("/")
    assert deployed.https("/rows/", {"text": "first row"}) == "rows 1"
    assert deployed.https("/rows/", {"text": "second row"}) == "rows 2"
    rows = deployed.sql("SELECT text FROM notes_note ORDER BY id")
    assert rows.stdout.split("\n")[:2] == ["first row", "second row"], rows.stdout + rows.stderr
    # Owned by the app's role, which Django connected as.
    owner = deployed.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'notes_note'")
    assert owner.stdout.strip() == FIXTURE
    # No SQLite database was made on the side.
    assert deployed.server.run(f"test -e /home/{FIXTURE}/{FIXTURE}/shared/db.sqlite3").returncode == 1

    # A deploy (as the workflow's forced command runs it) keeps the rows.
    again = deployed.server.run(f"sudo -u {FIXTURE} -H /opt/django-vps/{FIXTURE}/bin/deploy.sh 2>&1")
    assert again.returncode == 0, again.stdout
    assert deployed.https("/rows/") == "rows 2"


def test_postgresql_listens_on_its_unix_socket_only_and_admits_only_the_app_user(deployed: Deployed) -> None:
    assert deployed.sql("SHOW listen_addresses", database="postgres").stdout == "\n"
    listening = deployed.server.run("ss -Hltnp", check=True).stdout
    assert "postgres" not in listening and ":5432" not in listening, listening
    # Peer authentication: the app user is its role, with no password anywhere.
    me = deployed.sql("SELECT current_user", as_user=FIXTURE)
    assert me.returncode == 0 and me.stdout.strip() == FIXTURE, me.stdout + me.stderr
    env = deployed.server.run(f"cat /home/{FIXTURE}/{FIXTURE}/shared/.env", check=True).stdout
    assert f"DATABASE_URL=postgres:///{FIXTURE}?host=/var/run/postgresql\n" in env
    assert f"PGUSER={FIXTURE}\n" in env and f"PGDATABASE={FIXTURE}\n" in env and "PASSWORD" not in env
    # Another account of the machine is nobody to PostgreSQL: not the app's role, and no way into its database.
    for other in ("admin", "www-data"):
        refused = deployed.sql("SELECT count(*) FROM notes_note", as_user=other)
        assert refused.returncode != 0, (other, refused.stdout)
        assert "authentication failed" in refused.stderr or "does not exist" in refused.stderr, refused.stderr
    pretending = deployed.server.run(f"cd / && runuser -u admin -- psql -X -w -U {FIXTURE} -d {FIXTURE} -c 'SELECT 1'")
    assert pretending.returncode != 0 and "Peer authentication failed" in pretending.stderr, pretending.stderr


def test_the_database_step_run_again_changes_nothing(deployed: Deployed) -> None:
    # The very command the engine ran (from the state), once more: the role, database and rows stay.
    command = _step_input(deployed.stack, "database", "create")
    result = deployed.server.run(command)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restarting" not in result.stdout  # listen_addresses was set already
    assert deployed.https("/rows/") == "rows 2"
    # ...and an up with nothing changed runs nothing.
    deployed.stack.up(echo=None, expect_no_changes=True)


# The pre-migration snapshot, on the real server: the same migrations as tests/render/test_snapshots.py.
# The model as its new migration makes it (Django keeps no database default: an insert names title).
MODELS_WITH_TITLE = (
    (FIXTURES / FIXTURE / "notes" / "models.py")
    .read_text()
    .replace(
        "    text = models.CharField(max_length=200)\n",
        '    text = models.CharField(max_length=200)\n    title = models.CharField(max_length=50, default="")\n',
    )
)
FAILING = {
    "notes/models.py": MODELS_WITH_TITLE,
    "notes/migrations/0002_note_title.py": ADD_TITLE,
    "notes/migrations/0003_tag_and_data.py": FAIL_HALF_WAY,
}
HARMLESS_0003 = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_note_title")]
    operations = [migrations.RunPython(migrations.RunPython.noop)]
"""


def _deploy_sh(deployed: Deployed, *args: str) -> subprocess.CompletedProcess[str]:
    words = " ".join(shlex.quote(arg) for arg in args)
    return deployed.server.run(f"sudo -u {FIXTURE} -H /opt/django-vps/{FIXTURE}/bin/deploy.sh {words} 2>&1")


def _notes_migrations(deployed: Deployed) -> list[str]:
    return deployed.sql("SELECT name FROM django_migrations WHERE app = 'notes' ORDER BY name").stdout.split()


def _tables(deployed: Deployed) -> set[str]:
    return set(deployed.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").stdout.split())


def test_a_migration_that_fails_half_way_is_put_back_from_its_pre_migration_snapshot(deployed: Deployed) -> None:
    live = deployed.server.run(f"readlink /home/{FIXTURE}/{FIXTURE}/current", check=True).stdout.strip()
    deployed.forge.push_commit(deployed.repo, FAILING, "A migration that fails half-way")
    failed = _deploy_sh(deployed)
    assert failed.returncode != 0, failed.stdout
    assert (FIXTURES / FIXTURE / "notes" / "models.py").read_text() != MODELS_WITH_TITLE
    assert "==> pre-migration snapshot: " in failed.stdout, failed.stdout
    found = re.search(r"deploy\.sh restore-snapshot (\S+) puts it back", failed.stdout)
    assert found, failed.stdout[-2000:]
    name = found.group(1)
    # Half-way: 0002 is applied and 0003 left its table; the live release is still the old one.
    assert _notes_migrations(deployed) == ["0001_initial", "0002_note_title"]
    assert "notes_tag" in _tables(deployed)
    assert deployed.server.run(f"readlink /home/{FIXTURE}/{FIXTURE}/current").stdout.strip() == live
    snapshot = deployed.server.run(f"stat -c '%a %U' /home/{FIXTURE}/{FIXTURE}/shared/snapshots/{name}.pgdump")
    assert snapshot.stdout.strip() == f"600 {FIXTURE}", snapshot.stdout + snapshot.stderr

    restored = _deploy_sh(deployed, "restore-snapshot", name)
    assert restored.returncode == 0, restored.stdout
    seconds = re.search(r"database restored from \S+ in ([0-9.]+) s", restored.stdout)
    assert seconds, restored.stdout
    figure(f"restore of the pre-migration snapshot (pg_restore in one transaction): {seconds.group(1)} s")
    assert _notes_migrations(deployed) == ["0001_initial"]
    assert "notes_tag" not in _tables(deployed)
    assert deployed.https("/rows/") == "rows 2"


def test_a_rollback_restores_the_database_only_when_asked(deployed: Deployed) -> None:
    deployed.forge.push_commit(
        deployed.repo, {"notes/migrations/0003_tag_and_data.py": HARMLESS_0003}, "The data migration, fixed"
    )
    deployed_again = _deploy_sh(deployed)
    assert deployed_again.returncode == 0, deployed_again.stdout
    assert "==> pre-migration snapshot: " in deployed_again.stdout
    assert _notes_migrations(deployed) == ["0001_initial", "0002_note_title", "0003_tag_and_data"]
    assert deployed.https("/rows/", {"text": "written after the migration"}) == "rows 3"

    rolled = _deploy_sh(deployed, "rollback", "--restore-database")
    assert rolled.returncode == 0, rolled.stdout
    assert "restoring the database from the pre-migration snapshot of" in rolled.stdout
    # As the release rolled back to had it: its migrations, its rows (the one written since is gone).
    assert _notes_migrations(deployed) == ["0001_initial"]
    assert (
        "title"
        not in deployed.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'notes_note'"
        ).stdout.split()
    )
    assert deployed.https("/rows/") == "rows 2"


def test_the_timers_backup_and_a_restore_bring_back_rows_and_media(deployed: Deployed) -> None:
    timer = f"django-vps-backup-{FIXTURE}.timer"
    assert deployed.server.run(f"systemctl is-enabled {timer}").stdout.strip() == "enabled"
    assert deployed.server.run(f"systemctl show -P NextElapseUSecRealtime {timer}").stdout.strip()
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write("an upload worth keeping\n")
        file.flush()
        saved = subprocess.run(
            ["curl", "-sS", "--cacert", deployed.cafile, "--resolve", f"{DOMAIN}:443:{IP}",
             "-F", f"file=@{file.name};filename=kept.txt", f"https://{DOMAIN}/upload/"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    url = saved.removeprefix("saved ").strip()
    assert url.startswith("/media/"), saved
    assert deployed.https("/rows/") == "rows 2"

    # The timer's own service, as systemd starts it on backupSchedule.
    started = time.monotonic()
    deployed.server.run(f"systemctl start django-vps-backup-{FIXTURE}.service", check=True)
    backup_seconds = time.monotonic() - started
    journal = deployed.server.run(f"journalctl -u django-vps-backup-{FIXTURE}.service -o cat --no-pager").stdout
    assert "==> backup " in journal, journal
    listing = _backup_sh(deployed, "list")
    assert listing.returncode == 0, listing.stdout
    (line,) = listing.stdout.splitlines()
    backup_id = line.split()[0]
    owner = deployed.server.run(f"stat -c '%a %U' /home/{FIXTURE}/{FIXTURE}/shared/backups/{backup_id}").stdout
    assert owner.strip() == f"700 {FIXTURE}"

    # The data lost: the table dropped (a bad migration's or a mistaken psql's work), the upload removed.
    dropped = deployed.sql("DROP TABLE notes_note CASCADE", as_user=FIXTURE)
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert deployed.sql("SELECT to_regclass('notes_note') IS NULL").stdout.strip() == "t"
    media = f"/home/{FIXTURE}/{FIXTURE}/shared{url}"
    deployed.server.run(f"rm {shlex.quote(media)}", check=True)

    restored = _backup_sh(deployed, "restore", backup_id)
    assert restored.returncode == 0, restored.stdout
    assert "==> stopping postgres-uv" in restored.stdout and "==> starting postgres-uv" in restored.stdout
    assert "release check: GET / answered 200 OK" in restored.stdout
    found = re.search(r"restored backup \S+ in ([0-9.]+) s", restored.stdout)
    assert found, restored.stdout
    assert deployed.https("/rows/") == "rows 2"
    shared = f"/home/{FIXTURE}/{FIXTURE}/shared"
    files = deployed.server.run(f"ls -laR {shared}/media; tar -tvf {shared}/backups/{backup_id}/media.tar").stdout
    assert deployed.server.run(f"cat {shlex.quote(media)}").stdout == "an upload worth keeping\n", files
    assert deployed.https(url) == "an upload worth keeping\n", files
    figure(f"backup (timer's service, pg_dump + tar): {backup_seconds:.2f} s; restore: {found.group(1)} s")


def _backup_sh(deployed: Deployed, *args: str) -> subprocess.CompletedProcess[str]:
    words = " ".join(shlex.quote(arg) for arg in args)
    return deployed.server.run(f"cd / && sudo -u {FIXTURE} -H /opt/django-vps/{FIXTURE}/bin/backup.sh {words} 2>&1")
