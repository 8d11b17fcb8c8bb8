"""A release directory as deploy.sh prepares one, from a fixture project, for running
files/release_check.py for real: the checkout, the default sharedPaths (media, db.sqlite3) and .env
linked into shared/, the runtime files copied in, the virtualenv (here the test run's own, which has
Django and the fixtures' packages), and the check run as deploy.sh runs it (`-P`, from the release)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from components import render
from components.settings import POSTGRES_SOCKET_DIR
from tests.render.conftest import logs_moved, make_settings

DOMAIN = "blog.test"
SHARED_PATHS = ("media", "db.sqlite3")
# Nothing of the test run's environment may reach the check: its settings come from .env alone.
_OWN_ENV_PREFIXES = ("PYTHON", "DJANGO", "VIRTUAL_ENV", "LOG", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE")


def clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(_OWN_ENV_PREFIXES)}


class Release:
    def __init__(
        self,
        tmp_path: Path,
        fixture: Path,
        *,
        env: list[tuple[str, str]] = (),
        postgres_socket: str = "",
        name: str = "r1",
        **settings: object,
    ) -> None:
        # A second Release of the same tmp_path (another name) is the next deploy: same shared/.
        self.dir = tmp_path / "releases" / name
        self.shared = tmp_path / "shared"
        self.logs = tmp_path / "logs"
        self.fixture = fixture
        shutil.copytree(fixture, self.dir, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
        self.shared.mkdir(exist_ok=True)
        self.settings = logs_moved(
            make_settings(domain=DOMAIN, djangoEnv=[f"{k}={v}" for k, v in env], **settings), self.logs
        )
        # The database the program provides lives in this test's shared/, not the host's.
        env_text = render.django_env(self.settings, "s" * 50, [])
        if self.settings.database == "postgresql":
            # The test's own server: its socket directory instead of Debian's.
            assert postgres_socket, "database postgresql needs a server's socket directory"
            env_text = env_text.replace(POSTGRES_SOCKET_DIR, postgres_socket)
        else:
            env_text = env_text.replace(self.settings.database_url, f"sqlite:///{self.shared}/db.sqlite3")
        (self.shared / ".env").write_text(env_text)
        for path in (*SHARED_PATHS, ".env"):
            target = self.dir / path
            if target.is_dir() and not target.is_symlink():
                shutil.copytree(target, self.shared / path, dirs_exist_ok=True)
                shutil.rmtree(target)
            (self.shared / "media").mkdir(exist_ok=True)
            target.unlink(missing_ok=True)
            target.symlink_to(self.shared / path)
        for name, text in render.runtime_files().items():
            (self.dir / name).write_text(text)
        (self.dir / ".venv").symlink_to(Path(sys.prefix))
        self.snapshot_stem = self.shared / "snapshots" / self.dir.name
        self.check = tmp_path / "bin" / "release_check.py"
        self.check.parent.mkdir(exist_ok=True)
        self.check.write_text(render.release_check_py())
        (self.check.parent / "snapshot.py").write_text(render.snapshot_py())

    def run(
        self,
        *,
        host: str = DOMAIN,
        path: str = "/",
        project_dir: str = ".",
        overlay: bool = True,
        skip: str = "",
        wsgi: str = "",
        fail_on_debug: bool = False,
        snapshot: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            ".venv/bin/python", "-P", str(self.check), "--project-dir", project_dir, "--domain", host,
            "--health-path", path, "--wsgi", wsgi, "--overlay", "on" if overlay else "off", "--overlay-skip", skip,
            "--fail-on-debug", "yes" if fail_on_debug else "no", "--hsts", "on", "--shared", str(self.shared),
            "--database", self.settings.database, "--snapshot", str(self.snapshot_stem) if snapshot else "",
            "--static-url", self.settings.static_url, "--media-url", self.settings.media_url,
        ]  # fmt: skip
        return subprocess.run(
            argv, cwd=self.dir, env=clean_env(), capture_output=True, text=True, timeout=180, check=False
        )

    def facts(self) -> dict[str, str]:
        return json.loads((self.dir / ".django-vps" / "release.json").read_text())

    def assets(self) -> list[str]:
        return (self.dir / ".django-vps" / "assets").read_text().split()

    def served_static(self, url: str) -> Path:
        """The file nginx serves for a /static/ URL: alias <current>/.django-vps/static/."""
        assert url.startswith("/static/"), url
        return self.dir / ".django-vps" / "static" / url.removeprefix("/static/")

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """manage.py as bin/manage runs it: files/django_vps_manage.py, from the release, with the
        release's virtualenv (the environment and settings gunicorn has)."""
        manage = self.check.parent / "django_vps_manage.py"
        manage.write_text((render.FILES / "django_vps_manage.py").read_text())
        return subprocess.run(
            [".venv/bin/python", "-P", str(manage), *args],
            cwd=self.dir, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
