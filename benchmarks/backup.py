"""Backup benchmark: backup.sh now / restore / offsite-restore beside the plain floors, in one run,
on the same lab server (Debian 12, existing-host mode, deployed by the real Pulumi CLI).

For each database (postgresql, then sqlite): the postgres-uv fixture with 100k rows in notes_note and
200 MB of media (incompressible random bytes, photo-sized files: a seeded log-normal spread around
1.5 MB, 100 KB to 8 MB), off-site backups to an SFTP target on a second lab host (a Storage Box's
role, as tests/e2e/test_offsite.py sets it up). Then, side by side:
  - floors: `pg_dump -Fc` (or SQLite's online backup API, which `.backup` is) and `tar -cf` of
    MEDIA_ROOT; `pg_restore --clean --single-transaction` (or the backup API back) and `tar -xf`;
    `scp` of the dump and the tar to the SFTP host and back (no encryption, no deduplication);
  - backup.sh now, twice (the second deduplicated against the first off-site), split by the time
    its own lines come out into the local part (database, media) and the off-site part (restic);
  - backup.sh restore of the newest backup (app stopped, database and media back, release check,
    app started and answering) and backup.sh offsite-restore (restic restore, then the same).
Page cache warm for all (the data were just written): the ratios compare like with like.

Run as root:  uv run python -m benchmarks.backup [--databases postgresql,sqlite] [--rows N] [--media-mb N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pulumi import automation as auto

from tests.e2e.cli import CliStack
from tests.e2e.site import FIXTURES
from tests.e2e.testhost import Lab, Server

FIXTURE = "postgres-uv"
OWNER = "example"
GITHUB_TOKEN = "ghp_" + "benchb" * 6
SFTP_IP = "198.51.100.21"
SERVERS = {"postgresql": ("benchpg", "198.51.100.22"), "sqlite": ("benchlite", "198.51.100.23")}


@dataclass
class Figures:
    database: str
    rows: int
    files: int
    media_bytes: int
    dump_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def media_sizes(total: int, seed: int = 13) -> list[int]:
    """Photo-like file sizes summing to `total` bytes: log-normal around 1.5 MB, 100 KB to 8 MB."""
    rng, sizes = random.Random(seed), []
    while sum(sizes) < total:
        sizes.append(int(min(8e6, max(1e5, rng.lognormvariate(14.2, 0.7)))))
    sizes[-1] -= sum(sizes) - total
    return [size for size in sizes if size > 0]


class Bench:
    def __init__(self, server: Server, app: str) -> None:
        self.server, self.app = server, app
        self.shared = f"/home/{app}/{app}/shared"
        self.work = f"/home/{app}/bench"

    def timed(self, command: str) -> tuple[float, str]:
        """Seconds `command` takes as the app user (measured on the server), and its output with
        each line stamped by the server's clock, in seconds since the command started."""
        inner = f"sudo -u {self.app} -H bash -c {shlex.quote(command)}"
        script = (
            "set -o pipefail; s=$(date +%s%N); "
            f"( cd / && {inner} ) 2>&1 | "
            'while IFS= read -r line; do printf \'%s %s\\n\' "$(date +%s%N)" "$line"; done; '
            'rc=$?; e=$(date +%s%N); echo "$s START"; echo "$e END"; exit $rc'
        )
        result = self.server.run(f"bash -c {shlex.quote(script)}", timeout=1800)
        if result.returncode != 0:
            raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        *lines, first, last = result.stdout.splitlines()
        start, end = int(first.split()[0]), int(last.split()[0])
        stamped = []
        for line in lines:
            stamp, _, text = line.partition(" ")
            stamped.append(f"{(int(stamp) - start) / 1e9:.3f} {text}")
        return (end - start) / 1e9, "\n".join(stamped)


def at(output: str, prefix: str) -> float:
    """When (seconds since the command started) the first line starting with `prefix` came out."""
    for line in output.splitlines():
        stamp, _, text = line.partition(" ")
        if text.startswith(prefix):
            return float(stamp)
    raise RuntimeError(f"no line {prefix!r} in:\n{output}")


def seconds_in(output: str, marker: str) -> float:
    """The `in X s` figure of the line holding `marker`."""
    line = next(line for line in output.splitlines() if marker in line)
    return float(line.rsplit(" in ", 1)[1].split()[0])


