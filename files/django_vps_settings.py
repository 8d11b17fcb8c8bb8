"""django-vps's production overlay: the project's own settings module, then what production on this
server needs. deploy.sh puts a copy at the top of each release; gunicorn, the release check and
management commands run with DJANGO_SETTINGS_MODULE=django_vps_settings when the overlay is on.

Every override is recorded in `changes` (printed once per deploy by the release check), and each can
be switched off by name (settingsOverlaySkip). Django reads only upper-case names from a settings
module, so `changes` and the private names here never become settings: `manage.py diffsettings
--settings django_vps_settings --default <project's module>` shows exactly the overrides.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

_RELEASE = Path(__file__).resolve().parent
_CONFIG = json.loads((_RELEASE / ".django-vps" / "overlay.json").read_text())
_project = importlib.import_module(os.environ["DJANGO_VPS_PROJECT_SETTINGS"])
for _name in dir(_project):
    if _name.isupper():
        globals()[_name] = getattr(_project, _name)

changes: list[str] = []
"""One line per override, e.g. `ALLOWED_HOSTS: added blog.com`."""
overridable = (
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_PROXY_SSL_HEADER",
    "DEBUG",
    "SECRET_KEY",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "STATIC_ROOT",
    "STATIC_URL",
    "MEDIA_ROOT",
    "MEDIA_URL",
    "LOGGING",
    "DATABASES",
)
_skip = frozenset(_CONFIG["skip"])
_domain = _CONFIG["domain"]


def _set(name: str, value: object, what: str) -> None:
    if name in _skip:
        return
    globals()[name] = value
    changes.append(f"{name}: {what}")


def _current(name: str, default: object = None) -> object:
    return globals().get(name, default)


def _inside_release(path: object) -> bool:
    """A path that a later release would not have (relative paths are the release's too)."""
    if not path:
        return False
    resolved = (_RELEASE / str(path)).resolve() if not Path(str(path)).is_absolute() else Path(str(path)).resolve()
    return resolved == _RELEASE or _RELEASE in resolved.parents


def _same_url(url: object, wanted: str) -> bool:
    """STATIC_URL "static/" is "/static/": Django adds the script prefix to relative ones."""
    return isinstance(url, str) and "/" + url.lstrip("/") == wanted


def _absolute(url: object) -> bool:
    return isinstance(url, str) and (url.startswith(("http://", "https://", "//")))


def _hosts() -> None:
    from django.http.request import validate_host

    hosts = [host for host in (_current("ALLOWED_HOSTS") or []) if host]
    if not validate_host(_domain, hosts):
        _set("ALLOWED_HOSTS", [*hosts, _domain], f"added {_domain}")
    origin = f"https://{_domain}"
    origins = list(_current("CSRF_TRUSTED_ORIGINS") or [])
    kept = [item for item in origins if item]
    if origin not in kept:
        _set("CSRF_TRUSTED_ORIGINS", [*kept, origin], f"added {origin}")
    elif kept != origins:
        _set("CSRF_TRUSTED_ORIGINS", kept, "dropped an empty entry")


def _https() -> None:
    header = ("HTTP_X_FORWARDED_PROTO", "https")
    if tuple(_current("SECURE_PROXY_SSL_HEADER") or ()) != header:
        _set("SECURE_PROXY_SSL_HEADER", header, "X-Forwarded-Proto https from nginx")
    for name in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        if _current(name) is not True:
            _set(name, True, "True (the site is HTTPS only)")
    # nginx redirects HTTP already; here it keeps Django's own links and checks (check --deploy) right.
    if _current("SECURE_SSL_REDIRECT") is not True:
        _set("SECURE_SSL_REDIRECT", True, "True (behind nginx's HTTPS)")
    if _CONFIG["hsts"] and not _current("SECURE_HSTS_SECONDS"):
        # nginx sends the header itself (and hides Django's copy): the same max-age.
        _set("SECURE_HSTS_SECONDS", 63072000, "63072000 (nginx sends Strict-Transport-Security)")


def _debug() -> None:
    if _current("DEBUG"):
        _set("DEBUG", False, "True -> False")
    key = _current("SECRET_KEY") or ""
    if not key or str(key).startswith("django-insecure-"):
        _set("SECRET_KEY", os.environ["SECRET_KEY"], "the stack's secret key instead of an insecure one")


def _files() -> None:
    static_root = _current("STATIC_ROOT")
    wanted = str(_RELEASE / ".django-vps" / "static")
    if (not static_root or _inside_release(static_root)) and str(static_root or "") != wanted:
        shown = static_root or "unset"
        _set("STATIC_ROOT", wanted, f"{shown} -> {wanted} (collected per release, served by nginx)")
    static_url, served = _current("STATIC_URL"), _CONFIG["static_url"]
    if not _absolute(static_url) and not _same_url(static_url, served):
        _set("STATIC_URL", served, f"{static_url or 'unset'} -> {served} (where nginx serves them: staticUrl)")
    media_root = _current("MEDIA_ROOT")
    shared_media = _CONFIG["media_root"]
    if (not media_root or _inside_release(media_root)) and str(media_root or "") != shared_media:
        shown = media_root or "unset"
        _set("MEDIA_ROOT", shared_media, f"{shown} -> {shared_media} (kept across releases)")
    media_url, served = _current("MEDIA_URL"), _CONFIG["media_url"]
    if not _absolute(media_url) and not _same_url(media_url, served):
        _set("MEDIA_URL", served, f"{media_url or 'unset'} -> {served} (where nginx serves them: mediaUrl)")


def _logging() -> None:
    if _current("LOGGING"):
        return
    directory = Path(os.environ["LOGS_DIR"])
    path = directory / os.environ["LOG_FILENAME"]
    level = os.environ["LOG_LEVEL"]
    if "LOGGING" in _skip:
        return
    directory.mkdir(parents=True, exist_ok=True)
    value = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "file": {
                "formatter": "verbose",
                "class": "logging.handlers.RotatingFileHandler",
                "level": level,
                "filename": str(path),
                "maxBytes": int(os.environ["LOG_SIZE"]) * 1024 * 1024,
                "backupCount": int(os.environ["LOG_ROTATE"]),
            },
        },
        "formatters": {
            "verbose": {"format": "%(levelname)s %(asctime)s %(module)s %(message)s", "datefmt": "%d/%m/%Y %H:%M:%S"}
        },
        "loggers": {"django": {"handlers": ["file"], "level": level, "propagate": True}},
    }
    _set("LOGGING", value, f"the rotating file {path} (level {level})")


