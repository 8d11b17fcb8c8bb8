"""Issue 11, finding 5: hostile values for every setting. Each value (quotes, $(), backticks, `;`,
newline, CR, U+2028, NUL, a leading '-', '..', very long, non-ASCII, and supervisor's and the
shell's expansions) goes in three ways (alone, after a good value, before one), and either

- is rejected: a SettingError, one line, naming the setting, never showing a secret; or
- renders inertly, proven with the real parsers of every file it reaches: `bash -n` of each script
  it changes, and each changed host step run in the stub sandbox, where the canary command the
  values call is a recorder that must stay silent; deploy.sh's settings read back by bash; the .env
  by python-decouple; cloud-init and the workflow by PyYAML (the document's shape and the value);
  the nginx sites by `nginx -t`; the supervisor program by supervisor's parser; the sudo rule by
  visudo and cvtsudoers; authorized_keys and known_hosts by ssh-keygen; gunicorn.conf.py by Python.

The last test prints, per setting, how many values were tried and how each ended.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from decouple import RepositoryEnv

from components import render, sshkeys
from components.settings import SettingError, Settings, _is_secret, declared_config, load_settings
from tests.render.catalog import VOLUME_DEVICE, scripts
from tests.render.conftest import BASE_CONFIG, CI_PUBLIC_KEY, ed25519_keypair, find_tool, require_tool
from tests.render.sandbox import Sandbox, sandboxed, sandboxed_security
from tests.support.runtime import django_vps_wsgi

CANARY = "dvps_canary"
HOSTILE = {
    "quotes": "a'b\"c",
    "command-substitution": f"$({CANARY})",
    "backticks": f"`{CANARY}`",
    "semicolon": f";{CANARY};",
    "newline": f"\n{CANARY}\n",
    "carriage-return": "\rDEBUG=True",
    "u2028": f"\u2028{CANARY}: x",
    "nul": f"\x00{CANARY}",
    "leading-dash": f"-{CANARY}",
    "dot-dot": "../../etc",
    "very-long": "a" * 10_000,
    "non-ascii": "ünï©ødé",
    "expansions": "%(ENV_HOME)s${IFS}*",
}
HOST_PRIVATE, HOST_PUBLIC = ed25519_keypair()
LOGIN_PRIVATE, _ = ed25519_keypair()
_, ADMIN_PUBLIC = ed25519_keypair()
_, CLONE_HOST_PUBLIC = ed25519_keypair()
_, PROVISIONING_PUBLIC = ed25519_keypair()
EXISTING = {"existingHost": "203.0.113.7", "existingHostKey": HOST_PUBLIC, "existingHostPrivateKey": LOGIN_PRIVATE}
# A good value of each setting, which the hostile ones are put before and after. Arrays: one item.
GOOD: dict[str, str] = {
    "domain": "blog.example.com",
    "repository": "sdelquin/blog",
    "branch": "main",
    "cloneUrl": "ssh://git@git.example.org:2222/team/blog.git",
    "cloneHostKeys": f"[git.example.org]:2222 {CLONE_HOST_PUBLIC}",
    "appName": "blog",
    "user": "blog",
    "wsgiApplication": "main.wsgi:application",
    "dependencies": "auto",
    "dependencyGroups": "prod",
    "dependencyExtras": "s3",
    "requirementsFile": "requirements/production.txt",
    "settingsOverlaySkip": "LOGGING",
    "gunicornWorkers": "2",
    "serverType": "cx23",
    "image": "debian-12",
    "location": "fsn1",
    "backups": "false",
    "dataVolume": "10",
    "dataVolumeId": "4711",
    "adminUser": "admin",
    "existingHost": EXISTING["existingHost"],
    "existingHostUser": "root",
    "existingHostKey": EXISTING["existingHostKey"],
    "existingHostPrivateKey": EXISTING["existingHostPrivateKey"],
    "adminSshKeys": f"{ADMIN_PUBLIC} me@laptop",
    "manageDns": "true",
    "dnsZone": "example.com",
    "createDnsZone": "false",
    "letsencryptEmail": "admin@example.com",
    "acmeServer": "https://acme.example.org/directory",
    "clientMaxBodySize": "10M",
    "logsDir": "/home/blog/blog/shared/logs",
    "logFilename": "blog.log",
    "logSize": "2",
    "logRotate": "3",
    "logLevel": "ERROR",
    "djangoEnv": "GREETING=hello",
    "djangoSecretEnv": "API_TOKEN=tok-secret",
    "djangoSecretKey": "k" * 40,
    "keepReleases": "5",
    "healthCheckPath": "/health/",
    "sharedPaths": "media",
    "hsts": "true",
    "hostFirewall": "true",
    "fail2ban": "true",
    "deployWorkflow": "true",
    "backupKeepDaily": "7",
    "backupKeepWeekly": "4",
    "offsiteS3Endpoint": "https://fsn1.your-objectstorage.com",
    "offsiteS3Bucket": "blog-backups",
    "offsiteS3Path": "backups/blog",
    "offsiteS3Region": "fsn1",
    "offsiteS3AccessKeyId": "AKIAHETZNER0EXAMPLE1",
    "offsiteS3SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
# The settings that exist only with existingHost (the rest are tried on a new Hetzner server).
EXISTING_HOST_SETTINGS = {"existingHost", "existingHostUser", "existingHostKey", "existingHostPrivateKey"}
NEEDS_CLONE_URL = {"cloneHostKeys"}
# The S3 settings are tried with good values of the others (each is refused alone: "set
# offsiteS3Endpoint too"), so a hostile one meets its own check and, accepted, reaches the S3
# backup.sh and off-site step.
S3_SETTINGS = {key for key in GOOD if key.startswith("offsiteS3")}

# A value may be refused under the setting it derives (with the value and why): a repository name
# gives appName; a clone URL on another host needs cloneHostKeys.
DERIVED = {"repository": ("appName",), "cloneUrl": ("cloneHostKeys",)}

RESULTS: dict[str, Counter] = {}


def _good(key: str) -> str:
    if key in GOOD:
        return GOOD[key]
    if declared_config()[key]["type"] == "object" or declared_config()[key].get("items", {}).get("type") == "object":
        return "clearsessions"  # the command that _config puts in the process or schedule entry
    default = declared_config()[key].get("default", "")
    if isinstance(default, bool):
        return str(default).lower()
    return default[0] if isinstance(default, list) and default else str(default)


def _cases(key: str) -> list[tuple[str, str]]:
    good = _good(key)
    cases = []
    for name, hostile in HOSTILE.items():
        for where, value in (("alone", hostile), ("after", good + hostile), ("before", hostile + good)):
            cases.append((f"{name}-{where}", value))
    return cases


def _config(key: str, value: str) -> dict[str, str]:
    config = dict(BASE_CONFIG)
    if key in EXISTING_HOST_SETTINGS:
        config.update(EXISTING)
    if key in NEEDS_CLONE_URL:
        config["cloneUrl"] = GOOD["cloneUrl"]
    if key in S3_SETTINGS:
        config.update({other: GOOD[other] for other in S3_SETTINGS})
    declared = declared_config()[key]
    if declared["type"] == "object":  # processes: the value as a command (JSON, as the CLI stores it)
        config[key] = json.dumps({"worker": value})
    elif declared.get("items", {}).get("type") == "object":  # schedule: the value as a command
        config[key] = json.dumps([{"name": "sessions", "on": "daily", "command": value}])
    elif declared["type"] == "array":
        config[key] = json.dumps([value])
    else:
        config[key] = value
    return config


def _load(config: dict[str, str]) -> Settings:
    return load_settings(lambda name: config.get(name.removeprefix("django-vps:")) if name.startswith("django-vps:")
                         else None, stack="prod")  # fmt: skip


def _rejected_well(key: str, value: str, error: pulumi.RunError) -> None:
    message = str(error)
    assert "\n" not in message and "\r" not in message and "\u2028" not in message, f"{key}: not one line: {message!r}"
    named = [other for other in (key, *DERIVED.get(key, ())) if message.startswith(f"django-vps:{other}: ")]
    assert named, f"{key}={value[:40]!r} named another setting: {message}"
    if _is_secret(key):
        for part in (value, value.partition("=")[2]):
            assert len(part) < 6 or part not in message, f"{key}: the secret is in the message: {message}"


# --- what an accepted value must survive ------------------------------------------------------


def _secrets(config: dict[str, str], s: Settings) -> tuple[str, list[tuple[str, str]]]:
    """The plain secret values, as settings.py read them (they are Outputs in Settings)."""
    secret_key = config.get("djangoSecretKey", "").strip() or "g" * 64
    items = json.loads(config.get("djangoSecretEnv", "[]"))
    pairs = [(item.strip().partition("=")[0].strip(), item.strip().partition("=")[2]) for item in items]
    assert [name for name, _ in pairs] == [name for name, _ in s.django_secret_env]
    return secret_key, pairs


def _files(s: Settings, secret_key: str, secret_env: list[tuple[str, str]]) -> dict[str, str]:
    files = {
        **scripts(s),
        "gunicorn.conf.py": render.gunicorn_conf(s),
        "supervisor_program": render.supervisor_program(s),
        "sudoers": render.sudoers(s),
        "nginx_site[http]": render.nginx_site(s, tls=False),
        "nginx_site[https]": render.nginx_site(s, tls=True),
        "django_env": render.django_env(s, secret_key, secret_env),
        "deploy_workflow": render.deploy_workflow(s),
        "authorized_keys": render.authorized_keys(s, CI_PUBLIC_KEY),
        "known_hosts": render.known_hosts_clone(s),
    }
    if s.server is not None:
        files["cloud_init"] = render.cloud_init(
            HOST_PRIVATE,
            HOST_PUBLIC,
            [PROVISIONING_PUBLIC, *s.server.admin_ssh_keys],
            s.server.admin_user,
            data_device=VOLUME_DEVICE if s.server.data_volume else None,
        )
    return files


_BASELINES: dict[bool, dict[str, str]] = {}


def _baseline(existing: bool) -> dict[str, str]:
    if existing not in _BASELINES:
        config = {**BASE_CONFIG, **(EXISTING if existing else {})}
        s = _load(config)
        _BASELINES[existing] = _files(s, *_secrets(config, s))
    return _BASELINES[existing]


STEPS_RUN_IN_THE_SANDBOX = {
    "app_user_step": lambda s: (render.app_user_step(s, CI_PUBLIC_KEY), "deploy key\n"),
    "clone_step": lambda s: (render.clone_step(s), ""),
    "env_step": lambda s: (render.env_step(s), "X=1\n"),
    "deploy_step": lambda s: (render.deploy_step(s), ""),
    "supervisor_step": lambda s: (render.supervisor_step(s), ""),
    "nginx_step": lambda s: (sandboxed(render.nginx_step(s), s.domain), ""),
    "certbot_step": lambda s: (sandboxed(render.certbot_step(s), s.domain), ""),
    "security_step": lambda s: (sandboxed_security(render.security_step(s)), ""),
    **{
        f"teardown_step[{part}]": (lambda s, part=part: (render.teardown_step(s, part), ""))
        for part in ("nginx", "supervisor", "app-user", "security")
    },
}


def _inert(s: Settings, config: dict[str, str], tmp_path: Path) -> list[str]:
    """Every check an accepted value's files pass; the names of the parsers that read them."""
    secret_key, secret_env = _secrets(config, s)
    files = _files(s, secret_key, secret_env)
    baseline = _baseline(s.existing_host is not None)
    changed = {name for name, text in files.items() if baseline.get(name) != text}
    parsers = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in sorted(changed & set(scripts(s))):
        path = tmp_path / f"{name.replace('[', '-').replace(']', '')}.sh"
        path.write_text(files[name])
        check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, f"bash -n {name}: {check.stderr}"
        parsers.append("bash -n")
        if name in STEPS_RUN_IN_THE_SANDBOX:
            sandbox = Sandbox(tmp_path / f"sandbox-{name}", record=(CANARY, "git", "awk"))
            script, stdin = STEPS_RUN_IN_THE_SANDBOX[name](s)
            result = sandbox.run(script, stdin=stdin, check=False)
            assert sandbox.calls(CANARY) == [], f"{name} ran the value as a command"
            assert result.returncode == 0, f"{name} failed in the sandbox: {result.stderr}"
            parsers.append("sandbox")
    if "deploy.sh" in changed:
        parsers.append(_deploy_settings_read_back(s, files["deploy.sh"]))
    if "django_env" in changed or secret_env or config.get("djangoSecretKey"):
        parsers.append(_env_read_back(s, files["django_env"], secret_key, secret_env, tmp_path))
    if "cloud_init" in changed:
        parsers.append(_cloud_init_read_back(s, files["cloud_init"]))
    if "deploy_workflow" in changed:
        parsers.append(_workflow_read_back(s, files["deploy_workflow"]))
    if changed & {"nginx_site[http]", "nginx_site[https]"}:
        parsers.append(_nginx_t(s, tmp_path))
    if "supervisor_program" in changed:
        parsers.append(_supervisor_read_back(s, files["supervisor_program"]))
    if "sudoers" in changed:
        parsers.append(_sudoers_read_back(s, files["sudoers"], tmp_path))
    if "authorized_keys" in changed or "known_hosts" in changed:
        parsers.append(_ssh_keygen(s, files, tmp_path))
    if "gunicorn.conf.py" in changed:
        namespace: dict[str, Any] = {}
        exec(compile(files["gunicorn.conf.py"], "gunicorn.conf.py", "exec"), namespace)
        assert isinstance(namespace["workers"], int)
        parsers.append("python")
    return parsers


