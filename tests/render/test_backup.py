"""backup.sh now, list and restore run for real on a SQLite release laid out as on the host (the
release check's facts, shared/ with the database and media, MEDIA_ROOT the release's link into
shared/): the backup holds a consistent copy of the database and the media, made while a writer
holds the database open; restore stops the app and starts it again through exactly the sudo rule's
supervisorctl commands (stood in for here; the real ones on the lab server: tests/e2e), puts rows
and upload back where nginx serves them and runs the release check."""

from __future__ import annotations

import sqlite3
import subprocess
import tarfile
from pathlib import Path

from components import render
from tests.render.conftest import relocate
from tests.render.release import Release, clean_env
from tests.support.program import ROOT

FIXTURE = ROOT / "tests" / "e2e" / "fixtures" / "postgres-uv"


def test_backup_now_keeps_the_database_and_media_and_its_snapshot_restores(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURE, backupKeep="2")
    result = release.run()
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "current").symlink_to("releases/r1")
    db = release.shared / "db.sqlite3"
    with sqlite3.connect(db) as connection:
        connection.executemany("INSERT INTO notes_note (text) VALUES (?)", [("one",), ("two",)])
    (release.shared / "media" / "uploads").mkdir(parents=True)
    (release.shared / "media" / "uploads" / "kept.txt").write_text("kept\n")
    s = release.settings
    script = relocate(
        render.backup_sh(s),
        {
            s.shared_dir: str(release.shared),
            s.current_dir: str(tmp_path / "current"),
            s.bin_dir: str(release.check.parent),
        },
    )
    backup = tmp_path / "backup.sh"
    backup.write_text(script)
    # A writer holds the database open (as gunicorn would) while the backups run.
    writer = sqlite3.connect(db)
    writer.execute("INSERT INTO notes_note (text) VALUES ('uncommitted')")
    ids = []
    for _ in range(3):
        done = subprocess.run(["bash", str(backup), "now"], env=clean_env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "==> backup " in done.stdout and "==> media: " in done.stdout, done.stdout
        ids.append(done.stdout.split("==> backup ", 1)[1].split()[0])
        subprocess.run(["sleep", "1.1"], check=True)
    writer.rollback()
    writer.close()
    listing = subprocess.run(["bash", str(backup), "list"], env=clean_env(), capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    # backupKeep 2: the newest two, newest first.
    assert [line.split()[0] for line in listing.stdout.splitlines()] == ids[:0:-1]
    newest = release.shared / "backups" / ids[-1]
    assert oct(newest.stat().st_mode & 0o777) == "0o700"
    with tarfile.open(newest / "media.tar") as media:
        assert "./uploads/kept.txt" in media.getnames()
    # backup.sh restore, with supervisorctl (through sudo) and the socket's answer stood in for.
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    calls = tmp_path / "calls"
    (stubs / "sudo").write_text(f'#!/bin/sh\necho "$*" >>{calls}\n')
    (stubs / "curl").write_text("#!/bin/sh\necho 200\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM notes_note")
    (release.shared / "media" / "uploads" / "kept.txt").unlink()
    env = {**clean_env(), "PATH": f"{stubs}:{clean_env()['PATH']}"}
    whole = subprocess.run(["bash", str(backup), "restore"], env=env, capture_output=True, text=True, timeout=120)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert f"restored backup {ids[-1]} in " in whole.stdout and "==> media restored: " in whole.stdout, whole.stdout
    assert (release.shared / "media" / "uploads" / "kept.txt").read_text() == "kept\n"
    # MEDIA_ROOT is the release's link into shared/ (sharedPaths): still the link, to the restored media.
    assert (release.dir / "media").is_symlink() and (release.dir / "media").resolve() == release.shared / "media"
    with sqlite3.connect(db) as connection:
        assert [row[0] for row in connection.execute("SELECT text FROM notes_note ORDER BY id")] == ["one", "two"]
    # Exactly what the sudo rule allows: supervisorctl with Debian's configuration, stop and start.
    supervisorctl = calls.read_text().splitlines()
    conf = "-n /usr/bin/supervisorctl -c /etc/supervisor/supervisord.conf"
    assert supervisorctl == [f"{conf} stop blog", f"{conf} start blog"], supervisorctl
    assert all(" ".join(argv).startswith("/usr/bin") for argv in render.sudo_commands(release.settings))
    assert [f"-n {' '.join(argv)}" for argv in render.sudo_commands(release.settings)][-2:] == [
        f"{conf} start blog",
        f"{conf} stop blog",
    ]

    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM notes_note")
    restored = subprocess.run(
        ["python3", "-I", str(release.check.parent / "snapshot.py"), "restore", str(newest / "db.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    with sqlite3.connect(db) as connection:
        # The committed rows, not the uncommitted one.
        assert [row[0] for row in connection.execute("SELECT text FROM notes_note ORDER BY id")] == ["one", "two"]
