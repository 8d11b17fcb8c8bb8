"""The real Pulumi CLI running this program on a file-backend stack.

`pulumi` is built from its Go module (tests/tools/build); the provider plugins are the stand-ins of
tests/e2e/providers (the real ones cannot be built here). The program runs as an Automation API
inline program: the CLI connects to the SDK's own language runtime (`pulumi up --client`), because
the Python language host's Go module is refused by the proxy too; everything else (the engine's
diff, replacement, delete, dependency and secret handling, the state file) is the real CLI's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import runpy
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from tests.e2e.providers import install as install_plugins
from tests.e2e.testhost import netns
from tests.e2e.testhost.common import CACHE_DIR

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "django-vps"
PASSPHRASE = "lab passphrase: not a secret"
SECRET_SETTINGS = frozenset(
    {
        "django-vps:existingHostPrivateKey",
        "django-vps:djangoSecretKey",
        "django-vps:djangoSecretEnv",
        "django-vps:offsiteRepositoryPassword",
        "django-vps:offsiteS3AccessKeyId",
        "django-vps:offsiteS3SecretAccessKey",
        "github:token",
        "hcloud:token",
    }
)


@cache
def tools_bin() -> Path:
    """The directory with the real `pulumi`: built once, then taken from the cache. Labs side by side
    share the cache: one builds (from the machine's network namespace: the Go proxy is outside
    every lab) while the others wait on the lock, then find it built."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build = netns.in_machine([ROOT / "tests/tools/build"])
        built = subprocess.run(build, check=True, text=True, stdout=subprocess.PIPE)
    return Path(built.stdout.strip().splitlines()[-1])


def pulumi_version() -> str:
    version = subprocess.run([tools_bin() / "pulumi", "version"], check=True, text=True, capture_output=True)
    return version.stdout.strip()


def _program() -> None:
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


@dataclass
class Run:
    """What one CLI operation did, read from the engine's own events and summary."""

    changes: dict[str, int]
    """The summary's resource changes by operation (create, update, replace, delete, same, ...)."""
    ops: dict[str, list[str]]
    """Resource name (URN's last part) -> the steps the engine performed on it, in order (a
    replacement is create-replacement, replace, delete-replaced)."""
    output: str
    """The CLI's own output."""
    seconds: float
    outputs: dict[str, Any] = field(default_factory=dict)

    def changed(self) -> dict[str, list[str]]:
        """The resources the engine did anything to."""
        return {name: ops for name, ops in self.ops.items() if set(ops) - {"same", "read", "refresh"}}


def workspace_options(directory: Path, env: Mapping[str, str] | None = None) -> auto.LocalWorkspaceOptions:
    """What every stack of the e2e suite runs with: a file backend and PULUMI_HOME in `directory`,
    the stand-in plugins installed there, and the built CLI."""
    state, home = directory / "state", directory / "home"
    for path in (state, home):
        path.mkdir(parents=True, exist_ok=True)
    install_plugins(home)
    env_vars = {
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_HOME": str(home),
        "PATH": f"{tools_bin()}:{ROOT / '.venv/bin'}:{os.environ['PATH']}",
        **(env or {}),
    }
    return auto.LocalWorkspaceOptions(
        work_dir=str(directory),
        pulumi_home=str(home),
        env_vars=env_vars,
        pulumi_command=auto.PulumiCommand(str(tools_bin().parent), skip_version_check=True),
    )