def _deploy_settings_read_back(s: Settings, text: str) -> str:
    block = text.split("\nstep() {", 1)[0]
    probe = block + '\nprintf "%s\\n" "$app" "$branch" "$domain" "$health_path" "$wsgi_application"'
    probe += ' "$requirements_file" "$overlay_skip"'
    probe += '\nprintf "%s\\n" "${shared_paths[@]}" "${dependency_groups[@]}" "${dependency_extras[@]}"\n'
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True, env={"PATH": "/bin"})
    assert result.stdout.splitlines() == [s.app_name, s.branch, s.domain, s.health_check_path, s.wsgi_application,
                                          s.requirements_file, ",".join(s.settings_overlay_skip), *s.shared_paths,
                                          *s.dependency_groups, *s.dependency_extras], result.stdout  # fmt: skip
    return "bash (deploy.sh settings)"


def _env_read_back(s: Settings, text: str, secret_key: str, secret_env: list[tuple[str, str]], tmp_path: Path) -> str:
    path = tmp_path / ".env"
    path.write_bytes(text.encode())
    expected = {
        "SECRET_KEY": secret_key, "DEBUG": "", "ALLOWED_HOSTS": s.domain,
        "CSRF_TRUSTED_ORIGINS": f"https://{s.domain}", "LOGS_DIR": s.logs.directory,
        "LOG_FILENAME": s.logs.filename, "LOG_SIZE": str(s.logs.size_mb), "LOG_ROTATE": str(s.logs.rotate),
        "LOG_LEVEL": s.logs.level, "DATABASE_URL": s.database_url, **dict(s.django_env), **dict(secret_env),
    }  # fmt: skip
    assert RepositoryEnv(str(path)).data == expected
    # What gunicorn, the release check and management commands put in the process environment.
    assert django_vps_wsgi.read_env_file(path) == expected
    return "python-decouple, django_vps_wsgi"


