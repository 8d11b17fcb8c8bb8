"""The static Python files a release gets (files/django_vps_wsgi.py ...), imported as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

FILES = Path(__file__).resolve().parents[2] / "files"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


django_vps_wsgi = load("django_vps_wsgi")
