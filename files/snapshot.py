"""Database snapshots of the app's database, and their restore (root's copy in the app's bin
directory, run as the app user; stdlib only, so it runs with the system's Python as well as with a
release's).

  take: the release check calls take() before `migrate` when there are unapplied migrations:
        SQLite's online backup API (a consistent copy while gunicorn keeps using the database), or
        `pg_dump -Fc` (one transaction's snapshot), written beside a JSON description.
  python3 snapshot.py take RELEASE_JSON STEM
        the same for backup.sh, of the database a live release's facts name (.django-vps/release.json)
  python3 snapshot.py restore FILE.json
        puts the database back as the snapshot has it: SQLite's backup API from the snapshot into
        the live file (under SQLite's own lock), or `pg_restore --clean --if-exists
        --single-transaction` (all or nothing).

No password is ever written: PostgreSQL on the host uses peer authentication; a password of a
database of the user's own comes from the PGPASSWORD of the caller's environment only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

SQLITE = "django.db.backends.sqlite3"
POSTGRESQL = ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis")


def _pg_env(database: dict[str, object]) -> dict[str, str]:
    env = dict(os.environ)
    for key, name in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER"), ("NAME", "PGDATABASE")):
        value = database.get(key) or (database.get("OPTIONS") or {}).get(key.lower())  # type: ignore[union-attr]
        if value:
            env[name] = str(value)
    if database.get("PASSWORD"):
        env["PGPASSWORD"] = str(database["PASSWORD"])
    return env


def kind(engine: str) -> str | None:
    if engine == SQLITE:
        return "sqlite"
    if engine in POSTGRESQL:
        return "postgresql"
    return None


def take(database: dict[str, object], stem: Path, **facts: object) -> dict[str, object]:
    """A snapshot of `database` (Django's DATABASES entry) at stem.sqlite3 or stem.pgdump, and its
    description at stem.json (what restore reads). Returns the description."""
    engine = str(database.get("ENGINE", ""))
    which = kind(engine)
    if which is None:
        raise ValueError(f"no snapshot for the database engine {engine}: SQLite and PostgreSQL only")
    stem.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if which == "sqlite":
        path = stem.with_suffix(".sqlite3")
        tmp = path.with_suffix(".sqlite3.tmp")
        tmp.unlink(missing_ok=True)
        source = sqlite3.connect(f"file:{database['NAME']}?mode=ro", uri=True)
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        tmp.chmod(0o600)
        tmp.replace(path)
        described: dict[str, object] = {"engine": "sqlite", "name": str(database["NAME"])}
    else:
        path = stem.with_suffix(".pgdump")
        tmp = path.with_suffix(".pgdump.tmp")
        env = _pg_env(database)
        subprocess.run(
            ["pg_dump", "-Fc", "--no-owner", "--no-acl", "-w", "-f", str(tmp)],
            env=env, check=True, cwd="/", stdin=subprocess.DEVNULL,
        )  # fmt: skip
        tmp.chmod(0o600)
        tmp.replace(path)
        described = {
            "engine": "postgresql",
            **{name[2:].lower(): env[name] for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE") if name in env},
        }
    described.update(file=path.name, bytes=path.stat().st_size, seconds=round(time.monotonic() - started, 3), **facts)
    meta = stem.with_suffix(".json")
    meta.write_text(json.dumps(described, indent=1) + "\n")
    return described


def _sqlite_backup(source_path: Path, target_path: Path) -> None:
    """SQLite's backup API from a snapshot into a database file (under SQLite's own lock)."""
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    target = sqlite3.connect(str(target_path), timeout=30)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def restore(meta_path: Path) -> dict[str, object]:
    described = json.loads(meta_path.read_text())
    path = meta_path.parent / str(described["file"])
    if not path.is_file():
        raise FileNotFoundError(f"the snapshot {path} is missing")
    started = time.monotonic()
    if described["engine"] == "sqlite":
        try:
            _sqlite_backup(path, Path(str(described["name"])))
        except sqlite3.DatabaseError:
            # The live file is no database at all (its header overwritten, say): SQLite cannot write
            # into it, so a new file takes its place, and the old one's journal goes with it.
            live = Path(str(described["name"]))
            fresh = live.with_name(live.name + ".restoring")
            fresh.unlink(missing_ok=True)
            _sqlite_backup(path, fresh)
            fresh.chmod(0o600)
            for suffix in ("-wal", "-shm", "-journal"):
                live.with_name(live.name + suffix).unlink(missing_ok=True)
            fresh.replace(live)
            described = {**described, "replaced": "the live file was not a readable database: replaced"}
    else:
        env = dict(os.environ)
        for key in ("host", "port", "user"):
            if key in described:
                env[f"PG{key.upper()}"] = str(described[key])
        env["PGDATABASE"] = str(described["database"])
        # One transaction: everything of the role's goes (tables a later migration made among it),
        # then the snapshot's objects come back; any error and nothing changed.
        psql = subprocess.Popen(
            ["psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-o", "/dev/null"],
            env=env, cwd="/", stdin=subprocess.PIPE,
        )  # fmt: skip
        assert psql.stdin is not None
        psql.stdin.write(b"DROP OWNED BY CURRENT_USER;\n")
        psql.stdin.flush()
        dump = subprocess.run(
            ["pg_restore", "--no-owner", "--no-acl", "-f", "-", str(path)],
            env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=psql.stdin, check=False,
        )  # fmt: skip
        if dump.returncode != 0:
            # A half-read snapshot must not be committed: an error makes psql roll it all back.
            psql.stdin.write(b"\nDO $$ BEGIN RAISE EXCEPTION 'pg_restore failed'; END $$;\n")
        psql.stdin.close()
        if psql.wait() != 0 or dump.returncode != 0:
            raise ValueError(f"pg_restore of {path.name} failed (pg_restore {dump.returncode}, psql {psql.returncode})")
    return {**described, "restore_seconds": round(time.monotonic() - started, 3)}


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "take":
        try:
            facts = json.loads(Path(argv[1]).read_text())
            taken = take(facts["database"], Path(argv[2]), release=Path(argv[1]).resolve().parent.parent.name)
        except (OSError, ValueError, KeyError, sqlite3.Error, subprocess.CalledProcessError) as error:
            print(f"snapshot failed: {error}", file=sys.stderr)
            return 1
        print(f"==> database: {taken['file']}, {taken['bytes']} bytes in {taken['seconds']} s")
        return 0
    if len(argv) != 2 or argv[0] != "restore":
        print("usage: snapshot.py take RELEASE_JSON STEM | restore FILE.json", file=sys.stderr)
        return 2
    try:
        done = restore(Path(argv[1]))
    except (OSError, ValueError, KeyError, sqlite3.Error, subprocess.CalledProcessError) as error:
        print(f"snapshot restore failed: {error}", file=sys.stderr)
        return 1
    if "replaced" in done:
        print(f"==> {done['replaced']}")
    print(f"==> database restored from {done['file']} in {done['restore_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