def deploy(lab: Lab, database: str, sftp: Server, work: Path, github_url: str, clone: dict[str, str]) -> Server:
    name, ip = SERVERS[database]
    server = lab.server(name, ip)
    login = server.add_sudo_login()
    domain = f"{name}.bench.test"
    lab.set_a(domain, ip)
    stack = CliStack(work / name)
    stack.configure(
        {
            "domain": domain,
            "repository": f"{OWNER}/{FIXTURE}",
            "appName": name,
            **clone,
            "letsencryptEmail": "admin@bench.test",
            "acmeServer": lab.acme_directory,
            "manageDns": "false",
            "existingHost": ip,
            "existingHostUser": "admin",
            "existingHostKey": server.host_public_key(),
            "existingHostPrivateKey": login.private_openssh,
            "deployWorkflow": "false",
            "database": database,
            "offsiteSftpHost": SFTP_IP,
            "offsiteSftpUser": "u1",
            "offsiteSftpHostKey": sftp.host_public_key(),
            "github:token": GITHUB_TOKEN,
            "github:baseUrl": github_url,
        }
    )
    # The SFTP server does not know the stack's key yet: the first up stops at the off-site step.
    with contextlib.suppress(auto.CommandError):
        stack.up(echo=None)
    (key,) = [r for r in stack.export()["deployment"]["resources"] if r["urn"].endswith("-offsite-key")]
    public = key["outputs"]["publicKeyOpenssh"].strip()
    sftp.run(f"echo {shlex.quote(public)} >> /home/u1/.ssh/authorized_keys", check=True)
    started = time.monotonic()
    stack.up(echo=None)
    print(f"  {database}: deployed ({time.monotonic() - started:.0f} s for the second up)", flush=True)
    return server


def fill(bench: Bench, database: str, rows: int, sizes: list[int]) -> None:
    text = "'note ' || g || ' ' || md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)"
    if database == "postgresql":
        sql = f"INSERT INTO notes_note (text) SELECT {text} FROM generate_series(1, {rows}) g"
        bench.timed(f"psql -X -q -w -d {bench.app} -v ON_ERROR_STOP=1 -c {shlex.quote(sql)}")
    else:
        python = (
            "import hashlib, sqlite3, sys\n"
            "md5 = lambda n: hashlib.md5(str(n).encode()).hexdigest()\n"
            "c = sqlite3.connect(sys.argv[1])\n"
            "c.executemany('INSERT INTO notes_note (text) VALUES (?)',"
            f" ((f'note {{g}} ' + md5(g) + md5(g * 7) + md5(g * 13),) for g in range(1, {rows} + 1)))\n"
            "c.commit()\n"
        )
        bench.timed(f"python3 -c {shlex.quote(python)} {bench.shared}/db.sqlite3")
    media = f"{bench.shared}/media/photos"
    lines = [f"install -d {media}"]
    lines += [f"head -c {size} /dev/urandom > {media}/photo-{i:03d}.jpg" for i, size in enumerate(sizes)]
    bench.timed(" && ".join(lines))
    bench.timed(f"install -d -m 0700 {bench.work}")


def measure(bench: Bench, database: str, figures: Figures) -> None:
    s, w, app = figures.seconds, bench.work, bench.app
    media = f"{bench.shared}/media"
    ssh = (
        f"-i /home/{app}/.config/django-vps/offsite_key -o IdentitiesOnly=yes -o BatchMode=yes"
        f" -o UserKnownHostsFile=/home/{app}/.config/django-vps/offsite_known_hosts"
    )
    # Floors: the database and the media, directly.
    if database == "postgresql":
        dump = f"{w}/floor.pgdump"
        s["floor dump"], _ = bench.timed(f"pg_dump -Fc --no-owner --no-acl -w -d {app} -f {dump}")
    else:
        dump = f"{w}/floor.sqlite3"
        backup_api = "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))"
        s["floor dump"], _ = bench.timed(f"python3 -c {shlex.quote(backup_api)} {bench.shared}/db.sqlite3 {dump}")
    figures.dump_bytes = int(bench.server.run(f"stat -c %s {dump}", check=True).stdout)
    s["floor tar"], _ = bench.timed(f"tar -C {media} -cf {w}/floor-media.tar .")
    s["floor scp up"], _ = bench.timed(
        f"ssh {ssh} u1@{SFTP_IP} 'mkdir -p floor-{app}' && "
        f"scp -q {ssh} {dump} {w}/floor-media.tar u1@{SFTP_IP}:floor-{app}/"
    )

    # backup.sh now, twice: the second's off-site copy is deduplicated against the first.
    for run in ("1st", "2nd"):
        total, out = bench.timed(f"/opt/django-vps/{app}/bin/backup.sh now")
        # Its own lines say when the local part ended (media kept) and when the off-site one did.
        offsite = at(out, "==> off-site: ") - at(out, "==> media: ")
        s[f"now {run}"], s[f"now {run} local"], s[f"now {run} off-site"] = total, total - offsite, offsite
        s[f"now {run} dump"] = seconds_in(out, "==> database: ")

    # Restores: the floors first (into the live database, the app idle), then backup.sh's.
    if database == "postgresql":
        restore = f"pg_restore --clean --if-exists --no-owner --no-acl --single-transaction -w -d {app} {dump}"
    else:
        back = "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))"
        restore = f"python3 -c {shlex.quote(back)} {dump} {bench.shared}/db.sqlite3"
    s["floor restore db"], _ = bench.timed(restore)
    s["floor untar"], _ = bench.timed(
        f"rm -rf {w}/untar && mkdir {w}/untar && tar -C {w}/untar -xf {w}/floor-media.tar"
    )
    s["floor scp down"], _ = bench.timed(
        f"rm -rf {w}/down && mkdir {w}/down && scp -q {ssh} 'u1@{SFTP_IP}:floor-{app}/*' {w}/down/"
    )
    s["restore"], out = bench.timed(f"/opt/django-vps/{app}/bin/backup.sh restore")
    s["restore db"] = seconds_in(out, "database restored from")
    s["offsite-restore"], _ = bench.timed(f"/opt/django-vps/{app}/bin/backup.sh offsite-restore")
    rows = bench.server.run(
        f"curl -s --unix-socket /home/{app}/run/{app}.sock -H 'Host: {app}.bench.test' "
        f"-H 'X-Forwarded-Proto: https' http://{app}.bench.test/rows/",
        check=True,
    ).stdout
    assert rows == f"rows {figures.rows}", rows


