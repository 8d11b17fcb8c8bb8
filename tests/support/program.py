"""Runs the real __main__.py on the Pulumi SDK's mock runtime and returns its resolved exports.

Used by the unit tests (with mocks that only record) and by the e2e engine (with mocks that perform
the work on the test server).
"""

from __future__ import annotations

import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "__main__.py"


def config_from_stack_file(path: Path) -> dict[str, str]:
    """A Pulumi.<stack>.yaml's config as the engine hands it to the program (arrays as JSON)."""
    import json

    import yaml

    values = yaml.safe_load(path.read_text())["config"]
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


def run_program(
    mocks: pulumi.runtime.Mocks,
    config: Mapping[str, str],
    *,
    stack: str = "prod",
    secret_keys: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run __main__.py as `pulumi up` would and return the stack outputs, resolved.

    Secret outputs come back as pulumi.Output-free plain values in `exports`, and the names of those
    that were secret in `exports["__secret__"]`.
    """
    pulumi_settings.reset_options()
    pulumi_mocks.set_mocks(mocks, project="django-vps", stack=stack, preview=False)
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    exports: dict[str, Any] = {}

    def program() -> None:
        runpy.run_path(str(MAIN), run_name="__main__")
        outputs = pulumi_settings.get_root_resource().outputs  # type: ignore[union-attr]

        def collect(name: str, value: Any) -> None:
            output = pulumi.Output.from_input(value)
            exports[name] = _sync_await(output.future())
            if _sync_await(output.is_secret()):
                exports.setdefault("__secret__", set()).add(name)

        for name, value in outputs.items():
            collect(name, value)

    _sync_await(run_pulumi_func(program))
    return exports
