"""What gunicorn serves (`django_vps_wsgi:application`), and the environment of every Django process
django-vps starts. deploy.sh puts a copy at the top of each release.

A release's facts are Django's own, written by the release check into `.django-vps/release.json`
before the release went live: where manage.py is, the settings module (the production overlay or the
project's), the project's settings module, and the WSGI callable (WSGI_APPLICATION, or the
wsgiApplication setting). Each new gunicorn worker imports this module in the release `current`
points to, so a deploy's graceful reload (HUP) serves the new release with its own facts.

The variables of the release's `.env` are put in the process environment too, so projects that read
`os.environ`/`os.getenv`, python-decouple, python-dotenv or django-environ all see the same values
(decouple, dotenv and environ prefer the process environment to the file).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

RELEASE = Path(__file__).resolve().parent


def read_env_file(path: Path) -> dict[str, str]:
    """The .env as django-vps writes it and python-decouple reads it: NAME=value per line, split at
    the first '=', stripped, one pair of surrounding quotes removed, no escapes (encode.dotenv)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def prepare(
    release: Path, project_dir: str, settings_module: str, project_settings: str, environment: dict[str, str]
) -> None:
    """The environment and import path of a Django process in `release`; `environment` is what the
    release check found the project needs instead of the .env's values (release.json)."""
    env_file = release / ".env"
    if env_file.exists():
        os.environ.update(read_env_file(env_file))
    os.environ.update(environment)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    os.environ["DJANGO_VPS_PROJECT_SETTINGS"] = project_settings
    for path in (str(release), str((release / project_dir).resolve())):
        if path not in sys.path:
            sys.path.insert(0, path)


def enter(release: Path = RELEASE) -> dict[str, str]:
    """The release's facts (release.json), with the process prepared for them: what gunicorn's entry
    points, management commands and the processes' launcher all start with."""
    facts = json.loads((release / ".django-vps" / "release.json").read_text())
    prepare(
        release, facts["project_dir"], facts["settings_module"], facts["project_settings"], facts.get("environment", {})
    )
    return facts


def _load_application():  # type: ignore[no-untyped-def]
    facts = enter()
    module, _, name = facts["wsgi_application"].partition(":")
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """`application`, loaded when gunicorn asks for it (PEP 562): importing this module for its
    helpers (the release check, django_vps_asgi) loads nothing."""
    if name == "application":
        global application
        application = _load_application()
        return application
    raise AttributeError(name)
