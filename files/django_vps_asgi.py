"""What gunicorn's uvicorn workers serve with server asgi (`django_vps_asgi:application`): the
project's ASGI callable, as django_vps_wsgi.py does for WSGI (the same facts, environment and
import path). deploy.sh puts a copy at the top of each release."""

from __future__ import annotations

import importlib

from django_vps_wsgi import enter


def _load_application():  # type: ignore[no-untyped-def]
    facts = enter()
    module, _, name = facts["asgi_application"].partition(":")
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "application":
        global application
        application = _load_application()
        return application
    raise AttributeError(name)
