"""Moves a SQLite site's data into its PostgreSQL database (database: postgresql), once: run by
deploy.sh as the app user, with the release going live's virtualenv, from that release (whose
check has just migrated PostgreSQL), while the app is stopped so that no write to SQLite is lost.

  python -P move_sqlite.py SQLITE_FILE
  python -P move_sqlite.py --check SQLITE_FILE   (step 2 alone, asked before the app is stopped)

In one Django process of the release, with the SQLite file as a second database:
  1. a copy of SQLITE_FILE by SQLite's online backup API (the file itself is only read), migrated
     to this release's migrations, so its tables are what the models are;
  2. a refusal when PostgreSQL already holds rows of the site's own (anything but the content types,
     permissions and sessions that a migrate or a visit makes): the move never overwrites data;
  3. `dumpdata --natural-foreign -e contenttypes -e auth.permission` from the copy (primary keys
     kept: PostgreSQL is emptied first, so they cannot clash, and URLs and generic relations that
     name them stay right; content types and permissions travel by their natural keys), `flush`
     of PostgreSQL (whose post_migrate makes the content types and permissions again), `loaddata`
     in one transaction (it resets PostgreSQL's sequences after the rows);
  4. every model's row count compared between the copy and PostgreSQL.
The copy and the dump (which hold password hashes and sessions) live in a 0700 directory beside
SQLITE_FILE and are removed. Exit status 1 with one `move failed: ...` line.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ALIAS = "django_vps_sqlite"
# Made again by migrate's (and flush's) post_migrate on PostgreSQL: not moved, matched by natural key.
NOT_MOVED = ("contenttypes", "auth.permission")
# What PostgreSQL may hold before the move without anything being lost: made by migrate or a visit.
DISPOSABLE = frozenset({"contenttypes.contenttype", "auth.permission", "sessions.session"})


class Refused(Exception):
    """The move must not happen: one line saying why."""


def _copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _counts(models: list[type], alias: str) -> dict[str, int]:
    return {model._meta.label_lower: model._base_manager.using(alias).count() for model in models}


def _enter() -> None:
    """Django of the release that is the working directory, as its processes have it."""
    release = Path.cwd().resolve()
    sys.path.insert(0, str(release))
    import django_vps_wsgi  # the release's own copy

    django_vps_wsgi.enter(release)


def _models(connection) -> list[type]:  # type: ignore[no-untyped-def]
    from django.apps import apps

    tables = set(connection.introspection.table_names())
    # With the many-to-many tables (users' groups...): dumpdata carries them inside their objects.
    return [m for m in apps.get_models(include_auto_created=True) if not m._meta.proxy and m._meta.db_table in tables]


def _refuse_unless_empty(sqlite_file: Path) -> None:
    from django.db import connections

    target = connections["default"]
    if target.vendor != "postgresql":
        raise Refused(f"the release's database is {target.vendor}, not PostgreSQL: nothing to move into")
    others = [m for m in _models(target) if m._meta.label_lower not in DISPOSABLE]
    held = {label: count for label, count in _counts(others, "default").items() if count}
    if held:
        listed = ", ".join(f"{label} {count}" for label, count in sorted(held.items()))
        raise Refused(
            f"PostgreSQL already holds rows of the site ({listed}) and {sqlite_file} is there too: nothing was"
            f" moved; if PostgreSQL's are the site's data, rename or delete {sqlite_file}"
        )


def check(sqlite_file: Path) -> None:
    """Whether the move may happen (PostgreSQL holds nothing of the site's), asked before the app stops."""
    _enter()
    import django

    django.setup()
    _refuse_unless_empty(sqlite_file)


def move(sqlite_file: Path, work: Path) -> str:
    """The move, in the release that is the working directory; returns what was moved, in one line."""
    started = time.monotonic()
    _enter()
    copy, dump = work / "db.sqlite3", work / "data.json"
    _copy(sqlite_file, copy)

    import django
    from django.conf import settings

    settings.DATABASES[ALIAS] = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(copy)}
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    _refuse_unless_empty(sqlite_file)
    call_command("migrate", database=ALIAS, interactive=False, verbosity=0)
    call_command(
        "dumpdata", *(f"--exclude={label}" for label in NOT_MOVED), natural_foreign=True,
        database=ALIAS, output=str(dump), verbosity=0,
    )  # fmt: skip
    call_command("flush", interactive=False, database="default", verbosity=0)
    call_command("loaddata", str(dump), database="default", verbosity=0)
    target = connections["default"]
    moved = [
        m for m in _models(target) if m._meta.app_label != "contenttypes" and m._meta.label_lower != "auth.permission"
    ]
    before, after = _counts(moved, ALIAS), _counts(moved, "default")
    differ = {label: (before[label], after[label]) for label in before if before[label] != after[label]}
    if differ:
        listed = ", ".join(f"{label} {a} in SQLite, {b} in PostgreSQL" for label, (a, b) in sorted(differ.items()))
        raise Refused(f"the row counts differ after the move: {listed}")
    return (
        f"moved {sum(before.values())} rows of {sum(1 for n in before.values() if n)} tables from {sqlite_file}"
        f" into PostgreSQL database {target.settings_dict.get('NAME')} in {time.monotonic() - started:.1f} s"
    )


def main(argv: list[str]) -> int:
    only_check = argv[:1] == ["--check"]
    if only_check:
        argv = argv[1:]
    if len(argv) != 1:
        print("usage: move_sqlite.py [--check] SQLITE_FILE", file=sys.stderr)
        return 2
    sqlite_file = Path(argv[0])
    work = Path(tempfile.mkdtemp(prefix=".moving-", dir=sqlite_file.parent))
    os.chmod(work, 0o700)
    try:
        if only_check:
            check(sqlite_file)
        else:
            print(f"==> {move(sqlite_file, work)}", flush=True)
    except Refused as error:
        print(f"move failed: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # Django's and the project's errors: one line, the cause
        print(f"move failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