def _from_url(url: str) -> dict[str, object] | None:
    """DATABASE_URL as Django's DATABASES entry: SQLite (sqlite:////path) or PostgreSQL
    (postgres:///name?host=/var/run/postgresql: the unix socket, peer authentication, no password;
    or postgres://user:password@host:port/name). None for anything else."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parsed.path[1:]) if parsed.path else ""}
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        return None
    query = parse_qs(parsed.query)
    entry: dict[str, object] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path[1:]),
        "HOST": query.get("host", [unquote(parsed.hostname or "")])[0],
    }
    if parsed.port:
        entry["PORT"] = str(parsed.port)
    if parsed.username:
        entry["USER"] = unquote(parsed.username)
    if parsed.password:
        entry["PASSWORD"] = unquote(parsed.password)
    return entry


def _databases() -> None:
    databases = _current("DATABASES") or {}
    default = dict(databases.get("default") or {})
    url = os.environ.get("DATABASE_URL", "")
    provided = _from_url(url)
    if not default.get("ENGINE"):
        if provided is not None:
            shown = url.replace(f":{urlparse(url).password}@", ":***@") if urlparse(url).password else url
            _set("DATABASES", {**databases, "default": provided}, f"default: {shown} (the project's has no ENGINE)")
        return
    if default["ENGINE"] == "django.db.backends.sqlite3" and _inside_release(default.get("NAME")):
        shared = provided["NAME"] if provided and provided["ENGINE"] == default["ENGINE"] else None
        if shared:
            why = "inside the release it would be lost on the next deploy"
            _set("DATABASES", {**databases, "default": {**default, "NAME": shared}},
                 f"default NAME {default.get('NAME')} -> {shared} ({why})")  # fmt: skip


_hosts()
_https()
_debug()
_files()
_logging()
_databases()