def report(figures: Figures) -> None:
    s = figures.seconds
    floor_backup = s["floor dump"] + s["floor tar"]
    floor_restore = s["floor restore db"] + s["floor untar"]
    dump_floor = "pg_dump -Fc" if figures.database == "postgresql" else "SQLite backup API"
    restore_floor = "pg_restore -1" if figures.database == "postgresql" else "SQLite backup API"
    print(
        f"\nbackup benchmark, {figures.database}: {figures.rows} rows ({figures.dump_bytes / 1e6:.1f} MB dump),"
        f" {figures.media_bytes / 1e6:.0f} MB media in {figures.files} files (random bytes), off-site restic over SFTP"
    )
    print(f"  {'':44} {'seconds':>8}   {'floor':34} {'seconds':>8} {'ratio':>6}")
    rows = [
        ("backup.sh now, 1st: local (database + media)", s["now 1st local"], f"{dump_floor} + tar -cf", floor_backup),
        ("  of which the database", s["now 1st dump"], dump_floor, s["floor dump"]),
        (
            "backup.sh now, 1st: off-site (restic, all new)",
            s["now 1st off-site"],
            "scp of dump + tar",
            s["floor scp up"],
        ),
        ("backup.sh now, 1st: total", s["now 1st"], "the three above", floor_backup + s["floor scp up"]),
        ("backup.sh now, 2nd: local", s["now 2nd local"], f"{dump_floor} + tar -cf", floor_backup),
        ("backup.sh now, 2nd: off-site (deduplicated)", s["now 2nd off-site"], "scp of dump + tar", s["floor scp up"]),
        ("backup.sh now, 2nd: total", s["now 2nd"], "the three above", floor_backup + s["floor scp up"]),
        (
            "backup.sh restore (stop, db, media, check, start)",
            s["restore"],
            f"{restore_floor} + tar -xf",
            floor_restore,
        ),
        ("  of which the database", s["restore db"], restore_floor, s["floor restore db"]),
        (
            "backup.sh offsite-restore",
            s["offsite-restore"],
            "scp back + the two above",
            s["floor scp down"] + floor_restore,
        ),
    ]
    for what, seconds, floor, floor_seconds in rows:
        print(f"  {what:44} {seconds:8.2f}   {floor:34} {floor_seconds:8.2f} {seconds / floor_seconds:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--media-mb", type=int, default=200)
    args = parser.parse_args()
    databases = args.databases.split(",")
    sizes = media_sizes(args.media_mb * 1_000_000)
    results = []
    with Lab() as lab, tempfile.TemporaryDirectory() as work:
        forge = lab.forge()
        forge.create_repo(FIXTURE, FIXTURES / FIXTURE)
        clone = {"cloneUrl": forge.url(FIXTURE), "cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"])}
        sftp = lab.server("benchsftp", SFTP_IP)
        sftp.run("useradd --create-home --shell /bin/sh u1 && install -d -m 700 -o u1 -g u1 /home/u1/.ssh", check=True)
        sftp.run("touch /home/u1/.ssh/authorized_keys && chown u1:u1 /home/u1/.ssh/authorized_keys", check=True)
        github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=(FIXTURE,))
        try:
            for database in databases:
                server = deploy(lab, database, sftp, Path(work), github.url, clone)
                bench = Bench(server, SERVERS[database][0])
                figures = Figures(database, args.rows, len(sizes), sum(sizes))
                fill(bench, database, args.rows, sizes)
                measure(bench, database, figures)
                report(figures)
                results.append(figures)
                lab.remove(SERVERS[database][0])
        finally:
            github.stop()
    print("\nfigures (JSON):", json.dumps([f.__dict__ for f in results]))


if __name__ == "__main__":
    main()
