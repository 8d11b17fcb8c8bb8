"""Every rendered bash script parses (`bash -n`) and is clean under shellcheck at its default
severity (style), across settings variants; and the files the steps embed as here-documents come
out exactly as render.py renders them on their own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components import render
from tests.render.catalog import SCRIPT_NAMES, TEARDOWN_PARTS, heredocs, ocsp_snippet, scripts
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
        # put_as_app: the single-quoted script is for `sh -c`; its $1 and $2 are that shell's.
        "SC2016",
        # admin_keys_step: `user=admin` is a string, which shellcheck takes for SCCS's admin command.
        "SC2209",
    }
    for name, text in scripts(variant).items():
        for line in text.splitlines():
            if "shellcheck disable=" in line:
                codes = set(line.split("disable=", 1)[1].split()[0].split(","))
                assert codes <= allowed, f"{name}: unexplained `{line.strip()}`"


def _renewal_hook(s) -> str:
    """The certbot deploy hook as the rendered certbot step installs it."""
    (hook,) = [body for delimiter, body, _ in heredocs(render.certbot_step(s)) if delimiter == "HOOK"]
    return hook


def test_renewal_hook_is_shellcheck_clean(variant, shellcheck: str, tmp_path: Path) -> None:
    """What it does is checked by running it (test_steps_sandboxed); here, that it is clean sh."""
    hook = tmp_path / "hook"
    hook.write_text(_renewal_hook(variant))
    assert hook.read_text().startswith("#!/bin/sh\n")
    result = subprocess.run([shellcheck, str(hook)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert subprocess.run(["sh", "-n", str(hook)], check=False).returncode == 0


def ci_authorized_keys(s) -> str:
    """The CI key's authorized_keys line: only the forced command, nothing else (restrict)."""
    return f'restrict,command="{s.ci_command}" {CI_PUBLIC_KEY}\n'


# A here-document whose content is checked by running what it installs, not by comparison (the
# renewal hook has no render function of its own: test_steps_sandboxed runs it).
RUN_IN_THE_SANDBOX = None


# The files each step embeds, in the order its here-documents appear.
def _embedded(s) -> dict[str, list[str | None]]:
    https_site, http_site = render.nginx_site(s, tls=True), render.nginx_site(s, tls=False)
    return {
        "deploy_step": [
            render.run_sh(s),
            render.gunicorn_conf(s),
            render.deploy_sh(s),
            render.release_check_py(),
            render.snapshot_py(),
            render.redact_py(),
            *render.runtime_files().values(),
            (render.FILES / "django_vps_manage.py").read_text(),
            (render.FILES / "django_vps_exec.py").read_text(),
            (render.FILES / "move_sqlite.py").read_text(),
            render.processes_json(s),
            render.schedule_json(s),
            render.run_process_sh(s),
            render.run_scheduled_sh(s),
            render.manage_sh(s),
            render.manage_command_sh(),
        ],
        "supervisor_step": [render.supervisor_program(s), render.unlink_beneath_py()],
        "nginx_step": [https_site, http_site],
        "certbot_step": [ocsp_snippet(s), RUN_IN_THE_SANDBOX, https_site, http_site],
        "app_user_step": [
            render.known_hosts_clone(s),
            render.ci_command_sh(s),
            ci_authorized_keys(s),
            render.sudoers(s),
        ],
    }


def test_embedded_files_come_out_exactly(variant) -> None:
    rendered = scripts(variant)
    for step, expected in _embedded(variant).items():
        found = heredocs(rendered[step])
        assert len(found) == len(expected), f"{step}: {len(found)} here-documents, {len(expected)} files"
        compared = [
            None if want is RUN_IN_THE_SANDBOX else body for (_, body, _), want in zip(found, expected, strict=True)
        ]
        assert compared == expected, f"{step}: a here-document differs from its file"
        assert all(quoted for _, _, quoted in found), f"{step}: an unquoted here-document would expand $ and `"
        for delimiter, body, _ in found:
            assert delimiter not in body.splitlines(), f"{step}: {delimiter} inside its own here-document"


def test_release_check_is_installed_byte_for_byte(variant) -> None:
    """The deploy step carries files/release_check.py unchanged (no Jinja, no newline lost) to the
    path deploy.sh runs it from."""
    step = scripts(variant)["deploy_step"]
    source = (render.FILES / "release_check.py").read_bytes()
    bodies = [body for delimiter, body, quoted in heredocs(step) if quoted and body.startswith('"""Prepares')]
    assert len(bodies) == 1, "the deploy step embeds release_check.py once"
    assert bodies[0].encode() == source
    assert f"put 0644 root:root {variant.release_check} <<'SCRIPT'" in step
    assert f"release_check={variant.release_check}\n" in render.deploy_sh(variant)


def test_deploy_sh_settings_reach_bash_as_given(variant) -> None:
    """deploy.sh's settings block, evaluated by bash, holds the values exactly: the health check
    path with its ? & % unexpanded, one array element per shared path (none when the list is empty)."""
    text = render.deploy_sh(variant)
    settings_block = text.split("\nstep() {", 1)[0]
    probe = settings_block + (
        '\nprintf "%s\\n" "$keep" "$health_path" "$current" "$shared" "$release_check" "${#shared_paths[@]}"'
        '\nif [ ${#shared_paths[@]} -gt 0 ]; then printf "%s\\n" "${shared_paths[@]}"; fi\n'
    )
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        str(variant.keep_releases),
        variant.health_check_path,
        variant.current_dir,
        variant.shared_dir,
        variant.release_check,
        str(len(variant.shared_paths)),
        *variant.shared_paths,
    ]


