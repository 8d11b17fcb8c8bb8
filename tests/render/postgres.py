"""A real PostgreSQL server for the render suite (Debian's binaries, run as the postgres user in a
temporary directory): unix socket only, peer authentication with an ident map that lets the test
run's user (root) in as the app's role, as the app user would be on the host."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


@dataclass
class Postgres:
    bin: Path
    socket_dir: str

    def as_postgres(self, *argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            cwd="/", input=input, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip

    def sql(self, database: str, query: str) -> str:
        return self.as_postgres(
            str(self.bin / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir, "-d", database,
            "-c", query,
        ).stdout  # fmt: skip


@contextlib.contextmanager
def postgres_server(role: str, database: str) -> Iterator[Postgres]:
    """A server with `database` owned by `role`, which the current user reaches by peer authentication."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed: apt-get install -y postgresql")
    top = Path(tempfile.mkdtemp(prefix="dvps-pg-", dir="/tmp"))
    os.chmod(top, 0o755)
    shutil.chown(top, "postgres", "postgres")
    data = top / "data"
    me = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    server = Postgres(bin_dir, str(top))
    try:
        initdb = (str(bin_dir / "initdb"), "-D", str(data), "--auth-local=peer", "--auth-host=reject", "-E", "UTF8")
        server.as_postgres(*initdb)
        (data / "pg_ident.conf").write_text(f"test {me} {role}\ntest postgres postgres\n")
        (data / "pg_hba.conf").write_text("local all all peer map=test\n")
        server.as_postgres(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(top / "log"), "start",
            "-o", f"-c listen_addresses='' -c unix_socket_directories={top}",
        )  # fmt: skip
        server.sql("postgres", f'CREATE ROLE "{role}" LOGIN')
        server.sql("postgres", f'CREATE DATABASE "{database}" OWNER "{role}"')
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            server.as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop")
        shutil.rmtree(top, ignore_errors=True)
