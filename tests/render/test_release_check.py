"""files/release_check.py run for real, as deploy.sh runs it: with the release's virtualenv (here
the project's, which has django, decouple and gunicorn), `-P`, from the release directory, against
a copy of the fixture project and the .env render.django_env writes. A good release is migrated,
has its static files collected and answers; a Host outside ALLOWED_HOSTS, a missing page or a view
module that does not import stops the deploy (non-zero) with the status on stderr."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from components import render
from tests.render.conftest import FIXTURE_BLOG_PIP, logs_moved, make_settings

DOMAIN = "blog.test"
WSGI = "main.wsgi:application"


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class Release:
    """A release directory from the fixture, its .env rendered for DOMAIN, and the check script
    installed outside it (as ~/bin/release_check.py is on the host)."""

    def __init__(self, tmp_path: Path, *, shared: bool = False) -> None:
        self.dir = tmp_path / "release"
        self.logs = tmp_path / "logs"
        top_level = {".venv", "db.sqlite3", "static", "logs", ".env"}  # (posts/static is the app's)

        def ignore(directory: str, names: list[str]) -> set[str]:
            return {n for n in names if n == "__pycache__" or (directory == str(FIXTURE_BLOG_PIP) and n in top_level)}

        shutil.copytree(FIXTURE_BLOG_PIP, self.dir, ignore=ignore)
        self.check = tmp_path / "bin" / "release_check.py"
        self.check.parent.mkdir()
        self.check.write_text(render.release_check_py())
        s = logs_moved(make_settings(domain=DOMAIN), self.logs)
        env_text = render.django_env(s, "s" * 50, [])
        assert {"DEBUG=False", f"ALLOWED_HOSTS={DOMAIN}", f"LOGS_DIR={self.logs}"} <= set(env_text.splitlines())
        self.db = self.dir / "db.sqlite3"
        if shared:
            # As deploy.sh's first release: .env and the database are links into shared/, and the
            # database does not exist yet.
            (tmp_path / "shared").mkdir()
            (tmp_path / "shared" / ".env").write_text(env_text)
            (self.dir / ".env").symlink_to(tmp_path / "shared" / ".env")
            self.db = tmp_path / "shared" / "db.sqlite3"
            (self.dir / "db.sqlite3").symlink_to(self.db)
        else:
            (self.dir / ".env").write_text(env_text)
        (self.dir / ".venv").symlink_to(Path(sys.prefix))

    def run(self, host: str = DOMAIN, path: str = "/") -> subprocess.CompletedProcess:
        # Nothing of the test run's environment: the settings come from .env alone.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYTHON", "DJANGO_", "VIRTUAL_ENV", "LOG", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"))
        }
        return subprocess.run(
            [".venv/bin/python", "-P", str(self.check), WSGI, host, path],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared-links"])
def test_a_good_release_is_migrated_collected_and_answers(tmp_path: Path, shared: bool) -> None:
    release = Release(tmp_path, shared=shared)
    result = release.run()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "==> migrate"
    assert lines[-2:] == ["==> collectstatic", "==> release check: GET / answered 200 OK"]
    assert "Applying posts.0001_initial... OK" in result.stdout
    assert {"posts_post", "django_migrations", "django_content_type"} <= _tables(release.db)
    if shared:
        assert (release.dir / "db.sqlite3").is_symlink(), "the database link is kept, its target created"
    # collectstatic filled this release's own STATIC_ROOT.
    collected = release.dir / "static" / "posts" / "site.css"
    assert collected.read_bytes() == (FIXTURE_BLOG_PIP / "posts" / "static" / "posts" / "site.css").read_bytes()

    again = release.run(path="/health/?verbose=1")
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply." in again.stdout
    assert again.stdout.splitlines()[-1] == "==> release check: GET /health/?verbose=1 answered 200 OK"


def test_a_host_outside_allowed_hosts_fails_with_the_status(tmp_path: Path) -> None:
    result = Release(tmp_path).run(host="other.test")
    assert result.returncode != 0
    assert "release check: GET / with Host other.test answered 400" in result.stderr


def test_a_missing_health_path_fails_with_the_status(tmp_path: Path) -> None:
    result = Release(tmp_path).run(path="/no-such-page/")
    assert result.returncode != 0
    assert "answered 404" in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("def index(request):", "def index(request)", "SyntaxError"),
        ("from .models import Post", "from .models import Post, Comment", "ImportError"),
    ],
    ids=["syntax-error", "import-error"],
)
def test_a_view_module_that_does_not_import_fails(tmp_path: Path, old: str, new: str, error: str) -> None:
    """Django imports the views on the first request (call_command skips the system checks), so
    the request meets the error; as the URLconf cannot be imported, Django cannot look up its
    500 handler either and the exception leaves the WSGI application: a traceback, non-zero."""
    release = Release(tmp_path)
    views = release.dir / "posts" / "views.py"
    assert old in views.read_text()
    views.write_text(views.read_text().replace(old, new))
    result = release.run()
    assert result.returncode != 0, result.stdout
    assert "==> release check: GET / answered" not in result.stdout
    assert f"\n{error}: " in result.stderr and "posts/views.py" in result.stderr, result.stderr


def test_a_view_that_fails_on_request_fails_with_the_status(tmp_path: Path) -> None:
    """An error only a request meets (the view raises): the check answers 500 and stops."""
    release = Release(tmp_path)
    views = release.dir / "posts" / "views.py"
    old = "def index(request):\n"
    assert old in views.read_text()
    views.write_text(views.read_text().replace(old, old + '    raise RuntimeError("broken release")\n'))
    result = release.run()
    assert result.returncode != 0, result.stdout
    assert "release check: GET / with Host blog.test answered 500" in result.stderr
    assert "broken release" in (release.logs / "blog.log").read_text(), "the error reaches the project's log"
