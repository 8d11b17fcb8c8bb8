"""database postgresql, against a real PostgreSQL server (tests/render/postgres.py): the overlay's
DATABASES from the .env's DATABASE_URL (the unix socket, peer authentication, no password), a
project that reads DATABASE_URL itself, and the release check's one-line refusals before anything
touches the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.render.postgres import Postgres, postgres_server
from tests.render.release import Release
from tests.support.program import ROOT

FIXTURES = ROOT / "tests" / "e2e" / "fixtures"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server(role="blog", database="blog") as server:
        yield server


def _tables(postgres: Postgres) -> set[str]:
    return set(postgres.sql("blog", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split())


def _reset(postgres: Postgres) -> None:
    postgres.sql("blog", "DROP OWNED BY blog")


def test_the_overlay_gives_a_project_without_databases_the_hosts_postgresql(postgres: Postgres, tmp_path: Path) -> None:
    _reset(postgres)
    release = Release(tmp_path, FIXTURES / "postgres-uv", postgres_socket=postgres.socket_dir, database="postgresql")
    env = (release.shared / ".env").read_text()
    assert f"DATABASE_URL=postgres:///blog?host={postgres.socket_dir}\n" in env and "PASSWORD" not in env
    result = release.run()
    assert result.returncode == 0, result.stdout + result.stderr
    url = f"postgres:///blog?host={postgres.socket_dir}"
    wanted = f"==> settings overlay: DATABASES: default: {url} (the project's has no ENGINE)"
    assert wanted in result.stdout, result.stdout
    assert "database django.db.backends.postgresql" in result.stdout
    # Migrated into PostgreSQL, as the role blog (its tables), and nothing into a SQLite file.
    assert {"django_migrations", "notes_note"} <= _tables(postgres)
    assert postgres.sql("blog", "SELECT tableowner FROM pg_tables WHERE tablename = 'notes_note'").strip() == "blog"
    assert not (release.shared / "db.sqlite3").exists()
    # What Django's own diffsettings shows: the overlay's DATABASES, HOST the socket, no password.
    diff = release.manage("diffsettings")
    assert diff.returncode == 0, diff.stderr
    line = next(line for line in diff.stdout.splitlines() if line.startswith("DATABASES = "))
    assert "'ENGINE': 'django.db.backends.postgresql'" in line and f"'HOST': '{postgres.socket_dir}'" in line
    assert "'NAME': 'blog'" in line and "PASSWORD': ''" in line  # Django's default: empty


def test_a_project_reading_database_url_with_dj_database_url_uses_it_as_is(postgres: Postgres, tmp_path: Path) -> None:
    _reset(postgres)
    release = Release(tmp_path, FIXTURES / "poetry-getenv", postgres_socket=postgres.socket_dir, database="postgresql")
    result = release.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DATABASES" not in "".join(line for line in result.stdout.splitlines() if "settings overlay" in line)
    assert {"django_migrations", "notes_note"} <= _tables(postgres)


def test_a_project_whose_databases_is_sqlite_is_refused_in_one_line_before_migrate(
    postgres: Postgres, tmp_path: Path
) -> None:
    _reset(postgres)
    release = Release(tmp_path, FIXTURES / "hardcoded", postgres_socket=postgres.socket_dir, database="postgresql")
    result = release.run()
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("release check: ")]
    assert line.startswith(
        "release check: database is postgresql but DATABASES['default'] in mysite/settings.py uses "
        "django.db.backends.sqlite3: read DATABASE_URL (postgres:///blog?host="
    ), line
    assert "==> migrate" not in result.stdout and _tables(postgres) == set()


def test_a_project_without_a_postgresql_driver_is_refused_in_one_line_before_migrate(
    postgres: Postgres, tmp_path: Path
) -> None:
    _reset(postgres)
    release = Release(tmp_path, FIXTURES / "postgres-uv", postgres_socket=postgres.socket_dir, database="postgresql")
    # As a virtualenv without them: the release's top directory comes first on sys.path.
    for name in ("psycopg", "psycopg2"):
        (release.dir / f"{name}.py").write_text(f'raise ImportError("No module named {name}")\n')
    result = release.run()
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("release check: ")]
    assert line == (
        "release check: database is postgresql but the project's dependencies have no PostgreSQL driver (neither "
        "psycopg nor psycopg2 imports): add psycopg[binary] (or psycopg2-binary) to them"
    )
    assert "==> migrate" not in result.stdout and _tables(postgres) == set()
