"""The GitHub Actions deploy workflow: valid YAML, valid against GitHub's workflow schema
(check-jsonschema's bundled copy, offline), triggered by the configured branch, and deploying by
running exactly the deploy script over SSH with the pinned host key."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import render
from components.settings import Settings
from tests.render.conftest import make_settings

BRANCHES = ("main", "release/2025.1", "2024", "1.0")


def _load(text: str) -> dict:
    data = yaml.safe_load(text)
    # YAML 1.1 (PyYAML) reads the key `on` as True; GitHub reads it as "on".
    if True in data:
        data["on"] = data.pop(True)
    return data


def _schema_errors(files: list[Path]) -> dict[str, list[str]]:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed: add it to the dev dependencies (uv add --dev check-jsonschema)")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", "-o", "json",
         *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert not report["parse_errors"], report["parse_errors"]
    errors: dict[str, list[str]] = {str(path): [] for path in files}
    for error in report["errors"]:
        deepest = error.get("best_deep_match") or error
        errors[error["filename"]].append(f"{deepest['path']}: {deepest['message']}")
    return errors


STACKS = ("prod", "staging.eu-1", "2024", "1.0", "Prod_2")


def _stack(name: str, **overrides: object) -> Settings:
    return dataclasses.replace(make_settings(**overrides), github_environment=name)


def test_workflow_validates_against_githubs_schema(tmp_path: Path) -> None:
    files = {}
    for branch in BRANCHES:
        path = tmp_path / f"deploy-{branch.replace('/', '_')}.yml"
        path.write_text(render.deploy_workflow(make_settings(branch=branch)))
        files[branch] = path
    for stack in STACKS:
        path = tmp_path / f"deploy-stack-{stack}.yml"
        path.write_text(render.deploy_workflow(_stack(stack)))
        files[f"stack {stack}"] = path
    # Control: the same check rejects a job without runs-on.
    broken = tmp_path / "broken.yml"
    broken.write_text(render.deploy_workflow(make_settings()).replace("    runs-on: ubuntu-24.04\n", ""))
    errors = _schema_errors([*files.values(), broken])
    assert errors[str(broken)], "the schema check does not notice a missing runs-on"
    assert {branch: errors[str(path)] for branch, path in files.items()} == {branch: [] for branch in files}


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_has_its_own_file_environment_and_concurrency_group(stack: str) -> None:
    """The environment name reaches the YAML as a string (2024 and 1.0 are not numbers there)."""
    s = _stack(stack, branch="release/2025.1")
    data = _load(render.deploy_workflow(s))
    assert s.workflow_path == f".github/workflows/deploy-{stack}.yml"
    assert data["name"] == f"Deploy {stack}"
    assert data["jobs"]["deploy"]["environment"]["name"] == stack
    assert data["concurrency"]["group"] == f"deploy-{stack}"
    assert data["on"]["push"]["branches"] == ["release/2025.1"]


@pytest.mark.parametrize("branch", BRANCHES)
def test_workflow_runs_on_push_to_the_branch_and_runs_the_deploy_script(branch: str) -> None:
    s = make_settings(branch=branch, appName="shop", user="shopper")
    text = render.deploy_workflow(s)
    data = _load(text)
    assert data["on"]["push"]["branches"] == [branch]
    assert "workflow_dispatch" in data["on"]
    (job,) = data["jobs"].values()
    assert job["environment"]["url"] == f"https://{s.domain}"
    trust, deploy = job["steps"]
    # The stack's environment holds the secrets: the job names it (the stack's name), so it sees that
    # environment's and no other stack's.
    assert job["environment"]["name"] == s.github_environment == "prod"
    assert data["concurrency"]["group"] == "deploy-prod"
    assert trust["env"] == {
        "KNOWN_HOSTS": "${{ secrets.SSH_KNOWN_HOSTS }}",
        "SSH_KEY": "${{ secrets.SSH_KEY }}",
    }
    assert deploy["env"] == {
        "SSH_HOST": "${{ secrets.SSH_HOST }}",
        "SSH_USERNAME": "${{ secrets.SSH_USERNAME }}",
    }
    command = deploy["run"].split()
    assert command[0] == "ssh"
    assert command[-1] == s.deploy_script == "/opt/django-vps/shop/bin/deploy.sh"
    assert command[-2] == '"$SSH_USERNAME@$SSH_HOST"'
    options = {command[i + 1] for i, word in enumerate(command) if word == "-o"}
    assert {"StrictHostKeyChecking=yes", "UserKnownHostsFile=~/.ssh/known_hosts", "IdentitiesOnly=yes"} <= options
    assert data["permissions"] == {"contents": "read"}


def test_workflow_shell_steps_are_shellcheck_clean(shellcheck: str, tmp_path: Path) -> None:
    """GitHub runs `run:` with bash -e -o pipefail; each block as such a script is clean."""
    data = _load(render.deploy_workflow(make_settings()))
    scripts = []
    for index, step in enumerate(data["jobs"]["deploy"]["steps"]):
        path = tmp_path / f"step{index}.sh"
        path.write_text("#!/bin/bash\nset -eo pipefail\n" + step["run"] + "\n")
        scripts.append(path)
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
