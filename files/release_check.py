"""Prepares a new release and proves it can serve, before it goes live (run by deploy.sh with the
release's own virtualenv, from the release directory).

One Python process for the three steps saves two Django start-ups per deploy:
  1. `manage.py migrate --no-input`
  2. `manage.py collectstatic --no-input` (into this release's own STATIC_ROOT)
  3. a request to the WSGI application, as gunicorn would make it for nginx: Host = the site's
     domain (ALLOWED_HOSTS applies), X-Forwarded-Proto https. 2xx or 3xx passes.

Usage: release_check.py MODULE:CALLABLE HOST PATH
"""

import importlib
import io
import sys


def request(application, host: str, path: str) -> tuple[str, bytes]:
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


def main() -> int:
    target, host, path = sys.argv[1:4]
    sys.path.insert(0, ".")
    module_name, _, callable_name = target.partition(":")
    # Importing the WSGI module sets DJANGO_SETTINGS_MODULE and sets Django up, as gunicorn does.
    application = getattr(importlib.import_module(module_name), callable_name)
    from django.core.management import call_command

    print("==> migrate", flush=True)
    call_command("migrate", interactive=False, verbosity=1)
    print("==> collectstatic", flush=True)
    call_command("collectstatic", interactive=False, verbosity=0)
    status, body = request(application, host, path)
    if status[:1] not in ("2", "3"):
        print(f"release check: GET {path} with Host {host} answered {status}:", file=sys.stderr)
        print(body[:2000].decode(errors="replace"), file=sys.stderr)
        return 1
    print(f"==> release check: GET {path} answered {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
