"""The pre-migration snapshot (files/snapshot.py, taken by the release check) and its restore, for
SQLite and for a real PostgreSQL server: a release whose migrations fail half-way (one applied, the
next non-atomic one leaves a table behind and fails) is refused after its snapshot, and restoring
the snapshot gives back exactly the database the live release had, rows included."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.render.postgres import Postgres, postgres_server
from tests.render.release import Release, clean_env
from tests.support.program import ROOT

FIXTURE = ROOT / "tests" / "e2e" / "fixtures" / "postgres-uv"
ADD_TITLE = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.AddField("note", "title", models.CharField(max_length=50, default=""))]
"""
# Non-atomic: the table is made and stays, then the data migration fails.
FAIL_HALF_WAY = """from django.db import migrations, models


def fail(apps, schema_editor):
    raise RuntimeError("this data migration fails half-way")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("notes", "0002_note_title")]
    operations = [
        migrations.CreateModel("Tag", [("id", models.BigAutoField(primary_key=True)), ("name", models.TextField())]),
        migrations.RunPython(fail),
    ]
"""


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server(role="blog", database="blog") as server:
        yield server


class Database:
    """The app's database, read as the test sees it."""

    def __init__(self, kind: str, shared: Path, postgres: Postgres | None) -> None:
        self.kind, self.shared, self.postgres = kind, shared, postgres

    def query(self, sql: str) -> list[str]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.shared / "db.sqlite3") as connection:
                return ["|".join(str(v) for v in row) for row in connection.execute(sql)]
        assert self.postgres is not None
        return [line for line in self.postgres.sql("blog", sql).splitlines() if line]

    def tables(self) -> set[str]:
        if self.kind == "sqlite":
            return set(self.query("SELECT name FROM sqlite_master WHERE type = 'table'"))
        return set(self.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))

    def columns(self) -> set[str]:
        if self.kind == "sqlite":
            return {row.split("|")[1] for row in self.query("PRAGMA table_info(notes_note)")}
        return set(self.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'notes_note'"))

    def notes_migrations(self) -> list[str]:
        return self.query("SELECT name FROM django_migrations WHERE app = 'notes' ORDER BY name")


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_a_migration_that_fails_half_way_is_put_back_from_the_pre_migration_snapshot(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    postgres = request.getfixturevalue("postgres") if kind == "postgresql" else None
    if postgres is not None:
        postgres.sql("blog", "DROP OWNED BY blog")
    options = {"database": kind, "postgres_socket": postgres.socket_dir if postgres else ""}
    first = Release(tmp_path, FIXTURE, name="r1", **options)
    result = first.run()
    assert result.returncode == 0, result.stdout + result.stderr
    # A new database has nothing to lose: no snapshot.
    assert "pre-migration snapshot" not in result.stdout
    db = Database(kind, first.shared, postgres)
    for text in ("kept one", "kept two"):
        db.query(f"INSERT INTO notes_note (text) VALUES ('{text}')") if kind == "postgresql" else None
    if kind == "sqlite":
        with sqlite3.connect(first.shared / "db.sqlite3") as connection:
            connection.executemany("INSERT INTO notes_note (text) VALUES (?)", [("kept one",), ("kept two",)])
    before = (db.tables(), db.columns(), db.notes_migrations(), db.query("SELECT text FROM notes_note ORDER BY id"))
    assert before[2] == ["0001_initial"] and before[3] == ["kept one", "kept two"]

    project = tmp_path / "project-r2"
    shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    (project / "notes" / "migrations" / "0002_note_title.py").write_text(ADD_TITLE)
    (project / "notes" / "migrations" / "0003_tag_and_data.py").write_text(FAIL_HALF_WAY)
    second = Release(tmp_path, project, name="r2", **options)
    result = second.run()
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("==> pre-migration snapshot: ")]
    assert "before 2 migrations: notes.0002_note_title, notes.0003_tag_and_data" in line, line
    assert "this data migration fails half-way" in result.stderr
    # Half-way indeed: 0002 applied, 0003's table made, 0003 not recorded.
    assert db.notes_migrations() == ["0001_initial", "0002_note_title"]
    assert "title" in db.columns() and "notes_tag" in db.tables()

    meta = second.snapshot_stem.with_suffix(".json")
    described = json.loads(meta.read_text())
    assert described["release"] == "r2" and described["engine"] == kind
    assert "PASSWORD" not in meta.read_text().upper()
    snapshot = meta.parent / described["file"]
    assert oct(snapshot.stat().st_mode & 0o777) == "0o600"
    restored = subprocess.run(
        [sys.executable, "-I", str(second.check.parent / "snapshot.py"), "restore", str(meta)],
        env={**clean_env(), **({"PGHOST": postgres.socket_dir} if postgres else {})},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert restored.stdout.startswith(f"==> database restored from {described['file']} in ")
    after = (db.tables(), db.columns(), db.notes_migrations(), db.query("SELECT text FROM notes_note ORDER BY id"))
    assert after == before
    print(f"\n{kind}: snapshot {described['bytes']} bytes in {described['seconds']} s; {restored.stdout.strip()}")


def test_a_sqlite_file_that_is_no_database_any_more_is_replaced_by_the_snapshot(tmp_path: Path) -> None:
    """A corrupted header ("file is not a database"): SQLite's backup API cannot write into the file,
    so the restore puts a new file in its place (with no stale journal beside it)."""
    live = tmp_path / "db.sqlite3"
    with sqlite3.connect(live) as connection:
        connection.execute("CREATE TABLE notes_note (id INTEGER PRIMARY KEY, text TEXT)")
        connection.executemany("INSERT INTO notes_note (text) VALUES (?)", [("kept one",), ("kept two",)])
    connection.close()
    facts = tmp_path / "release.json"
    facts.write_text(json.dumps({"database": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(live)}}))
    snapshot = [sys.executable, "-I", str(ROOT / "files" / "snapshot.py")]
    taken = subprocess.run([*snapshot, "take", str(facts), str(tmp_path / "snap")], capture_output=True, text=True)
    assert taken.returncode == 0, taken.stderr
    with live.open("r+b") as file:
        file.write(b"\0garbage" * 512)
    (tmp_path / "db.sqlite3-wal").write_bytes(b"a stale journal of the corrupted file")
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(live).execute("SELECT count(*) FROM notes_note")
    restored = subprocess.run([*snapshot, "restore", str(tmp_path / "snap.json")], capture_output=True, text=True)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "the live file was not a readable database: replaced" in restored.stdout
    assert not (tmp_path / "db.sqlite3-wal").exists()
    with sqlite3.connect(live) as connection:
        assert [r[0] for r in connection.execute("SELECT text FROM notes_note ORDER BY id")] == ["kept one", "kept two"]
    assert oct(live.stat().st_mode & 0o777) == "0o600"
