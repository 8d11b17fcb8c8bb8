"""files/release_check.py run for real against the fixture projects, as deploy.sh runs it (see
release.py): it asks Django, prints the overlay's overrides and the diagnostics in one line each,
refuses before `migrate` what cannot serve, collects into the directory nginx serves, and writes the
facts gunicorn's entry point reads. `manage.py diffsettings` shows exactly the overlay's overrides."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.render.conftest import FIXTURE_BLOG_PIP
from tests.render.release import DOMAIN, Release
from tests.support.program import ROOT

FIXTURES = ROOT / "tests" / "e2e" / "fixtures"
# fixture -> (project dir, what the user sets, the page's own CSS as collected).
CASES = {
    "blog-pip": (".", [], "/static/posts/site.css"),
    "startproject-whitenoise": (".", [], "/static/css/site."),
    "poetry-getenv": (".", [], "/static/notes/site.css"),
    "settings-package": (".", [("DJANGO_SETTINGS_MODULE", "config.settings.production")], "/static/board/site.css"),
    "environ-media": (".", [], "/static/library/site.css"),
    "src-pipenv": ("src", [], "/static/catalog/site.css"),
    "hardcoded": (".", [], "/static/polls/site.css"),
}


def _tables(db: Path) -> set[str]:
    if not db.exists():
        return set()
    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _lines(result, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [line.removeprefix(prefix) for line in result.stdout.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize("fixture", list(CASES))
def test_every_fixture_passes_with_the_overlay_and_no_edit(tmp_path: Path, fixture: str) -> None:
    project_dir, env, css = CASES[fixture]
    release = Release(tmp_path, FIXTURES / fixture, env=env)
    result = release.run(project_dir=project_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "==> release check: GET / answered 200 OK" in result.stdout
    # Migrated into the database the program provides, kept across releases in shared/.
    assert "django_migrations" in _tables(release.shared / "db.sqlite3"), result.stdout
    # nginx's /static/ is this release's collected STATIC_ROOT: the page's CSS and the admin's.
    assert any(url.startswith(css) for url in release.assets()), release.assets()  # (whitenoise: site.<hash>.css)
    assert ("/static/admin/css/base.css" in release.assets()) == (fixture != "blog-pip")  # (the blog has no admin)
    for url in release.assets():
        assert release.served_static(url).is_file(), url
    facts = release.facts()
    assert facts["settings_module"] == "django_vps_settings"
    assert Path(facts["media_root"]).resolve() == release.shared / "media"
    overrides = _lines(result, "==> settings overlay: ")
    # Only the one that does not read ALLOWED_HOSTS from the environment needs the domain added.
    assert (f"ALLOWED_HOSTS: added {DOMAIN}" in overrides) == (fixture == "hardcoded"), overrides
    assert any(line.startswith("DEBUG:") for line in overrides) == (fixture == "hardcoded"), overrides
    print(f"\n{fixture}: " + "; ".join(overrides))


def test_the_overlay_is_exactly_what_diffsettings_shows(tmp_path: Path) -> None:
    """Django's own diffsettings, overlay against the project's module: the settings named in the
    printed overrides, and no other."""
    release = Release(tmp_path, FIXTURES / "hardcoded")
    result = release.run()
    assert result.returncode == 0, result.stderr
    overridden = {line.split(":", 1)[0] for line in _lines(result, "==> settings overlay: ")}
    assert {"ALLOWED_HOSTS", "DEBUG", "SECRET_KEY", "STATIC_ROOT", "MEDIA_ROOT", "LOGGING"} <= overridden
    diff = release.manage("diffsettings", "--default", "mysite.settings", "--output", "unified")
    assert diff.returncode == 0, diff.stderr
    changed = {
        line[1:].strip().split(" = ", 1)[0] for line in diff.stdout.splitlines() if line[:1] in "+-" and " = " in line
    }
    # SETTINGS_MODULE is the module's own name, the one difference that is not an override.
    assert changed - {"SETTINGS_MODULE"} == overridden, (changed, overridden)


def test_a_skipped_override_is_left_as_the_project_has_it(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURES / "hardcoded")
    result = release.run(skip="DEBUG,LOGGING")
    assert result.returncode == 0, result.stderr
    overrides = _lines(result, "==> settings overlay: ")
    assert not any(line.startswith(("DEBUG", "LOGGING")) for line in overrides), overrides
    assert any(line.startswith("warning: DEBUG is True in production (mysite/settings.py (line ") for line in
               result.stdout.splitlines()), result.stdout  # fmt: skip


def test_without_the_overlay_hard_coded_settings_fail_in_one_line_before_migrate(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURES / "hardcoded")
    result = release.run(overlay=False)
    assert result.returncode == 1, result.stdout
    errors = result.stderr.strip().splitlines()
    assert errors == [
        "release check: ALLOWED_HOSTS in mysite/settings.py (line 28) is ['localhost', '127.0.0.1'], which does not "
        f"admit {DOMAIN}: add '{DOMAIN}' to it, or read the ALLOWED_HOSTS environment variable "
        "(os.environ['ALLOWED_HOSTS'].split(',')), or turn settingsOverlay on"
    ], errors
    assert "==> migrate" not in result.stdout and _tables(release.shared / "db.sqlite3") == set()
    # The one edit the line asks for; DEBUG on is then a warning, as are check --deploy's findings.
    settings = release.dir / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace("ALLOWED_HOSTS = [", f"ALLOWED_HOSTS = ['{DOMAIN}', "))
    again = release.run(overlay=False)
    assert again.returncode == 0, again.stderr
    warnings = _lines(again, "warning: ")
    assert any(line.startswith("DEBUG is True in production") for line in warnings), warnings
    assert any("SECRET_KEY in mysite/settings.py (line 23) is Django's insecure development key" in w for w in warnings)
    assert any(w.startswith("check --deploy: ?: (security.W018)") for w in warnings), warnings  # DEBUG on
    # Its own STATIC_ROOT, linked where nginx serves from.
    assert (release.dir / ".django-vps" / "static").resolve() == release.dir / "staticfiles"
    assert release.served_static("/static/polls/site.css").is_file()


def test_debug_on_is_fatal_when_the_setting_says_so(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURES / "hardcoded")
    settings = release.dir / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace("ALLOWED_HOSTS = [", f"ALLOWED_HOSTS = ['{DOMAIN}', "))
    result = release.run(overlay=False, fail_on_debug=True)
    assert result.returncode == 1
    assert result.stderr.startswith("release check: DEBUG is True in production (mysite/settings.py (line 26))")


def test_without_the_overlay_each_problem_names_what_to_change(tmp_path: Path) -> None:
    """src-pipenv as it is: no STATIC_ROOT and a SQLite database inside the release, each one line."""
    release = Release(tmp_path, FIXTURES / "src-pipenv")
    result = release.run(project_dir="src", overlay=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("release check: STATIC_ROOT is not set in src/shop/settings.py: set it"), lines
    assert any("the SQLite database" in line and "inside the release" in line for line in lines), lines
    assert "==> migrate" not in result.stdout


def test_a_missing_environment_variable_is_named_with_where_to_set_it(tmp_path: Path) -> None:
    """settings/production.py reads os.environ["X"]: the variable, and djangoEnv."""
    release = Release(
        tmp_path, FIXTURES / "settings-package", env=[("DJANGO_SETTINGS_MODULE", "config.settings.production")]
    )
    production = release.dir / "config" / "settings" / "production.py"
    production.write_text(production.read_text() + '\nEMAIL_HOST = os.environ["EMAIL_HOST"]\n')
    result = release.run()
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "release check: the settings (config.settings.production) read the environment variable EMAIL_HOST, which "
        "is not set: add it with djangoEnv (pulumi config set --path 'djangoEnv[0]' EMAIL_HOST=...) or "
        "djangoSecretEnv for a secret"
    )


def test_the_default_settings_module_comes_from_manage_py(tmp_path: Path) -> None:
    """settings-package without DJANGO_SETTINGS_MODULE: manage.py's development module, which needs
    debug_toolbar (not installed in production): the traceback's last lines, in one line."""
    release = Release(tmp_path, FIXTURES / "settings-package")
    result = release.run()
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("release check: the settings module config.settings.development does not start Django:"), (
        line
    )
    assert "debug_toolbar" in line


