"""Prepares a new release and proves it can serve, before it goes live (run by deploy.sh as the app
user, with the release's own virtualenv, from the release's top directory).

It asks Django rather than assuming: the project's settings are imported (through the production
overlay when it is on) and what Django says decides what nginx serves and what gunicorn runs.
In order, all in one Python process:
  1. the settings import, each problem one line naming the file or variable to change;
  2. the diagnostics (ALLOWED_HOSTS, DEBUG, SECRET_KEY, STATIC_ROOT/MEDIA_ROOT and their URLs,
     DATABASES) and `manage.py check --deploy`, whose warnings are printed: all before the database
     is touched, so a release that cannot start never migrates it;
  3. a pre-migration snapshot of the database when there are unapplied migrations (snapshot.py),
     `migrate --no-input`, `collectstatic --no-input` (into this release's STATIC_ROOT);
  4. a request to the WSGI application as gunicorn would pass it from nginx (Host = the domain,
     X-Forwarded-Proto https): 2xx or 3xx passes;
  5. the release's facts in .django-vps/release.json (read by django_vps_wsgi.py) and the assets
     deploy.sh fetches through nginx once the release is live (.django-vps/assets).

Exit status 1 with `release check: ...` lines on stderr when the release must not go live.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import os
import re
import sys
import traceback
from pathlib import Path

RELEASE = Path.cwd().resolve()
STATE = RELEASE / ".django-vps"
# Collected files whose names are plain enough to put in a URL and a shell line as they are.
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._/-]+$")
# How the usual settings readers say that a variable is missing.
_MISSING_ENV = (
    re.compile(r"^'([A-Z][A-Z0-9_]*)'$"),  # os.environ["X"]: KeyError('X')
    re.compile(r"^([A-Z][A-Z0-9_]*) not found\. Declare it as envvar"),  # python-decouple
    re.compile(r"^Set the ([A-Z][A-Z0-9_]*) environment variable"),  # django-environ
)


_INT_OF_EMPTY = "invalid literal for int() with base 10: ''"


class Refused(Exception):
    """The release must not go live: one line saying what to change."""


def say(line: str) -> None:
    print(f"==> {line}", flush=True)


def warn(line: str) -> None:
    print(f"warning: {line}", flush=True)


def manage_py_settings(project_dir: Path) -> str | None:
    """The settings module manage.py sets by default (`os.environ.setdefault(...)`)."""
    text = (project_dir / "manage.py").read_text(errors="replace")
    found = re.search(r"""setdefault\(\s*["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""", text)
    return found.group(1) if found else None


def settings_file(module: str) -> str:
    """Where a settings module's source is, relative to the release (for the messages)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return module
    try:
        return str(Path(spec.origin).resolve().relative_to(RELEASE))
    except ValueError:
        return spec.origin


def import_failure(module: str, error: BaseException, failed: str = "failed to import") -> Refused:
    """One line for a settings module that does not import: the missing variable when it is one of
    the usual readers' complaints, else the traceback's last lines."""
    message = str(error).strip()
    for pattern in _MISSING_ENV:
        found = pattern.match(message)
        if found:
            name = found.group(1)
            return Refused(
                f"the settings ({module}) read the environment variable {name}, which is not set: add it with "
                f"djangoEnv (pulumi config set --path 'djangoEnv[0]' {name}=...) or djangoSecretEnv for a secret"
            )
    lines = traceback.format_exception(error)
    tail = " | ".join(line.strip().replace("\n", " ") for line in lines[-3:])
    return Refused(f"the settings module {module} {failed}: {tail}")


def debug_as_number(module: str, error: BaseException) -> dict[str, str]:
    """{"DEBUG": "0"} when the settings fail only because they convert DEBUG with int()
    (`int(os.environ.get("DEBUG", 0))`): django-vps writes it empty, which is off for every other usual
    reader but not a number. Any other failure is the import's one line."""
    if not (isinstance(error, ValueError) and str(error) == _INT_OF_EMPTY and os.environ.get("DEBUG") == ""):
        raise import_failure(module, error) from None
    os.environ["DEBUG"] = "0"
    try:
        importlib.import_module(module)  # (a module that failed to import is not in sys.modules)
    except Exception:
        raise import_failure(module, error) from None
    say(
        f"DEBUG: the settings ({settings_file(module)}) convert it with int(), which fails on the empty value "
        "django-vps writes (off for every other usual reader): DEBUG=0 in this release's processes"
    )
    return {"DEBUG": "0"}


def inside(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def as_path(value: object) -> Path:
    path = Path(str(value))
    return (path if path.is_absolute() else RELEASE / path).resolve()


def reads_from_environment(source: str, name: str) -> bool:
    """Whether the settings file reads NAME with a usual reader (getenv, environ, decouple, environ.Env)."""
    return re.search(rf"""(getenv|environ|config|env(\.\w+)?)\s*[\[(]\s*["']{name}["']""", source) is not None


def line_of(source: str, name: str) -> str:
    for number, line in enumerate(source.splitlines(), 1):
        if re.match(rf"^{name}\s*[:=]", line):
            return f" (line {number})"
    return ""


def diagnose(args: argparse.Namespace, settings, project_settings: str, shared: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """The problems that stop a release (returned) and the warnings (printed), one line each."""
    from django.http.request import validate_host

    fatal: list[str] = []
    where = settings_file(project_settings)
    try:
        source = (RELEASE / where).read_text(errors="replace")
    except OSError:
        source = ""
    overlay = args.overlay == "on"
    hint = "" if overlay else ", or turn settingsOverlay on"

    if not validate_host(args.domain, settings.ALLOWED_HOSTS):
        if reads_from_environment(source, "ALLOWED_HOSTS"):
            fatal.append(
                f"ALLOWED_HOSTS is {settings.ALLOWED_HOSTS!r}, which does not admit {args.domain}: {where} reads the "
                f"ALLOWED_HOSTS environment variable ({os.environ.get('ALLOWED_HOSTS', '')!r}) but changes it; "
                f"keep the domain in it{hint}"
            )
        else:
            fatal.append(
                f"ALLOWED_HOSTS in {where}{line_of(source, 'ALLOWED_HOSTS')} is {settings.ALLOWED_HOSTS!r}, which does "
                f"not admit {args.domain}: add {args.domain!r} to it, or read the ALLOWED_HOSTS environment variable "
                f"(os.environ['ALLOWED_HOSTS'].split(',')){hint}"
            )
    if settings.DEBUG:
        line = (
            f"DEBUG is True in production ({where}{line_of(source, 'DEBUG')}): error pages show code and settings "
            f"to anyone; read it from the DEBUG environment variable (empty means off){hint}"
        )
        (fatal.append if args.fail_on_debug == "yes" else warn)(line)
    if settings.SECRET_KEY.startswith("django-insecure-"):
        warn(
            f"SECRET_KEY in {where}{line_of(source, 'SECRET_KEY')} is Django's insecure development key: read it "
            f"from the SECRET_KEY environment variable (the stack's own){hint}"
        )
    elif os.environ.get("SECRET_KEY") != settings.SECRET_KEY:
        warn(
            f"SECRET_KEY in {where} is not the stack's (the SECRET_KEY environment variable): a key written in the "
            "repository is known to everyone who can read it"
        )

    # Static files: nginx serves this release's collected STATIC_ROOT at staticUrl.
    if not settings.STATIC_ROOT:
        fatal.append(f"STATIC_ROOT is not set in {where}: set it, e.g. STATIC_ROOT = BASE_DIR / 'staticfiles'{hint}")
    elif not inside(as_path(settings.STATIC_ROOT), RELEASE):
        fatal.append(
            f"STATIC_ROOT is {settings.STATIC_ROOT}, outside the release: nginx serves each release's own collected "
            f"files; set it inside the project, e.g. BASE_DIR / 'staticfiles'{hint}"
        )
    static_absolute = settings.STATIC_URL.startswith(("http://", "https://", "//"))
    if static_absolute:
        warn(f"STATIC_URL is {settings.STATIC_URL}: static files are served from there, not by this server's nginx")
    elif args.static_url != settings.STATIC_URL:
        fatal.append(f"STATIC_URL is {settings.STATIC_URL} but nginx serves static files at {args.static_url} (the "
                     f"staticUrl setting): set STATIC_URL = '{args.static_url.lstrip('/')}' in {where}, or staticUrl "
                     f"to {settings.STATIC_URL}{hint}")  # fmt: skip

    # Media: kept in shared/media across releases, served by nginx at mediaUrl.
    media = shared / "media"
    if not settings.MEDIA_ROOT:
        warn(f"MEDIA_ROOT is not set in {where}: uploads have nowhere to go that nginx serves; set MEDIA_ROOT{hint}")
    else:
        root = as_path(settings.MEDIA_ROOT)
        if root != media.resolve():
            if inside(root, RELEASE):
                relocate_media(root, media)
            else:
                fatal.append(f"MEDIA_ROOT is {settings.MEDIA_ROOT}, outside the release and not {media} (which "
                             f"nginx serves and every release shares): set it inside the project{hint}")  # fmt: skip
        if args.media_url != settings.MEDIA_URL and not settings.MEDIA_URL.startswith(("http://", "https://", "//")):
            fatal.append(f"MEDIA_URL is {settings.MEDIA_URL or 'unset'} but nginx serves uploads at {args.media_url} "
                         f"(the mediaUrl setting): set MEDIA_URL = '{args.media_url.lstrip('/')}' in {where}"
                         + (f", or mediaUrl to {settings.MEDIA_URL}" if settings.MEDIA_URL else "")
                         + hint)  # fmt: skip

    default = settings.DATABASES.get("default", {})
    engine = default.get("ENGINE", "")
    if not engine:
        url = os.environ.get("DATABASE_URL", "")
        fatal.append(
            f"DATABASES['default'] in {where} has no ENGINE: read DATABASE_URL ({url}) with dj-database-url or "
            f"django-environ, or set djangoEnv DATABASE_URL to your database{hint}"
        )
    elif args.database == "postgresql" and not engine.endswith((".postgresql", ".postgis")):
        fatal.append(
            f"database is postgresql but DATABASES['default'] in {where} uses {engine}: read DATABASE_URL "
            f"({os.environ.get('DATABASE_URL', '')}) with dj-database-url or django-environ, or leave DATABASES "
            f"without an ENGINE for the settings overlay{hint}"
        )
    elif engine.endswith("sqlite3") and default.get("NAME") and inside(as_path(default["NAME"]), RELEASE):
        fatal.append(
            f"the SQLite database {default['NAME']} is inside the release and would be lost on the next deploy: "
            f"keep it in shared/ (sharedPaths, or the DATABASE_URL environment variable){hint}"
        )
    return fatal


def imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def relocate_media(root: Path, media: Path) -> None:
    """MEDIA_ROOT inside the release (overlay off): its path becomes a link to shared/media, seeded
    once with what the commit holds there, as deploy.sh does for sharedPaths."""
    media.mkdir(parents=True, exist_ok=True)
    if root.is_dir() and not root.is_symlink():
        for item in root.rglob("*"):
            target = media / item.relative_to(root)
            if item.is_symlink():
                raise Refused(f"{item.relative_to(RELEASE)} in the commit is a link: MEDIA_ROOT's content is copied "
                              "to shared/media, files and directories only")  # fmt: skip
            if item.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif not target.exists():
                target.write_bytes(item.read_bytes())
        import shutil

        shutil.rmtree(root)
    elif root.exists() or root.is_symlink():
        root.unlink()
    root.parent.mkdir(parents=True, exist_ok=True)
    root.symlink_to(media)
    say(f"MEDIA_ROOT {root.relative_to(RELEASE)} is inside the release: linked to {media} (kept across releases)")


def unapplied_migrations() -> list[str]:
    """The migrations `migrate` would apply to a database that has some already (a new database has
    nothing to lose)."""
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections["default"])
    if not executor.recorder.has_table():
        return []
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def pre_migration_snapshot(stem: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """Before `migrate` changes the database: a snapshot of it (snapshot.py, beside this file), named
    after the release, that `deploy.sh rollback --restore-database` and `deploy.sh restore-snapshot`
    put back."""
    pending = unapplied_migrations()
    if not pending:
        return
    spec = importlib.util.spec_from_file_location("django_vps_snapshot", Path(__file__).with_name("snapshot.py"))
    assert spec is not None and spec.loader is not None
    snapshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snapshot)
    default = settings.DATABASES["default"]
    if snapshot.kind(default.get("ENGINE", "")) is None:
        warn(f"no pre-migration snapshot: the database engine {default.get('ENGINE')} is not SQLite or PostgreSQL")
        return
    from django.db import connections

    connections["default"].close()
    try:
        taken = snapshot.take(default, stem, release=RELEASE.name, migrations=pending)
    except Exception as error:
        raise Refused(f"the pre-migration snapshot failed ({error}); nothing was migrated") from None
    shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
    say(
        f"pre-migration snapshot: {stem.parent / str(taken['file'])} ({taken['bytes']} bytes, {taken['seconds']} s) "
        f"before {len(pending)} migration{'s' if len(pending) > 1 else ''}: {shown}"
    )


def check_deploy() -> None:
    """`manage.py check --deploy`: errors stop the release, warnings are printed."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    out = io.StringIO()
    try:
        call_command("check", deploy=True, fail_level="ERROR", stdout=out, stderr=out)
    except SystemCheckError as error:
        raise Refused(
            "manage.py check --deploy: " + " | ".join(line for line in str(error).splitlines() if line.strip())
        ) from None
    for line in out.getvalue().splitlines():
        if line.strip() and not line.startswith(("System check identified", "WARNINGS:")):
            warn(f"check --deploy: {line.strip()}")


def request(application, host: str, path: str) -> tuple[str, bytes]:  # type: ignore[no-untyped-def]
    path_info, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_USER_AGENT": "django-vps release check",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    status = []
    body = b"".join(application(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


def summary(body: bytes) -> str:
    """A response's gist: its <title> or first text, not 2000 characters of CSS."""
    text = body.decode(errors="replace")
    title = re.search(r"<title>(.*?)</title>", text, re.S | re.I)
    if title:
        return " ".join(title.group(1).split())[:200]
    text = re.sub(r"<style.*?</style>|<script.*?</script>|<[^>]+>", " ", text, flags=re.S | re.I)
    return " ".join(text.split())[:200]


def assets(settings, static_url: str) -> list[str]:  # type: ignore[no-untyped-def]
    """What deploy.sh fetches through nginx after the switch: one collected file of the project's
    own, and the admin's CSS when the admin is installed."""
    root = Path(settings.STATIC_ROOT)
    chosen: list[str] = []
    own = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not str(path.relative_to(root)).startswith("admin/")
    )
    own = [path for path in own if _PLAIN_PATH.match(path) and not path.endswith((".gz", ".br"))]
    if own:
        chosen.append(static_url + own[0])
    if "django.contrib.admin" in settings.INSTALLED_APPS:
        chosen.append(static_url + "admin/css/base.css")
    return chosen


def wsgi_target(args: argparse.Namespace, settings) -> str:  # type: ignore[no-untyped-def]
    if args.wsgi:
        return args.wsgi
    dotted = getattr(settings, "WSGI_APPLICATION", None)
    if not dotted:
        raise Refused(
            "WSGI_APPLICATION is not set in the settings: set it (e.g. 'main.wsgi.application') or set wsgiApplication"
        )
    module, _, name = dotted.rpartition(".")
    return f"{module}:{name}"


def asgi_target(args: argparse.Namespace, settings, wsgi: str) -> str:  # type: ignore[no-untyped-def]
    """The setting's; else Channels' ASGI_APPLICATION; else the asgi module beside the WSGI one."""
    if args.asgi:
        return args.asgi
    dotted = getattr(settings, "ASGI_APPLICATION", None)
    if dotted:
        module, _, name = dotted.rpartition(".")
        return f"{module}:{name}"
    module, _, name = wsgi.partition(":")
    package, _, last = module.rpartition(".")
    return f"{package + '.' if package else ''}{'asgi' if last == 'wsgi' else last}:application"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--health-path", required=True)
    parser.add_argument("--wsgi", default="")
    parser.add_argument("--server", choices=("wsgi", "asgi"), default="wsgi")
    parser.add_argument("--asgi", default="")
    parser.add_argument("--overlay", choices=("on", "off"), required=True)
    parser.add_argument("--overlay-skip", default="")
    parser.add_argument("--hsts", choices=("on", "off"), default="off")
    parser.add_argument("--fail-on-debug", choices=("yes", "no"), required=True)
    parser.add_argument("--shared", required=True)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--static-url", default="/static/", help="where nginx serves the collected files")
    parser.add_argument("--media-url", default="/media/", help="where nginx serves the uploads")
    parser.add_argument("--snapshot", default="", help="where a pre-migration snapshot goes (a path without suffix)")
    args = parser.parse_args(argv)
    try:
        return check(args)
    except Refused as refused:
        print(f"release check: {refused}", file=sys.stderr, flush=True)
        return 1


def check(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(RELEASE))
    import django_vps_wsgi

    project_dir = (RELEASE / args.project_dir).resolve()
    shared = Path(args.shared)
    # The project's own module: DJANGO_SETTINGS_MODULE from the app's environment, else manage.py's.
    env = django_vps_wsgi.read_env_file(RELEASE / ".env") if (RELEASE / ".env").exists() else {}
    project_settings = env.get("DJANGO_SETTINGS_MODULE") or manage_py_settings(project_dir)
    if not project_settings:
        raise Refused(f"{args.project_dir}/manage.py sets no DJANGO_SETTINGS_MODULE: set it with djangoEnv "
                      "(DJANGO_SETTINGS_MODULE=mysite.settings)")  # fmt: skip
    overlay = args.overlay == "on"
    settings_module = "django_vps_settings" if overlay else project_settings
    STATE.mkdir(exist_ok=True)
    (STATE / "overlay.json").write_text(json.dumps({
        "domain": args.domain,
        "media_root": str(shared / "media"),
        "static_url": args.static_url,
        "media_url": args.media_url,
        "skip": [name for name in args.overlay_skip.split(",") if name],
        "hsts": args.hsts == "on",
    }))  # fmt: skip
    # The working directory stays the release's top, as gunicorn's (--chdir current).
    django_vps_wsgi.prepare(RELEASE, args.project_dir, settings_module, project_settings, {})
    environment: dict[str, str] = {}
    try:
        importlib.import_module(project_settings)
    except Exception as error:  # the project's code: anything can fail
        environment = debug_as_number(project_settings, error)
    if overlay:
        try:
            overlay_module = importlib.import_module(settings_module)
        except Exception as error:
            raise import_failure(settings_module, error) from None
        for change in overlay_module.changes:
            say(f"settings overlay: {change}")
    # Django loads the database backend while it sets up (the auth models): the driver first.
    if args.database == "postgresql" and not any(imports(name) for name in ("psycopg", "psycopg2")):
        raise Refused(
            "database is postgresql but the project's dependencies have no PostgreSQL driver (neither psycopg nor "
            "psycopg2 imports): add psycopg[binary] (or psycopg2-binary) to them"
        )
    import django
    from django.conf import settings

    try:
        django.setup()
    except Exception as error:
        raise import_failure(project_settings, error, "does not start Django") from None
    default = settings.DATABASES.get("default", {})
    say(
        f"Django says: settings {project_settings}{' + overlay' if overlay else ''}, "
        f"WSGI_APPLICATION {getattr(settings, 'WSGI_APPLICATION', None)}, DEBUG {settings.DEBUG}, "
        f"ALLOWED_HOSTS {settings.ALLOWED_HOSTS}, STATIC_ROOT {settings.STATIC_ROOT} at {settings.STATIC_URL}, "
        f"MEDIA_ROOT {settings.MEDIA_ROOT or 'unset'} at {settings.MEDIA_URL or 'unset'}, "
        f"database {default.get('ENGINE', 'none')}"
    )
    fatal = diagnose(args, settings, project_settings, shared)
    if fatal:
        for line in fatal[:-1]:
            print(f"release check: {line}", file=sys.stderr, flush=True)
        raise Refused(fatal[-1])
    target = wsgi_target(args, settings)
    module, _, name = target.partition(":")
    try:
        application = getattr(importlib.import_module(module), name)
    except Exception as error:
        raise import_failure(module, error) from None
    asgi = asgi_target(args, settings, target) if args.server == "asgi" else ""
    if asgi:
        asgi_module, _, asgi_name = asgi.partition(":")
        try:
            getattr(importlib.import_module(asgi_module), asgi_name)
        except Exception as error:
            raise Refused(
                f"server asgi serves {asgi}, which does not import ({type(error).__name__}: {error}): set "
                "asgiApplication to the project's ASGI callable (module.path:name)"
            ) from None
        say(f"ASGI application: {asgi}")
    check_deploy()

    from django.core.management import call_command

    if args.snapshot:
        pre_migration_snapshot(Path(args.snapshot), settings)
    say("migrate")
    call_command("migrate", interactive=False, verbosity=1)
    say("collectstatic")
    call_command("collectstatic", interactive=False, verbosity=0)
    static_link = STATE / "static"
    if as_path(settings.STATIC_ROOT) != static_link.resolve():
        # nginx serves .django-vps/static of the live release: the collected root, wherever it is.
        if static_link.exists() or static_link.is_symlink():
            static_link.unlink()
        static_link.symlink_to(os.path.relpath(as_path(settings.STATIC_ROOT), STATE))
    status, body = request(application, args.domain, args.health_path)
    if status[:1] not in ("2", "3"):
        raise Refused(f"GET {args.health_path} with Host {args.domain} answered {status}: {summary(body)}")
    say(f"release check: GET {args.health_path} answered {status}")
    (STATE / "assets").write_text("".join(f"{path}\n" for path in assets(settings, args.static_url)))
    (STATE / "release.json").write_text(json.dumps({
        "project_dir": args.project_dir,
        "settings_module": settings_module,
        "project_settings": project_settings,
        "environment": environment,
        "wsgi_application": target,
        "asgi_application": asgi,
        "static_root": str(settings.STATIC_ROOT),
        "media_root": str(settings.MEDIA_ROOT),
        # What backups snapshot (snapshot.py): the database Django really uses, never its password.
        "database": {key: str(value) for key, value in default.items()
                     if key in ("ENGINE", "NAME", "HOST", "PORT", "USER") and value}
        | ({"HOST": str(default["OPTIONS"]["host"])}
           if not default.get("HOST") and (default.get("OPTIONS") or {}).get("host") else {}),
    }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
