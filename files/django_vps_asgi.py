"""What gunicorn's uvicorn workers serve with server asgi (`django_vps_asgi:application`): the
project's ASGI callable, as django_vps_wsgi.py does for WSGI (the same facts, environment and
import path). deploy.sh puts a copy at the top of each release."""

from __future__ import annotations

import importlib
import json

from django_vps_wsgi import FACTS, RELEASE, prepare


def _load_application():  # type: ignore[no-untyped-def]
    facts = json.loads(FACTS.read_text())
    prepare(RELEASE, facts["project_dir"], facts["settings_module"], facts["project_settings"])
    module, _, name = facts["asgi_application"].partition(":")
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "application":
        global application
        application = _load_application()
        return application
    raise AttributeError(name)