def test_a_host_outside_allowed_hosts_is_diagnosed(tmp_path: Path) -> None:
    result = Release(tmp_path, FIXTURE_BLOG_PIP).run(host="other.test", overlay=False)
    assert result.returncode == 1
    assert "ALLOWED_HOSTS is ['blog.test'], which does not admit other.test" in result.stderr
    assert "reads the ALLOWED_HOSTS environment variable" in result.stderr


def test_a_missing_health_path_fails_with_the_status_and_no_page_dump(tmp_path: Path) -> None:
    result = Release(tmp_path, FIXTURE_BLOG_PIP).run(path="/no-such-page/")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("release check: GET /no-such-page/ with Host blog.test answered 404 Not Found: ")
    assert len(line) < 400


def test_a_view_that_fails_on_request_fails_with_the_status(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURE_BLOG_PIP)
    views = release.dir / "posts" / "views.py"
    old = "def index(request):\n"
    views.write_text(views.read_text().replace(old, old + '    raise RuntimeError("broken release")\n'))
    result = release.run()
    assert result.returncode == 1, result.stdout
    assert "release check: GET / with Host blog.test answered 500" in result.stderr
    assert "broken release" in (release.logs / "blog.log").read_text(), "the error reaches the project's log"


def test_a_view_module_that_does_not_import_fails_in_one_line(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURE_BLOG_PIP)
    views = release.dir / "posts" / "views.py"
    views.write_text(views.read_text().replace("def index(request):", "def index(request)"))
    result = release.run()
    assert result.returncode == 1
    assert "SyntaxError" in result.stderr and "posts/views.py" in result.stderr


