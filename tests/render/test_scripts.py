"""Every rendered bash script parses (`bash -n`) and is clean under shellcheck at its default
severity (style), across settings variants; and the files the steps embed as here-documents come
out exactly as render.py renders them on their own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components import render
from tests.render.catalog import SCRIPT_NAMES, heredocs, scripts
from tests.render.conftest import CI_PUBLIC_KEY, VARIANTS, make_settings


@pytest.fixture(scope="session")
def rendered_scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """All scripts of all variants, written once (settings with random keys are built once too)."""
    directory = tmp_path_factory.mktemp("scripts")
    paths = {}
    for variant_id, overrides in VARIANTS.items():
        for name, text in scripts(make_settings(**overrides())).items():
            path = directory / f"{variant_id}__{name.replace('[', '-').replace(']', '')}.sh"
            path.write_text(text)
            paths[variant_id, name] = path
    return paths


@pytest.fixture(scope="session")
def shellcheck_findings(shellcheck: str, rendered_scripts: dict[tuple[str, str], Path]) -> dict[Path, list[dict]]:
    """A few shellcheck runs in parallel over all the files (fast); findings per file."""
    paths = [str(path) for path in rendered_scripts.values()]
    runs = [
        subprocess.Popen(
            [shellcheck, "--format=json1", "--severity=style", *paths[start :: len(VARIANTS)]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for start in range(len(VARIANTS))
    ]
    findings: dict[Path, list[dict]] = {path: [] for path in rendered_scripts.values()}
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode in (0, 1), f"shellcheck itself failed: {stderr}"
        for comment in json.loads(stdout)["comments"]:
            findings[Path(comment["file"])].append(comment)
    return findings


CASES = [(variant_id, name) for variant_id in sorted(VARIANTS) for name in SCRIPT_NAMES]


@pytest.mark.parametrize(("variant_id", "name"), CASES, ids=[f"{v}-{n}" for v, n in CASES])
def test_script_parses_and_is_shellcheck_clean(
    variant_id: str, name: str, rendered_scripts: dict, shellcheck_findings: dict
) -> None:
    path = rendered_scripts[variant_id, name]
    text = path.read_text()
    assert text.startswith("#!/bin/bash\n"), "every script names its interpreter"
    assert "set -euo pipefail\n" in text, "every script stops at the first failure"
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    problems = [
        f"line {c['line']}: SC{c['code']} ({c['level']}) {c['message']}\n    {text.splitlines()[c['line'] - 1]}"
        for c in shellcheck_findings[path]
    ]
    assert not problems, "shellcheck:\n" + "\n".join(problems)


def test_shellcheck_does_report_problems(shellcheck: str, tmp_path: Path) -> None:
    """Control: the check above can fail (an unquoted expansion is a finding)."""
    script = tmp_path / "bad.sh"
    script.write_text("#!/bin/bash\nset -euo pipefail\nrm -rf $1/\n")
    result = subprocess.run([shellcheck, "--format=json1", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert {c["code"] for c in json.loads(result.stdout)["comments"]} >= {2086}


def test_disabled_shellcheck_checks_are_justified(variant) -> None:
    """A `# shellcheck disable=` is only allowed with the reason next to it."""
    allowed = {
        # run.sh: `source .venv/bin/activate` is the app's venv on the host; it does not exist here.
        "SC1091",
    }
    for name, text in scripts(variant).items():
        for line in text.splitlines():
            if "shellcheck disable=" in line:
                codes = set(line.split("disable=", 1)[1].split()[0].split(","))
                assert codes <= allowed, f"{name}: unexplained `{line.strip()}`"


def _renewal_hook() -> str:
    """The certbot deploy hook as written in its template (it has no Jinja in it)."""
    source = (render.FILES / "host-certbot.sh.j2").read_text()
    return source.split("<<'HOOK' || true\n", 1)[1].split("\nHOOK\n", 1)[0] + "\n"


def test_renewal_hook_is_shellcheck_clean(shellcheck: str, tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.write_text(_renewal_hook())
    assert hook.read_text().startswith("#!/bin/sh\n")
    result = subprocess.run([shellcheck, str(hook)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert subprocess.run(["sh", "-n", str(hook)], check=False).returncode == 0


# The files each step embeds, in the order its here-documents appear.
def _embedded(s) -> dict[str, list[str]]:
    https_site, http_site = render.nginx_site(s, tls=True), render.nginx_site(s, tls=False)
    return {
        "deploy_step": [render.run_sh(s), render.deploy_sh(s)],
        "supervisor_step": [render.supervisor_program(s)],
        "nginx_step": [https_site, http_site],
        "certbot_step": [_renewal_hook(), https_site, http_site],
        "app_user_step": ["".join(f"{line}\n" for line in s.clone_host_keys), f"{CI_PUBLIC_KEY}\n", render.sudoers(s)],
    }


def test_embedded_files_come_out_exactly(variant) -> None:
    rendered = scripts(variant)
    for step, expected in _embedded(variant).items():
        found = heredocs(rendered[step])
        assert [body for _, body, _ in found] == expected, f"{step}: a here-document differs from its file"
        assert all(quoted for _, _, quoted in found), f"{step}: an unquoted here-document would expand $ and `"
        for delimiter, body, _ in found:
            assert delimiter not in body.splitlines(), f"{step}: {delimiter} inside its own here-document"


def test_no_embedded_file_can_end_its_heredoc_early(variant) -> None:
    """The delimiters the step templates use never occur as a line of what they embed, and every
    embedded file ends with a newline (else the delimiter would not start a line)."""
    delimiters = {"SCRIPT", "CONF", "SITE", "HOOK", "KEYS", "SUDOERS"}
    for contents in _embedded(variant).values():
        for content in contents:
            assert content.endswith("\n")
            assert not delimiters & set(content.splitlines())


def test_heredoc_parser_finds_an_early_delimiter() -> None:
    """Control: a content line equal to the delimiter ends the here-document early, and the
    comparison above notices."""
    script = "cat <<'SCRIPT'\necho one\nSCRIPT\necho two\nSCRIPT\n"
    assert heredocs(script) == [("SCRIPT", "echo one\n", True)]
