"""files/logging_settings.py inside a real Django settings module, with the LOG_* variables the
program writes into .env (rendered by render.django_env): errors go to the file, it rotates at
LOG_SIZE MB keeping LOG_ROTATE backups, and with DEBUG on nothing is configured."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from components import render
from tests.render.conftest import ROOT, logs_moved, make_settings

SNIPPET = ROOT / "files" / "logging_settings.py"

SETTINGS_MODULE = """\
from pathlib import Path

DEBUG = {debug}
BASE_DIR = Path({base!r})
PROJECT_NAME = "blog"
SECRET_KEY = "x" * 50
INSTALLED_APPS = []
USE_TZ = True

exec(Path({snippet!r}).read_text())
"""

RUNNER = """\
import json, logging, sys
import django

django.setup()
from django.conf import settings

log = logging.getLogger("django.request")
log.warning("quiet-marker")
log.error("loud-marker %s", "argument")
for number in range(int(sys.argv[1])):
    log.error("fill %05d %s", number, "r" * 1000)
logging.shutdown()
print(json.dumps({"logging": settings.LOGGING != {}, "has_log_path": hasattr(settings, "LOG_PATH")}))
"""


def _env_from_rendered(logs_dir: Path) -> dict[str, str]:
    """The LOG* variables exactly as the rendered .env carries them."""
    s = logs_moved(make_settings(logSize=1, logRotate=2, logLevel="ERROR"), logs_dir)
    env = {}
    for line in render.django_env(s, "x" * 50, []).splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            if key.startswith("LOG"):
                env[key] = value
    assert env == {
        "LOGS_DIR": str(logs_dir),
        "LOG_FILENAME": "blog.log",
        "LOG_SIZE": "1",
        "LOG_ROTATE": "2",
        "LOG_LEVEL": "ERROR",
    }
    return env


def _run(tmp_path: Path, *, debug: bool, fill: int = 0) -> tuple[dict, Path]:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    module = SETTINGS_MODULE.format(debug=debug, base=str(project), snippet=str(SNIPPET))
    (project / "dvps_settings.py").write_text(module)
    (project / "runner.py").write_text(RUNNER)
    logs_dir = tmp_path / "var" / "log" / "blog"  # nested and missing: the snippet creates it
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "LOG", "PYTHONPATH"))}
    env.update(_env_from_rendered(logs_dir), DJANGO_SETTINGS_MODULE="dvps_settings", PYTHONPATH=str(project))
    result = subprocess.run(
        [sys.executable, "runner.py", str(fill)], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), logs_dir


def test_errors_are_written_to_the_log_file(tmp_path: Path) -> None:
    state, logs_dir = _run(tmp_path, debug=False)
    assert state == {"logging": True, "has_log_path": True}
    lines = (logs_dir / "blog.log").read_text().splitlines()
    assert len(lines) == 1, "LOG_LEVEL=ERROR: the warning is left out"
    assert re.fullmatch(r"ERROR \d\d/\d\d/\d{4} \d\d:\d\d:\d\d runner loud-marker argument", lines[0]), lines[0]


def test_the_log_rotates_at_log_size_keeping_log_rotate_files(tmp_path: Path) -> None:
    # ~1 KB a record: 3,500 records are about 3.5 MB, so more rotations than the 2 backups kept.
    _, logs_dir = _run(tmp_path, debug=False, fill=3500)
    names = sorted(path.name for path in logs_dir.iterdir())
    assert names == ["blog.log", "blog.log.1", "blog.log.2"], "LOG_ROTATE=2 (the default would keep 3)"
    for path in logs_dir.iterdir():
        assert path.stat().st_size <= 1024 * 1024
    assert (logs_dir / "blog.log.1").stat().st_size > 1000 * 1024, "rotated when the next record would pass 1 MB"
    assert "fill 03499" in (logs_dir / "blog.log").read_text()
    assert "loud-marker" not in "".join(p.read_text() for p in logs_dir.iterdir()), "the oldest records are gone"


def test_debug_configures_nothing(tmp_path: Path) -> None:
    state, logs_dir = _run(tmp_path, debug=True)
    assert state == {"logging": False, "has_log_path": False}
    assert not logs_dir.exists()