def test_media_inside_the_release_without_the_overlay_is_linked_to_shared(tmp_path: Path) -> None:
    """environ-media's var/uploads (MEDIA_URL /uploads/ aside): the path becomes a link to shared/media,
    seeded with what the commit holds there."""
    release = Release(tmp_path, FIXTURES / "environ-media")
    (release.dir / "var" / "uploads").mkdir(parents=True)
    (release.dir / "var" / "uploads" / "seed.txt").write_text("committed")
    result = release.run(overlay=False)
    assert (release.dir / "var" / "uploads").resolve() == release.shared / "media"
    assert (release.shared / "media" / "seed.txt").read_text() == "committed"
    # /uploads/ is not where nginx serves them: one line says what to set, in the project or here.
    assert result.returncode == 1
    assert (
        "MEDIA_URL is /uploads/ but nginx serves uploads at /media/ (the mediaUrl setting): set MEDIA_URL = "
        "'media/' in project/settings.py, or mediaUrl to /uploads/"
    ) in result.stderr, result.stderr
    # ...and with mediaUrl /uploads/ the project's own MEDIA_URL is what nginx serves: it passes.
    kept = Release(tmp_path / "kept", FIXTURES / "environ-media", mediaUrl="/uploads/")
    passed = kept.run(overlay=False)
    assert passed.returncode == 0 and "MEDIA_URL" not in passed.stderr, passed.stdout + passed.stderr
    assert (kept.dir / "var" / "uploads").resolve() == kept.shared / "media"


def test_the_overlay_sets_static_and_media_urls_to_the_settings(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURES / "environ-media", staticUrl="/assets/", mediaUrl="/files/")
    result = release.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "settings overlay: STATIC_URL: static/ -> /assets/ (where nginx serves them: staticUrl)" in result.stdout
    assert "settings overlay: MEDIA_URL: /uploads/ -> /files/ (where nginx serves them: mediaUrl)" in result.stdout
    assert all(path.startswith("/assets/") for path in release.assets()), release.assets()


def test_the_settings_skip_list_names_exactly_the_overlays_overrides() -> None:
    from components.settings import OVERLAY_SETTINGS

    source = (ROOT / "files" / "django_vps_settings.py").read_text()
    overridable = source.split("overridable = (", 1)[1].split(")", 1)[0]
    assert tuple(name.strip().strip('",') for name in overridable.split() if name.strip()) == OVERLAY_SETTINGS
    # and each is one the overlay really sets
    assert all(
        f'_set("{name}"' in source
        for name in OVERLAY_SETTINGS
        if name not in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    )


def test_management_commands_run_with_the_environment_and_settings_gunicorn_has(tmp_path: Path) -> None:
    """bin/manage's Python half: src/manage.py found from the facts, the overlay's settings, the .env
    in os.environ (DATABASE_URL's database, where the release check migrated)."""
    release = Release(tmp_path, FIXTURES / "src-pipenv")
    assert release.run(project_dir="src").returncode == 0
    result = release.manage(
        "shell", "-c", "import os; from django.conf import settings; from catalog.models import Note; "
        "print(os.environ['DJANGO_SETTINGS_MODULE'], settings.DEBUG, settings.DATABASES['default']['NAME'], "
        "Note.objects.count())",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # (Django 5.2's shell first says how many objects it imported)
    assert result.stdout.splitlines()[-1].split() == [
        "django_vps_settings",
        "False",
        str(release.shared / "db.sqlite3"),
        "0",
    ]


def _debug_read_with_int(release: Release, line: str) -> None:
    settings = release.dir / "mysite" / "settings.py"
    text = settings.read_text()
    assert "DEBUG = os.environ.get('DEBUG', 'True') == 'True'" in text
    settings.write_text(text.replace("DEBUG = os.environ.get('DEBUG', 'True') == 'True'", line))


def test_debug_converted_with_int_gets_zero_in_every_process_of_the_release(tmp_path: Path) -> None:
    """The tutorials' `DEBUG = int(os.environ.get("DEBUG", 0))` fails on the empty DEBUG the .env has
    (off for every other reader): the release gets DEBUG=0, said once, and its processes have it."""
    release = Release(tmp_path, FIXTURES / "startproject-whitenoise")
    _debug_read_with_int(release, 'DEBUG = int(os.environ.get("DEBUG", 0))')
    result = release.run()
    assert result.returncode == 0, result.stderr
    assert _lines(result, "==> DEBUG:") == [
        " the settings (mysite/settings.py) convert it with int(), which fails on the empty value "
        "django-vps writes (off for every other usual reader): DEBUG=0 in this release's processes"
    ]
    assert release.facts()["environment"] == {"DEBUG": "0"}
    shell = release.manage(
        "shell", "-c", "import os; from django.conf import settings; print(repr(os.environ['DEBUG']), settings.DEBUG)"
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines()[-1] == "'0' 0"  # int("0"): off


def test_another_empty_variable_converted_with_int_is_the_imports_one_line(tmp_path: Path) -> None:
    release = Release(tmp_path, FIXTURES / "startproject-whitenoise", env=[("EMAIL_PORT", "")])
    _debug_read_with_int(release, 'DEBUG = False\nEMAIL_PORT = int(os.environ["EMAIL_PORT"])')
    result = release.run()
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("release check: the settings module mysite.settings failed to import: ")
    assert line.endswith("ValueError: invalid literal for int() with base 10: ''"), line
