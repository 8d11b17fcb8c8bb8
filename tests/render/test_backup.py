"""backup.sh now, list and restore run for real on a SQLite release laid out as on the host (the
release check's facts, shared/ with the database and media, MEDIA_ROOT the release's link into
shared/): the backup holds a consistent copy of the database and the media, made while a writer
holds the database open; restore stops the app and starts it again through exactly the sudo rule's
supervisorctl commands (stood in for here; the real ones on the lab server: tests/e2e), puts rows
and upload back where nginx serves them and runs the release check."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path

from components import render
from tests.render.conftest import relocate, require_tool
from tests.render.release import Release, clean_env
from tests.support.program import ROOT

FIXTURE = ROOT / "tests" / "e2e" / "fixtures" / "postgres-uv"


def test_backup_now_keeps_the_database_and_media_and_its_snapshot_restores(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURE, backupKeepDaily="2")
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
    # backupKeepDaily 2: the newest of each day (the three were made within seconds: one day, unless
    # the run crossed midnight UTC), newest first.
    newest_of_each_day = sorted({i.split("-")[0]: i for i in sorted(ids)}.values(), reverse=True)[:2]
    assert [line.split()[0] for line in listing.stdout.splitlines()] == newest_of_each_day
    assert (
        f"==> kept {len(newest_of_each_day)} backups (the newest of each of the last 2 days and 4 ISO weeks"
    ) in done.stdout, done.stdout
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


# Chosen backup times around a new year (2026 has 53 ISO weeks: 1 January 2027 is in 2026-W53), newest
# first, with what backupKeepDaily 3 and backupKeepWeekly 2 keep: the newest of each of the three
# newest days, and of each of the two newest ISO weeks.
PRUNE_CASE = [
    ("20270102-030000", True),  # Sat, 2026-W53: day 1 (and week 1)
    ("20270101-120000", True),  # Fri, 2026-W53: day 2
    ("20270101-030000", False),  # Fri: not the newest of its day
    ("20261230-030000", True),  # Wed, 2026-W53: day 3
    ("20261228-030000", False),  # Mon, 2026-W53: day 4, and its week already has one
    ("20261227-030000", True),  # Sun, 2026-W52: week 2
    ("20261221-030000", False),  # Mon, 2026-W52: its week already has one
    ("20261220-030000", False),  # Sun, 2026-W51: week 3
]


def _prune(tmp_path: Path, daily: str, weekly: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    release = Release(tmp_path, FIXTURE, backupKeepDaily=daily, backupKeepWeekly=weekly)
    s = release.settings
    backups = release.shared / "backups"
    for backup_id, _ in PRUNE_CASE:
        (backups / backup_id).mkdir(parents=True)
        (backups / backup_id / "db.json").write_text("{}")
    # Not backups: left alone whatever the retention says.
    for other in ("20261201-030000.partial", "notes", "2026120-0300001"):
        (backups / other).mkdir()
    script = relocate(render.backup_sh(s), {s.shared_dir: str(release.shared)})
    backup = tmp_path / "backup.sh"
    backup.write_text(script)
    done = subprocess.run(["bash", str(backup), "prune"], env=clean_env(), capture_output=True, text=True, timeout=60)
    return done, {path.name for path in backups.iterdir()}


def test_prune_keeps_the_newest_of_each_of_the_last_days_and_iso_weeks(tmp_path: Path) -> None:
    # The case's weeks, as the ISO calendar has them (the script asks date(1) for the same).
    import datetime as dt

    weeks = [dt.datetime.strptime(i, "%Y%m%d-%H%M%S").isocalendar()[:2] for i, _ in PRUNE_CASE]
    assert weeks[0] == (2026, 53) and weeks[5] == (2026, 52) and weeks[7] == (2026, 51)
    done, left = _prune(tmp_path, "3", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    kept = {i for i, keep in PRUNE_CASE if keep}
    assert left == kept | {"20261201-030000.partial", "notes", "2026120-0300001"}
    removed = [i for i, keep in PRUNE_CASE if not keep]
    assert (
        f"==> kept 4 backups (the newest of each of the last 3 days and 2 ISO weeks that have backups), "
        f"removed 4: {' '.join(removed)}"
    ) in done.stdout, done.stdout


def test_prune_without_weeks_keeps_the_newest_days_only(tmp_path: Path) -> None:
    done, left = _prune(tmp_path, "2", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert left & {i for i, _ in PRUNE_CASE} == {"20270102-030000", "20270101-120000"}
    assert "==> kept 2 backups" in done.stdout and "removed 6: " in done.stdout, done.stdout


def test_prune_with_more_days_than_backups_keeps_them_all(tmp_path: Path) -> None:
    done, left = _prune(tmp_path, "30", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    # One a day kept; the older of the two on 1 January goes.
    assert {i for i, _ in PRUNE_CASE} - left == {"20270101-030000"}
    assert "==> kept 7 backups" in done.stdout and "removed 1: 20270101-030000" in done.stdout, done.stdout


def test_backup_goes_to_s3_storage_and_offsite_restore_brings_it_back(tmp_path: Path) -> None:
    """backup.sh with offsiteS3Endpoint against S3 stand-in storage on loopback (moto, every request's
    SigV4 signature checked, HTTPS with a CA of this test that restic trusts through SSL_CERT_FILE):
    the keys go from the app user's file to restic, the snapshot is readable (restic check) and
    holds no row in clear, and a wrong secret key is refused by the storage."""
    require_tool("restic")
    from tests.e2e.testhost.certs import make_wfe_certs
    from tests.e2e.testhost.s3 import S3Storage

    ca, cert, key = make_wfe_certs(tmp_path / "tls", "127.0.0.1")
    storage = S3Storage(cert, key, host="127.0.0.1").start()
    try:
        release = Release(
            tmp_path,
            FIXTURE,
            offsiteS3Endpoint=storage.endpoint,
            offsiteS3Bucket="blog-backups",
            offsiteS3AccessKeyId=storage.access_key_id,
            offsiteS3SecretAccessKey=storage.secret_access_key,
        )
        assert release.run().returncode == 0
        (tmp_path / "current").symlink_to("releases/r1")
        with sqlite3.connect(release.shared / "db.sqlite3") as connection:
            connection.execute("INSERT INTO notes_note (text) VALUES ('a row only the backups remember')")
        s = release.settings
        config = tmp_path / "config"
        config.mkdir(mode=0o700)
        (config / "restic-password").write_text("p" * 48 + "\n")
        credentials = config / "s3-credentials"
        credentials.write_text(f"{storage.access_key_id}\n{storage.secret_access_key}\n")
        script = relocate(
            render.backup_sh(s),
            {
                s.shared_dir: str(release.shared),
                s.current_dir: str(tmp_path / "current"),
                s.bin_dir: str(release.check.parent),
                s.offsite_dir: str(config),
            },
        )
        backup = tmp_path / "backup.sh"
        backup.write_text(script)
        repository = f"s3:{storage.endpoint}/blog-backups/django-vps/blog"
        env = {**clean_env(), "SSL_CERT_FILE": str(ca), "XDG_CACHE_HOME": str(tmp_path / "cache")}
        # The bucket and the repository, as the off-site step makes them (restic makes the bucket).
        init = subprocess.run(
            ["restic", "init"],
            env={**env, "RESTIC_REPOSITORY": repository, "RESTIC_PASSWORD_FILE": str(config / "restic-password"),
                 "AWS_ACCESS_KEY_ID": storage.access_key_id, "AWS_SECRET_ACCESS_KEY": storage.secret_access_key},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert init.returncode == 0, init.stderr

        def run(*args: str, environment: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["bash", str(backup), *args], env=environment, capture_output=True, text=True,
                                  timeout=120)  # fmt: skip

        done = run("now")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "==> off-site: backup " in done.stdout and repository in done.stdout, done.stdout
        check = run("offsite-check")
        assert check.returncode == 0 and "no errors were found" in check.stdout, check.stdout + check.stderr
        listed = run("offsite-list")
        assert listed.returncode == 0 and "django-vps" in listed.stdout, listed.stdout + listed.stderr
        objects = storage.objects("blog-backups")
        assert any(name.startswith("django-vps/blog/data/") for name in objects), sorted(objects)
        assert not any(b"a row only the backups remember" in content for content in objects.values())
        # The keys were only in restic's environment: not in the script, not on a command line.
        assert storage.secret_access_key not in script and storage.access_key_id not in script
        # A wrong secret key: the storage refuses the signature; the local backup stays, the run fails.
        credentials.write_text(f"{storage.access_key_id}\n{'x' * 40}\n")
        refused = run("now")
        assert refused.returncode == 1 and "did not reach " + repository in refused.stderr, refused.stderr
        credentials.write_text(f"{storage.access_key_id}\n{storage.secret_access_key}\n")
        # offsite-restore: fetch the snapshot into backups/ and restore it (the app stood in for).
        shutil.rmtree(release.shared / "backups")
        with sqlite3.connect(release.shared / "db.sqlite3") as connection:
            connection.execute("DELETE FROM notes_note")
        stubs = tmp_path / "stubs"
        stubs.mkdir()
        (stubs / "sudo").write_text("#!/bin/sh\nexit 0\n")
        (stubs / "curl").write_text("#!/bin/sh\necho 200\n")
        for stub in stubs.iterdir():
            stub.chmod(0o755)
        restored = run("offsite-restore", environment={**env, "PATH": f"{stubs}:{env['PATH']}"})
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "==> fetched off-site backup " in restored.stdout, restored.stdout
        with sqlite3.connect(release.shared / "db.sqlite3") as connection:
            assert [row[0] for row in connection.execute("SELECT text FROM notes_note")] == [
                "a row only the backups remember"
            ]
    finally:
        storage.stop()
