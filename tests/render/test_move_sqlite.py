"""Moving a SQLite site to PostgreSQL (files/move_sqlite.py, run by deploy.sh in the first release on
PostgreSQL), against a real PostgreSQL server: a release on SQLite with rows (ids with a gap), a
user holding a permission and a session; the next release with database postgresql, checked
(PostgreSQL migrated), then the move: the same rows with the same ids in PostgreSQL, the user's
permission found by its natural key, the sequence past the moved ids, the SQLite file only read.
A PostgreSQL database that holds rows of the site's already is refused, with nothing changed."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import render
from tests.render.postgres import Postgres, postgres_server
from tests.render.release import Release, clean_env
from tests.support.program import ROOT

FIXTURE = ROOT / "tests" / "e2e" / "fixtures" / "postgres-uv"
SETUP = """
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.backends.db import SessionStore
from notes.models import Note
for n in range(1, 6):
    Note.objects.create(text=f"note {n}")
Note.objects.filter(pk__in=[3, 4]).delete()
user = User.objects.create_user("editor", password="a password")
user.user_permissions.add(Permission.objects.get(codename="add_note"))
session = SessionStore()
session["seen"] = "yes"
session.create()
"""
AFTER = """
from django.contrib.auth.models import User
from django.db import connection
from notes.models import Note
print(connection.vendor, [(n.pk, n.text) for n in Note.objects.order_by("pk")])
user = User.objects.get(username="editor")
print("perm", user.has_perm("notes.add_note"), user.has_perm("notes.delete_note"), user.check_password("a password"))
print("next", Note.objects.create(text="after the move").pk)
"""


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server(role="blog", database="blog") as server:
        yield server


def _move(release: Release, *args: str) -> subprocess.CompletedProcess[str]:
    mover = release.check.parent / "move_sqlite.py"
    mover.write_text((render.FILES / "move_sqlite.py").read_text())
    return subprocess.run(
        [".venv/bin/python", "-P", str(mover), *args, str(release.shared / "db.sqlite3")],
        cwd=release.dir, env=clean_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _on_sqlite(tmp_path: Path) -> Release:
    first = Release(tmp_path, FIXTURE, name="r1")
    result = first.run()
    assert result.returncode == 0, result.stdout + result.stderr
    made = first.manage("shell", "-c", SETUP)
    assert made.returncode == 0, made.stdout + made.stderr
    return first


def test_the_first_release_on_postgresql_moves_the_sqlite_sites_data(postgres: Postgres, tmp_path: Path) -> None:
    postgres.sql("blog", "DROP OWNED BY blog")
    _on_sqlite(tmp_path)
    sqlite_file = tmp_path / "shared" / "db.sqlite3"
    digest = hashlib.sha256(sqlite_file.read_bytes()).hexdigest()
    second = Release(tmp_path, FIXTURE, name="r2", database="postgresql", postgres_socket=postgres.socket_dir)
    checked = second.run()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert postgres.sql("blog", "SELECT count(*) FROM notes_note").strip() == "0"
    # migrate made PostgreSQL's own content types and permissions: the move must match them by name.
    assert int(postgres.sql("blog", "SELECT count(*) FROM auth_permission").strip()) > 0
    assert _move(second, "--check").returncode == 0

    moved = _move(second)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    # 3 notes, the user, its permission (the many-to-many table), the session.
    assert "==> moved 6 rows of 4 tables from " in moved.stdout, moved.stdout
    assert "into PostgreSQL database blog in " in moved.stdout
    after = second.manage("shell", "-c", AFTER)
    assert after.returncode == 0, after.stdout + after.stderr
    assert after.stdout.splitlines()[-3:] == [
        "postgresql [(1, 'note 1'), (2, 'note 2'), (5, 'note 5')]",
        "perm True False True",
        "next 6",
    ], after.stdout
    assert postgres.sql("blog", "SELECT session_data <> '' FROM django_session").strip() == "t"
    # The SQLite file was only read; no copy or dump is left beside it.
    assert hashlib.sha256(sqlite_file.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in sqlite_file.parent.iterdir() if p.name.startswith(".moving-")) == []
    with sqlite3.connect(sqlite_file) as connection:
        assert connection.execute("SELECT count(*) FROM notes_note").fetchone() == (3,)

    # Again, now that PostgreSQL holds the site's rows: refused, and nothing changes.
    for args in (("--check",), ()):
        again = _move(second, *args)
        assert again.returncode == 1, again.stdout + again.stderr
        (line,) = again.stderr.splitlines()
        assert line.startswith("move failed: PostgreSQL already holds rows of the site (auth.user 1, "), line
        assert "notes.note 4" in line and f"rename or delete {sqlite_file}" in line, line
    assert postgres.sql("blog", "SELECT count(*) FROM notes_note").strip() == "4"