def test_no_embedded_file_can_end_its_heredoc_early(variant) -> None:
    """The delimiters the step templates use never occur as a line of what they embed, and every
    embedded file ends with a newline (else the delimiter would not start a line)."""
    delimiters = {"SCRIPT", "CONF", "SITE", "HOOK", "KEYS", "SUDOERS", "NFT", "UNIT", "PY", "SQL"}
    for contents in _embedded(variant).values():
        for content in contents:
            if content is not RUN_IN_THE_SANDBOX:
                assert content.endswith("\n")
                assert not delimiters & set(content.splitlines())
    for name, script in scripts(variant).items():
        for delimiter, body, _ in heredocs(script):
            assert delimiter in delimiters, f"{name}: here-document {delimiter} is not in the list above"
            assert not delimiters & set(body.splitlines()), f"{name}: a delimiter inside {delimiter}"


def test_heredoc_parser_finds_an_early_delimiter() -> None:
    """Control: a content line equal to the delimiter ends the here-document early, and the
    comparison above notices."""
    script = "cat <<'SCRIPT'\necho one\nSCRIPT\necho two\nSCRIPT\n"
    assert heredocs(script) == [("SCRIPT", "echo one\n", True)]


# The security step in every combination of its switches (the variants above cover only some).
SECURITY_CASES = [
    {"hostFirewall": firewall, "fail2ban": fail2ban, **login}
    for firewall in ("true", "false")
    for fail2ban in ("true", "false")
    for login in ({}, {"existingHost": "203.0.113.7"})
]


def _security_settings(case: dict[str, str]):
    if "existingHost" in case:  # root login: the existing host's keys from a variant
        overrides = {k: v for k, v in VARIANTS["requirements-existing-host"]().items() if k.startswith("existingHost")}
        return make_settings(**{**case, **overrides})
    return make_settings(**case)


@pytest.mark.parametrize(
    "case",
    SECURITY_CASES,
    ids=[
        f"firewall={c['hostFirewall']}-fail2ban={c['fail2ban']}-login={'root' if 'existingHost' in c else 'admin'}"
        for c in SECURITY_CASES
    ],
)
def test_security_step_parses_and_is_shellcheck_clean_in_every_combination(
    shellcheck: str, case: dict[str, str], tmp_path: Path
) -> None:
    s = _security_settings(case)
    assert s.login_user == ("root" if "existingHost" in case else "admin")
    assert (s.host_firewall, s.fail2ban) == (case["hostFirewall"] == "true", case["fail2ban"] == "true")
    text = render.security_step(s)
    path = tmp_path / "security_step.sh"
    path.write_text(text)
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail\n" in text
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    result = subprocess.run(
        [shellcheck, "--format=json1", "--severity=style", str(path)], capture_output=True, text=True, check=False
    )
    comments = json.loads(result.stdout)["comments"]
    assert not comments, "shellcheck:\n" + "\n".join(
        f"line {c['line']}: SC{c['code']} {c['message']}" for c in comments
    )
    # Every file it writes is a quoted here-document: nothing in them is expanded by bash.
    found = heredocs(text)
    assert found and all(quoted for _, _, quoted in found)
    delimiters = [delimiter for delimiter, _, _ in found]
    # The table and its unit are always there (the metadata service's output chain); the input
    # chain only with hostFirewall.
    assert "NFT" in delimiters and "UNIT" in delimiters
    (rules,) = [body for delimiter, body, _ in found if delimiter == "NFT"]
    assert ("chain input {" in rules) is s.host_firewall
    assert "chain output {" in rules
    # fail2ban on: our jail is installed; off: a jail of ours from earlier is removed, nothing installed.
    assert ("jail.d/django-vps.local <<'CONF'" in text) is s.fail2ban
    assert ("rm -f /etc/fail2ban/jail.d/django-vps.local" in text) is not s.fail2ban
    # Its packages come with the packages step's one apt run (no second apt run to wait on dpkg's lock).
    assert "apt-get" not in text
    packages = render.packages_step(s)
    assert "nftables unattended-upgrades" in packages
    assert ("fail2ban python3-systemd" in packages) is s.fail2ban


SCRIPT_TEMPLATES = frozenset(p.name for p in render.FILES.glob("*.sh.j2") if not p.name.startswith("_"))


def _unchecked_templates(monkeypatch: pytest.MonkeyPatch, catalog) -> set[str]:
    """The script templates none of whose renderings is a script of catalog() (what this module
    checks as a file of its own: a script embedded in another one is not shellchecked)."""
    rendered: dict[str, set[str]] = {}
    original = render.render

    def recording(template: str, **context: object) -> str:
        text = original(template, **context)
        rendered.setdefault(template, set()).add(text)
        return text

    with monkeypatch.context() as patch:
        patch.setattr(render, "render", recording)
        checked = set(catalog().values())
    return {template for template in SCRIPT_TEMPLATES if not rendered.get(template, set()) & checked}


def test_every_script_template_is_in_the_catalog(variant, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bash script render.py can produce is one of the scripts this module checks (bash -n,
    shellcheck), so a new template cannot go unchecked."""
    assert len(SCRIPT_TEMPLATES) >= 12
    assert _unchecked_templates(monkeypatch, lambda: scripts(variant)) == set()
    assert set(render.TEARDOWN_PARTS) == set(TEARDOWN_PARTS)


def test_catalog_check_notices_a_missing_script(variant, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: a catalog without ci-command (which the app-user step still embeds) and without the
    security step fails the check above, naming their templates."""

    def partial() -> dict[str, str]:
        return {name: text for name, text in scripts(variant).items() if name not in ("ci-command", "security_step")}

    assert _unchecked_templates(monkeypatch, partial) == {"ci-command.sh.j2", "host-security.sh.j2"}
