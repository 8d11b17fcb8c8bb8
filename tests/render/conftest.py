"""Shared pieces of the render suite: Settings built through the real loader, real keys, the
Debian tools the checks need (a missing one skips with the apt package to install, and the skip
guard in tests/conftest.py fails the run for it: tests/run installs them all), and process
handling that stops only what a test started, by PID."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from components.settings import PROJECT, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_BLOG_PIP = ROOT / "tests" / "e2e" / "fixtures" / "blog-pip"
CI_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci"

# The smallest complete configuration; every other setting takes its Pulumi.yaml default.
BASE_CONFIG = {
    "domain": "blog.example.com",
    "repository": "sdelquin/blog",
    "letsencryptEmail": "admin@example.com",
}

# Apt packages providing the tools (what the project's test command installs in CI).
APT_PACKAGES = {"shellcheck": "shellcheck", "nginx": "nginx", "cloud-init": "cloud-init", "restic": "restic"}


def ed25519_keypair() -> tuple[str, str]:
    """A real OpenSSH ed25519 key pair: (private key PEM ending in a newline, public key line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


def make_settings(**overrides: object) -> Settings:
    """Settings from BASE_CONFIG plus overrides (camelCase keys as in `pulumi config`), read by the
    real loader. Lists become JSON strings and numbers strings, as the engine passes them. Cached:
    Settings is frozen, and loading builds the public suffix list each time (slow)."""
    return _cached_load(_config(overrides))


def logs_moved(s: Settings, directory: Path | str) -> Settings:
    """s with Django's log directory moved somewhere a test can write (logsDir itself accepts only
    the app's own trees, none of which exists here)."""
    return dataclasses.replace(s, logs=dataclasses.replace(s.logs, directory=str(directory)))


STACK = "prod"
"""The stack the rendered files are for (its GitHub Environment and workflow file)."""


def fresh_settings(**overrides: object) -> Settings:
    """As make_settings, loaded anew."""
    return _load(_config(overrides))


def _config(overrides: dict[str, object]) -> tuple[tuple[str, str], ...]:
    config: dict[str, str] = dict(BASE_CONFIG)
    for key, value in overrides.items():
        config[key] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return tuple(sorted(config.items()))


def _load(items: tuple[tuple[str, str], ...]) -> Settings:
    config = dict(items)

    def raw(name: str) -> str | None:
        prefix = f"{PROJECT}:"
        return config.get(name[len(prefix) :]) if name.startswith(prefix) else None

    # The stack named, not the SDK's global (which other tests' mocks leave at theirs): the workflow
    # names the stack's environment, and rendering must not depend on what ran before.
    return load_settings(raw, stack=STACK)


_cached_load = functools.cache(_load)


def _existing_host() -> dict[str, object]:
    private, _ = ed25519_keypair()
    _, host_public = ed25519_keypair()
    return {"existingHost": "203.0.113.7", "existingHostKey": host_public, "existingHostPrivateKey": private}


# Settings variants the rendered files are checked across: ids -> overrides. Between them: login as
# an admin user (Hetzner) and as root (existingHost), the host firewall and fail2ban each on and off.
VARIANTS: dict[str, Callable[[], dict[str, object]]] = {
    "defaults": lambda: {},
    "uv-custom": lambda: {
        "dependencies": "uv",
        "dependencyGroups": ["production", "web"],
        "processes": {"worker": "celery -A main worker -l info", "beat": "celery -A main beat"},
        "redis": "true",
        "schedule": [
            {"name": "sessions", "on": "daily", "command": "clearsessions"},
            {"name": "report", "on": "Mon..Fri *-*-* 06:00", "run": "python scripts/report.py --all"},
        ],
        "redisMaxMemory": "256mb",
        "redisEvictionPolicy": "noeviction",
        "dependencyExtras": ["s3"],
        "settingsOverlaySkip": ["LOGGING", "DEBUG"],
        "failOnDebug": "true",
        "gunicornWorkers": 2,
        "branch": "release/2025.1",
        "appName": "shop",
        "user": "shopper",
        "logsDir": "/var/log/django-vps/shop/django",
        "logFilename": "django.log",
        "clientMaxBodySize": "64m",
        "acmeServer": "staging",
        "keepReleases": 2,
        "healthCheckPath": "/health/?full=1&x=%20",
        "sharedPaths": ["media", "data/uploads", "db.sqlite3"],
        "adminUser": "ops",
        "hostFirewall": "false",
        "database": "postgresql",
        "dataVolume": "20",
    },
    "requirements-existing-host": lambda: {
        "dependencies": "requirements",
        "requirementsFile": "requirements/production.txt",
        "settingsOverlay": "false",
        "domain": "blog.com",
        "letsencryptEmail": "o'brien+ops@example.com",
        "djangoEnv": ["FEATURE=on", "GREETING=hello $USER; `id`"],
        **_existing_host(),
    },
    "custom-clone": lambda: {
        "repository": "team/Blog.Site",
        "cloneUrl": "ssh://git@git.example.org:2222/team/blog.git",
        "cloneHostKeys": [f"[git.example.org]:2222 {ed25519_keypair()[1]}"],
        "wsgiApplication": "config.wsgi:app",
        "server": "asgi",
        "asgiApplication": "config.asgi:app",
        "acmeServer": "https://acme.example.org/directory",
        "sharedPaths": [],
        "hsts": "false",
        "fail2ban": "false",
        "offsiteSftpHost": "u123456.your-storagebox.de",
        "offsiteSftpPort": "23",
        "offsiteSftpUser": "u123456",
        "offsiteSftpHostKey": ed25519_keypair()[1],
        "offsiteSftpPath": "backups/blog.site",
        "backupSchedule": "Mon..Fri *-*-* 02:30:00",
    },
}


@pytest.fixture(scope="session", params=sorted(VARIANTS), ids=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> Settings:
    return make_settings(**VARIANTS[request.param]())


def find_tool(name: str, *, venv: bool = False) -> str | None:
    """The tool's path: the project's venv first when venv=True, then PATH plus the sbin dirs
    (nginx lives in /usr/sbin, which a non-root PATH may lack)."""
    if venv:
        candidate = Path(sys.prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        package = APT_PACKAGES.get(name, name)
        pytest.skip(f"{name} is not installed: apt-get install -y {package}")
    return path


@pytest.fixture(scope="session")
def shellcheck() -> str:
    return require_tool("shellcheck")


@pytest.fixture(scope="session")
def nginx() -> str:
    return require_tool("nginx")


@contextlib.contextmanager
def short_temporary_directory() -> Iterator[Path]:
    """A temporary directory with a short path: unix socket paths are limited to 107 bytes and
    pytest's tmp_path can be long."""
    path = Path(tempfile.mkdtemp(prefix="dvps-render-", dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    with short_temporary_directory() as path:
        yield path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll check() until it returns something truthy; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:
            last_error = error
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what}{detail}")


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Stop a process this suite started, by its PID; kill it if it does not stop in time."""
    if process.poll() is not None:
        return
    os.kill(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def relocate(text: str, mapping: dict[str, str]) -> str:
    """Rewrite absolute paths in rendered text so it can run without root-owned locations (the
    program's paths are fixed: /home/<user>/<app>, /var/log/..., /etc/letsencrypt/...). Every
    old path must occur, so a template change cannot make the rewrite silently do nothing."""
    for old, new in mapping.items():
        assert old in text, f"{old!r} is not in the rendered text; the test's path rewrite is stale"
        text = text.replace(old, new)
    return text