def _cloud_init_read_back(s: Settings, text: str) -> str:
    assert s.server is not None
    data = yaml.safe_load(text)
    assert set(data) == {"ssh_deletekeys", "ssh_keys", "disable_root", "ssh_pwauth", "users", "package_update"}
    (user,) = data["users"]
    assert user["name"] == s.server.admin_user and user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert user["ssh_authorized_keys"] == [PROVISIONING_PUBLIC, *s.server.admin_ssh_keys]
    for key in user["ssh_authorized_keys"]:
        sshkeys.public_key(key)
    return "yaml (cloud-init)"


def _workflow_read_back(s: Settings, text: str) -> str:
    data = yaml.safe_load(text)
    on = data.get("on", data.get(True))
    assert on["push"]["branches"] == [s.branch]
    assert data["jobs"]["deploy"]["steps"][-1]["run"].split()[-1] == s.deploy_script
    return "yaml (workflow)"


def _nginx_t(s: Settings, tmp_path: Path) -> str:
    from tests.render.test_nginx import NginxPrefix, _nginx_test

    nginx = find_tool("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed: apt-get install -y nginx")
    # The site's unix socket lives under the prefix and a socket path has 107 bytes at most: pytest's
    # tmp_path for this test (longer still under pytest-xdist, .../popen-gw3/...) leaves too few.
    with tempfile.TemporaryDirectory(prefix="hostile-nginx-") as short:
        for tls in (False, True):
            prefix = Path(short) / f"nginx-{tls}"
            root = NginxPrefix(prefix, s)
            result = _nginx_test(nginx, prefix, root.install(render.nginx_site(s, tls=tls), tls=tls))
            assert result.returncode == 0, result.stderr
    return "nginx -t"


