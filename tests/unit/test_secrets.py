"""Secrets: where each one goes (only secret inputs and stdin), where it never goes (scripts, plain
inputs, exports), and the inputs (script, stdin) whose change re-runs a step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from components.host import DATA_VOLUME_ONLY, OFFSITE_ONLY, POSTGRESQL_ONLY, STEP_NEEDS, STEPS, TEARDOWN_AFTER
from components.settings import load_settings
from components.site import DjangoSite
from tests.unit.conftest import (
    GENERATED_SECRET_KEY_PREFIX,
    PROD_CONFIG,
    Recorded,
    StackRun,
    all_strings,
    is_secret,
    plain_strings,
    unwrap,
)
from tests.unit.keys import ed25519_pair, ed25519_public

GITHUB_TOKEN = "ghp_SeCrEtGiThUbToKeN0123456789abcdefABCD"
DJANGO_SECRET_KEY = "dj-SeCrEt-KeY-" + "q7Zp" * 10
SECRET_ENV = {"EMAIL_HOST_PASSWORD": "pw-SeCrEt-VaLuE-1", "API_TOKEN": "tok-SeCrEt-VaLuE-2"}
SECRETS = {
    "github:token": GITHUB_TOKEN,
    "djangoSecretKey": DJANGO_SECRET_KEY,
    "djangoSecretEnv": json.dumps([f"{k}={v}" for k, v in SECRET_ENV.items()]),
}
SECRET_KEYS = ("github:token", "djangoSecretKey", "djangoSecretEnv")
EXISTING_LOGIN_KEY = ed25519_pair("existing-login")[0]
EXISTING = {
    "existingHost": "203.0.113.10",
    "existingHostKey": ed25519_public("existing-host"),
    "existingHostPrivateKey": EXISTING_LOGIN_KEY,
    "serverType": None,
    "location": None,
    "backups": None,
}
STDIN_STEPS = {"app-user", "env"}


def key_fragments(pem: str) -> list[str]:
    """The base64 body lines of a PEM key: any one of them in clear text is a leak. (The first line of
    an OpenSSH key, "openssh-key-v1" and the cipher names, is the same in every key: left out.)"""
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return lines[1:] if "OPENSSH" in pem else lines


def needles(run: StackRun, *plain_secrets: str) -> dict[str, list[str]]:
    """Every secret of the run, by name, as the strings that must not appear in clear text."""
    found = {f"secret-{i}": [value] for i, value in enumerate(plain_secrets)}
    for r in run.mocks.of_type("tls:index/privateKey:PrivateKey"):
        found[f"{r.name}.openssh"] = key_fragments(r.outputs["privateKeyOpenssh"])
        found[f"{r.name}.pem"] = key_fragments(r.outputs["privateKeyPem"])
    for r in run.mocks.of_type("random:index/randomPassword:RandomPassword"):
        found[r.name] = [r.outputs["result"]]
    return found


def leaks(strings: Iterator[str], secrets: dict[str, list[str]]) -> set[str]:
    texts = list(strings)
    return {name for name, fragments in secrets.items() for f in fragments if any(f in t for t in texts)}


def check_no_leaks(run: StackRun, secrets: dict[str, list[str]], secret_exports: frozenset[str] = frozenset()) -> None:
    """No secret in a command's scripts, a clear input or an export, but in `secret_exports` (the
    outputs exported as secrets, e.g. a copy the user keeps), which are exactly those."""
    for r in run.mocks.commands():
        for script in ("create", "update", "delete"):
            assert not leaks(all_strings(r.inputs.get(script)), secrets), f"{r.name}.{script} holds a secret"
    for r in run.resources:
        assert not leaks(plain_strings(r.inputs), secrets), f"{r.name} has a secret in a non-secret input"
    clear = [run.exports[k] for k in run.exports if k != "__secret__" and k not in secret_exports]
    assert not leaks(all_strings(clear), secrets)
    assert run.exports.get("__secret__", set()) == set(secret_exports)


def used_secretly(run: StackRun, fragments: list[str]) -> list[str]:
    """Names of the resources that receive the secret (inside a secret input)."""
    return [r.name for r in run.resources if any(f in s for f in fragments for s in all_strings(r.inputs))]


def test_no_secret_in_scripts_plain_inputs_or_exports(run_stack) -> None:
    run = run_stack(secret_keys=SECRET_KEYS, **SECRETS)
    secrets = needles(run, GITHUB_TOKEN, DJANGO_SECRET_KEY, *SECRET_ENV.values())
    check_no_leaks(run, secrets)
    # Not vacuous: each secret that the stack uses does reach a resource, inside a secret input.
    assert used_secretly(run, [GITHUB_TOKEN]) == ["blog-github-provider"]
    assert used_secretly(run, [DJANGO_SECRET_KEY]) == ["blog-host-env"]
    for value in SECRET_ENV.values():
        assert used_secretly(run, [value]) == ["blog-host-env"]
    assert set(used_secretly(run, secrets["blog-server-host-key.openssh"])) == {"blog-server-server"}
    assert set(used_secretly(run, secrets["blog-server-provisioning-key.openssh"])) == {
        f"blog-host-{step}" for step in STEP_NEEDS if step not in POSTGRESQL_ONLY | OFFSITE_ONLY | DATA_VOLUME_ONLY
    }
    assert used_secretly(run, secrets["blog-github-ci-key.openssh"]) == ["blog-github-ssh-key"]
    assert used_secretly(run, secrets["blog-github-deploy-key.openssh"]) == ["blog-host-app-user"]
    assert not run.mocks.of_type("random:index/randomPassword:RandomPassword")  # djangoSecretKey given


def test_generated_secret_key_stays_secret(run_stack) -> None:
    run = run_stack()
    (password,) = run.mocks.of_type("random:index/randomPassword:RandomPassword")
    generated = password.outputs["result"]
    assert generated.startswith(GENERATED_SECRET_KEY_PREFIX) and len(generated) == 64
    check_no_leaks(run, needles(run))
    assert used_secretly(run, [generated]) == ["blog-host-env"]
    assert f"SECRET_KEY={generated}\n" in run.mocks.named("blog-host-env").plain("stdin")


def test_existing_host_private_key_stays_secret(run_stack) -> None:
    run = run_stack(secret_keys=("existingHostPrivateKey",), **EXISTING)
    secrets = needles(run)
    secrets["existingHostPrivateKey"] = key_fragments(EXISTING_LOGIN_KEY)
    check_no_leaks(run, secrets)
    commands = {f"blog-host-{step}" for step in STEPS} | {f"blog-host-teardown-{part}" for part in TEARDOWN_AFTER}
    assert set(used_secretly(run, secrets["existingHostPrivateKey"])) == commands


def test_steps_with_secrets_take_them_on_stdin_and_log_nothing(run_stack) -> None:
    run = run_stack(secret_keys=SECRET_KEYS, **SECRETS)
    for r in run.mocks.commands():
        role = r.name.removeprefix("blog-host-")
        if role in STDIN_STEPS:
            assert is_secret(r.inputs["stdin"]), role
            assert r.inputs["logging"] == "none", role
            assert {"stdin", "stdout", "stderr"} <= set(r.registration.additional_secret_outputs), role
        else:
            assert "stdin" not in r.inputs, role
            assert r.inputs["logging"] == "stdoutAndStderr", role
        # The connection holds the login key: the whole input is secret.
        assert is_secret(r.inputs["connection"]), role
    env = run.mocks.named("blog-host-env").plain("stdin").splitlines()
    assert f"SECRET_KEY={DJANGO_SECRET_KEY}" in env
    for name, value in SECRET_ENV.items():
        assert f"{name}={value}" in env
    assert "ALLOWED_HOSTS=blog.com" in env and "DEBUG=" in env
    deploy_key = run.mocks.tls_key("blog-github-deploy-key")["privateKeyOpenssh"]
    assert run.mocks.named("blog-host-app-user").plain("stdin") == deploy_key


def test_secret_inputs_are_marked_secret(run_stack) -> None:
    run = run_stack(secret_keys=SECRET_KEYS, **SECRETS)
    secrets = run.mocks.of_type("github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret")
    assert len(secrets) == 4
    for r in secrets:
        assert is_secret(r.inputs["value"]), r.inputs["secretName"]  # even the host and user name
    provider = run.mocks.named("blog-github-provider")
    assert is_secret(provider.inputs["token"]) and unwrap(provider.inputs["token"]) == GITHUB_TOKEN
    server = run.mocks.named("blog-server-server", "hcloud:index/server:Server")
    assert is_secret(server.inputs["userData"])
    assert "userData" in server.registration.additional_secret_outputs


def test_github_token_from_the_environment_when_not_configured(run_stack) -> None:
    run = run_stack(**{"github:token": None})
    assert "token" not in run.mocks.named("blog-github-provider").inputs


def step_problems(r: Recorded) -> list[str]:
    """What is wrong with a host step's inputs: triggers (a change would replace the step), a
    stdin in clear text, a step with a stdin that logs, or its outputs not secret."""
    role = r.name.removeprefix("blog-host-")
    problems = [f"{role} has triggers"] if "triggers" in r.inputs else []
    if role in STDIN_STEPS:
        if not is_secret(r.inputs.get("stdin")):
            problems.append(f"{role}'s stdin is in clear text")
        if r.inputs.get("logging") != "none":
            problems.append(f"{role} logs {r.inputs.get('logging')}")
        if not {"stdout", "stderr", "stdin"} <= set(r.registration.additional_secret_outputs):
            problems.append(f"{role}'s outputs are not all secret")
    else:
        if "stdin" in r.inputs:
            problems.append(f"{role} has a stdin")
        if r.inputs.get("logging") != "stdoutAndStderr":
            problems.append(f"{role} logs {r.inputs.get('logging')}")
    return problems


def test_steps_have_no_triggers_and_stdin_steps_log_nothing(run_stack) -> None:
    """A changed script or stdin is an update of the step: no triggers (they would replace it), and
    the stdin itself is the secret input, on a step that logs nothing."""
    run = run_stack(secret_keys=SECRET_KEYS, **SECRETS)
    assert {r.name.removeprefix("blog-host-") for r in run.mocks.commands()} >= STDIN_STEPS
    assert [problem for r in run.mocks.commands() for problem in step_problems(r)] == []


def test_step_check_rejects_a_leaky_step(run_stack) -> None:
    """Control: the check above on the same steps, each tampered with one way."""
    run = run_stack(secret_keys=SECRET_KEYS, **SECRETS)
    env, nginx = run.mocks.named("blog-host-env"), run.mocks.named("blog-host-nginx")
    tampered = {
        "triggers": replace(nginx, inputs={**nginx.inputs, "triggers": ["0" * 64]}),
        "clear stdin": replace(env, inputs={**env.inputs, "stdin": env.plain("stdin")}),
        "logging": replace(env, inputs={**env.inputs, "logging": "stdoutAndStderr"}),
        "outputs": replace(env, registration=replace(env.registration, additional_secret_outputs=("stdin",))),
    }
    assert {case: step_problems(r) for case, r in tampered.items()} == {
        "triggers": ["nginx has triggers"],
        "clear stdin": ["env's stdin is in clear text"],
        "logging": ["env logs stdoutAndStderr"],
        "outputs": ["env's outputs are not all secret"],
    }


# A step re-runs exactly when what it installs changes: the engine updates a Command whose inputs
# differ (its script or its stdin) and leaves the others alone.


def inputs_by_step(run: StackRun) -> dict[str, tuple[object, object]]:
    return {
        r.name.removeprefix("blog-host-"): (r.plain("create"), r.plain("stdin") if "stdin" in r.inputs else None)
        for r in run.mocks.commands()
    }


def changed_steps(before: StackRun, after: StackRun) -> set[str]:
    a, b = inputs_by_step(before), inputs_by_step(after)
    # a created server's: admin-keys too
    assert set(a) == set(b) == set(STEP_NEEDS) - POSTGRESQL_ONLY - OFFSITE_ONLY - DATA_VOLUME_ONLY
    return {step for step in a if a[step] != b[step]}


def test_same_config_same_inputs(run_stack) -> None:
    assert changed_steps(run_stack(), run_stack()) == set()


@pytest.mark.parametrize(
    ("override", "steps"),
    [
        ({"clientMaxBodySize": "25M"}, {"nginx", "certbot", "verify"}),
        ({"djangoSecretEnv": json.dumps(["API_TOKEN=rotated"])}, {"env"}),
        ({"logLevel": "WARNING"}, {"env"}),
        # (backup.sh runs the release check too, when it restores)
        ({"wsgiApplication": "config.wsgi:application"}, {"deploy", "verify", "backup"}),
        ({"letsencryptEmail": "ops@blog.com"}, {"certbot", "verify"}),
        ({"adminSshKeys": json.dumps([ed25519_public("laptop", "me@laptop")])}, {"admin-keys"}),
    ],
)
def test_a_change_reruns_only_the_steps_it_concerns(run_stack, override: dict[str, str], steps: set[str]) -> None:
    base = {"djangoSecretEnv": json.dumps(["API_TOKEN=first"])}
    before = run_stack(secret_keys=("djangoSecretEnv",), **base)
    after = run_stack(secret_keys=("djangoSecretEnv",), **{**base, **override})
    assert changed_steps(before, after) == steps


def test_client_max_body_size_reaches_nginx_and_certbot(run_stack) -> None:
    run = run_stack(clientMaxBodySize="25M")
    for role, r in {r.name.removeprefix("blog-host-"): r for r in run.mocks.commands()}.items():
        assert ("client_max_body_size 25M;" in r.plain("create")) is (role in {"nginx", "certbot"}), role


# Built directly: the components' Outputs carry the secret flag.

DIRECT_CONFIG = {
    **PROD_CONFIG,
    "django-vps:djangoSecretKey": DJANGO_SECRET_KEY,
    "django-vps:djangoSecretEnv": SECRETS["djangoSecretEnv"],
    "github:token": GITHUB_TOKEN,
}


@pulumi.runtime.test
def test_component_outputs_that_carry_secrets_are_secret(direct_mocks) -> None:
    settings = load_settings(DIRECT_CONFIG.get)
    site = DjangoSite("blog", settings)
    steps = site.host.steps
    expected: dict[str, tuple[pulumi.Output[Any], bool]] = {
        "env.stdin": (steps["env"].stdin, True),
        "app-user.stdin": (steps["app-user"].stdin, True),
        "connection.private_key": (site.server.connection.private_key, True),
        "github.deploy_private_key": (site.github.deploy_private_key, True),
        "settings.django_secret_key": (settings.django_secret_key, True),
        "settings.github_token": (settings.github_token, True),
        **{f"settings.{name}": (value, True) for name, value in settings.django_secret_env},
        # Public values stay readable.
        "clone.create": (steps["clone"].create, False),
        "packages.create": (steps["packages"].create, False),
        "connection.host_key": (site.server.connection.host_key, False),
        "github.ci_public_key": (site.github.ci_public_key, False),
        **{f"export.{name}": (pulumi.Output.from_input(value), False) for name, value in site.outputs.items()},
    }
    flags = {name: pulumi.Output.from_input(output.is_secret()) for name, (output, _) in expected.items()}

    def check(actual: dict[str, bool]) -> None:
        wrong = {name for name, (_, secret) in expected.items() if actual[name] is not secret}
        assert not wrong, f"secret flag wrong on {sorted(wrong)}"

    return pulumi.Output.all(**flags).apply(check)


def test_offsite_key_and_password_reach_only_the_offsite_step_secretly(run_stack) -> None:
    run = run_stack(
        offsiteSftpHost="u1.your-storagebox.de",
        offsiteSftpUser="u1",
        offsiteSftpHostKey=ed25519_public("storage-box"),
    )
    secrets = needles(run)
    # The password is exported as a secret (a copy the user keeps): every other export is clear of it.
    check_no_leaks(run, secrets, secret_exports=frozenset({"offsiteRepositoryPassword"}))
    assert used_secretly(run, secrets["blog-offsite-password"]) == ["blog-host-offsite"]
    assert used_secretly(run, secrets["blog-offsite-key.openssh"]) == ["blog-host-offsite"]


def test_s3_keys_reach_only_the_offsite_step_secretly(run_stack) -> None:
    key_id, secret = "AKIAHETZNER0EXAMPLE1", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    run = run_stack(
        offsiteS3Endpoint="https://fsn1.your-objectstorage.com",
        offsiteS3Bucket="blog-backups",
        offsiteS3AccessKeyId=key_id,
        offsiteS3SecretAccessKey=secret,
    )
    secrets = needles(run, key_id, secret)
    check_no_leaks(run, secrets, secret_exports=frozenset({"offsiteRepositoryPassword"}))
    # The access key ID is handled as a secret too, though set in clear.
    assert used_secretly(run, [key_id]) == ["blog-host-offsite"]
    assert used_secretly(run, [secret]) == ["blog-host-offsite"]