class CliStack:
    """One stack of this program in `directory` (project file, stack file, state and PULUMI_HOME)."""

    def __init__(self, directory: Path, *, stack: str = "lab", env: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.state_dir = directory / "state"
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
        options = workspace_options(directory, env)
        self.env: dict[str, str] = dict(options.env_vars or {})
        self.stack = auto.create_or_select_stack(stack_name=stack, project_name=PROJECT, program=_program, opts=options)

    def configure(self, config: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) settings; keys without a namespace are django-vps's. A JSON
        array is set item by item (`pulumi config set --path 'key[0]' ...`), as the CLI wants a list
        for a setting Pulumi.yaml types as an array."""
        for key, value in config.items():
            full = key if ":" in key else f"{PROJECT}:{key}"
            secret = full in SECRET_SETTINGS
            if value is None or value.startswith("["):
                with contextlib.suppress(auto.CommandError):
                    self.stack.remove_config(full)
            if value is None:
                continue
            if value.startswith("{"):
                # An object setting: each key by its path (`--path 'processes.worker'`).
                with contextlib.suppress(auto.CommandError):
                    self.stack.remove_config(full)
                for name, item in json.loads(value).items():
                    self.stack.set_config(f"{full}.{name}", auto.ConfigValue(str(item), secret=secret), path=True)
            elif value.startswith("["):
                for index, item in enumerate(json.loads(value)):
                    # A list of maps (schedule): each field by its path, `schedule[0].name`.
                    fields = item.items() if isinstance(item, dict) else [(None, item)]
                    for name, field_value in fields:
                        path = f"{full}[{index}]" + (f".{name}" if name else "")
                        self.stack.set_config(path, auto.ConfigValue(str(field_value), secret=secret), path=True)
            else:
                self.stack.set_config(full, auto.ConfigValue(value, secret=secret))

    def _run(self, operation: Callable[..., Any], echo: Callable[[str], object] | None, **kwargs: Any) -> Run:
        lines: list[str] = []
        ops: dict[str, list[str]] = {}

        def on_output(line: str) -> None:
            lines.append(line)
            if echo:
                echo(line)

        def on_event(event: auto.events.EngineEvent) -> None:
            step = event.resource_pre_event
            if step is not None and step.metadata is not None:
                ops.setdefault(step.metadata.urn.rsplit("::", 1)[-1], []).append(step.metadata.op.value)

        result = operation(on_output=on_output, on_event=on_event, color="never", **kwargs)
        summary = getattr(result, "summary", None)
        changes = dict(summary.resource_changes or {}) if summary else dict(result.change_summary or {})
        seconds = (summary.end_time - summary.start_time).total_seconds() if summary else 0.0
        outputs = {k: v.value for k, v in getattr(result, "outputs", {}).items()}
        return Run(changes, ops, "\n".join(lines), seconds, outputs)

    def preview(self, echo: Callable[[str], object] | None = print, **kwargs: Any) -> Run:
        return self._run(self.stack.preview, echo, **kwargs)

    def up(self, echo: Callable[[str], object] | None = print, **kwargs: Any) -> Run:
        return self._run(self.stack.up, echo, **kwargs)

    def refresh(self, echo: Callable[[str], object] | None = print, **kwargs: Any) -> Run:
        return self._run(self.stack.refresh, echo, **kwargs)

    def destroy(self, echo: Callable[[str], object] | None = print, **kwargs: Any) -> Run:
        return self._run(self.stack.destroy, echo, **kwargs)

    def config_values(self) -> dict[str, str]:
        """The stack's settings as the program reads them (secrets decrypted), by full key."""
        return {key: value.value for key, value in self.stack.get_all_config().items()}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The CLI itself on this stack (`stack export`, `stack output`, ...)."""
        return subprocess.run(
            [tools_bin() / "pulumi", *args, "--stack", self.stack.name, "--non-interactive"],
            cwd=self.directory,
            env={**os.environ, **self.env},
            text=True,
            capture_output=True,
            check=check,
        )

    def export(self) -> dict[str, Any]:
        return json.loads(self.cli("stack", "export").stdout)

    def state_files(self) -> list[Path]:
        """Everything the file backend wrote (the stack's checkpoint, its backups, history)."""
        return [path for path in self.state_dir.rglob("*") if path.is_file()]

    def resources(self) -> Counter[str]:
        return Counter(r["type"] for r in self.export()["deployment"].get("resources", []))