def _supervisor_read_back(s: Settings, text: str) -> str:
    from tests.render.test_supervisor import _program

    name, process = _program(s, text)
    assert (name, process.command, process.directory) == (s.app_name, s.run_script, s.current_dir)
    assert process.environment == {"HOME": s.home, "USER": s.user}
    return "supervisor"


def _sudoers_read_back(s: Settings, text: str, tmp_path: Path) -> str:
    rule = tmp_path / "rule"
    rule.write_text(text)
    assert subprocess.run([require_tool("visudo"), "-cqf", str(rule)], check=False).returncode == 0
    parsed = subprocess.run([require_tool("cvtsudoers"), "-f", "json", str(rule)], capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    assert re.findall(r'"command": "([^"]*)"', parsed) == [" ".join(argv) for argv in render.sudo_commands(s)]
    return "visudo + cvtsudoers"


def _ssh_keygen(s: Settings, files: dict[str, str], tmp_path: Path) -> str:
    keygen = require_tool("ssh-keygen")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(files["authorized_keys"])
    listed = subprocess.run([keygen, "-l", "-f", str(authorized)], capture_output=True, text=True, check=True)
    assert len(listed.stdout.splitlines()) == 1
    known = tmp_path / "known_hosts"
    known.write_text(files["known_hosts"])
    assert len(files["known_hosts"].splitlines()) == len(s.clone_host_keys)
    for line in s.clone_host_keys:
        host = line.split(" ", 1)[0].split(",")[0]
        found = subprocess.run([keygen, "-F", host, "-f", str(known)], capture_output=True, check=False)
        assert found.returncode == 0, host
    return "ssh-keygen"


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(declared_config()))
def test_a_hostile_value_is_rejected_in_one_line_or_renders_inertly(key: str, tmp_path: Path) -> None:
    results: Counter = Counter()
    for case, value in _cases(key):
        config = _config(key, value)
        try:
            s = _load(config)
        except SettingError as error:
            _rejected_well(key, value, error)
            results["rejected"] += 1
            continue
        parsers = _inert(s, config, tmp_path / case)
        results["inert"] += 1
        for parser in set(parsers):
            results[f"read by {parser}"] += 1
    RESULTS[key] = results
    assert results["rejected"] + results["inert"] == len(HOSTILE) * 3


def test_zz_how_each_hostile_value_ended(capsys: pytest.CaptureFixture[str]) -> None:
    """The table of the runs above (run with them: alone it has nothing to show)."""
    if not RESULTS:
        return
    with capsys.disabled():
        print(f"\nhostile values per setting: {len(HOSTILE)} values x 3 placements = {len(HOSTILE) * 3} tried")
        for key in sorted(RESULTS):
            counts = RESULTS[key]
            readers = ", ".join(f"{k.removeprefix('read by ')} {v}" for k, v in sorted(counts.items())
                                if k.startswith("read by"))  # fmt: skip
            print(f"  {key:24} rejected {counts['rejected']:2}  inert {counts['inert']:2}  {readers}")
    assert set(RESULTS) == set(declared_config())
