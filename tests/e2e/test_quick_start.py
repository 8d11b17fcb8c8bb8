"""The README's quick start, run as written, in its order, on the lab with the real CLI.

A newcomer's machine is a fresh home directory with an SSH key, root's home in a copy of
/etc/passwd mounted over the real one in a mount namespace of each command's own: the CLI finds `~`
(for `pulumi login --local`'s `file://~` and its own ~/.pulumi) through the passwd entry, not $HOME
(pkg/backend/diy/backend.go, sdk/go/common/util/pulumihome/pulumihome.go), and so does ssh for
~/.ssh; this machine's own /root is never touched. "This repository" is a copy of the program's
tracked files. Every command of the quick start's code blocks runs through bash with the real
`pulumi`, secrets typed on stdin as the CLI reads them when no terminal is there. The lab adds only
what points the program at the lab instead of Hetzner, GitHub and Let's Encrypt (_lab_settings, set
with the same CLI); the values are the README's own (blog.com, you/blog).

One divergence cannot be helped here: `pulumi up` runs the program through the Automation API's
inline runtime (`pulumi up --client`, see tests/tools/README.md), since the Python language host
cannot be built on this machine; the CLI, the engine, the stack and its state are those the commands
above made.

The README's excerpt of `pulumi up` output must match the real output line by line (numbers aside),
and the time it states must hold on the lab. Then the README's step 5 (the workflow on the branch,
a push deploys), step 6 (the host key pinned from the outputs, then sshCommand) and the copies
*Operate it* says to keep.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.e2e import web
from tests.e2e.cli import ROOT, _program, tools_bin
from tests.e2e.providers import install as install_plugins
from tests.e2e.site import FIXTURES, HCLOUD_TOKEN, run_workflow, workflows_run_by_push
from tests.e2e.testhost import Lab
from tests.e2e.testhost.github_api import GitHubAPI
from tests.e2e.testhost.hetzner_api import HetznerAPI
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
OWNER, REPO = "you", "blog"  # the README's `you/blog`
GITHUB_TOKEN = "github_pat_" + "quickstart" * 5
SECRETS_TYPED = {"hcloud:token": HCLOUD_TOKEN, "github:token": GITHUB_TOKEN}


def quick_start() -> str:
    text = README.read_text()
    return text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(section: str) -> list[str]:
    return [block.strip("\n") for block in re.findall(r"^ *```[a-z]*\n(.*?)^ *```", section, re.M | re.S)]


def _dedent(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines() if line.strip()]


def up_excerpt() -> list[str]:
    """The README's excerpt of `pulumi up`'s output (the block after step 4's command)."""
    (excerpt,) = [b for b in code_blocks(quick_start()) if b.lstrip().startswith("Updating (prod)")]
    return [line.rstrip() for line in textwrap.dedent(excerpt).splitlines()]


def stated_minutes() -> float:
    """The time the quick start says `pulumi up` takes on the lab: '... took N minutes on the lab'."""
    match = re.search(r"under (\d+) minutes\s+on the lab", quick_start())
    assert match, "the quick start does not say how long `pulumi up` takes on the lab"
    return float(match.group(1))


@dataclass
class Newcomer:
    home: Path
    project: Path
    cli: Path
    env: dict[str, str]
    lab: Lab
    hetzner: HetznerAPI
    github: GitHubAPI
    cafile: Path
    transcript: list[str]
    up_output: str = ""
    up_seconds: float = 0.0

    def sh(self, command: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """One command as the user types it, in the clone of this repository, at home."""
        self.transcript.append(f"$ {command}")
        result = subprocess.run(
            [*at_home(self.home), "bash", "-euo", "pipefail", "-c", command],
            cwd=self.project, env=self.env, input=stdin or "", text=True, capture_output=True, timeout=timeout,
        )  # fmt: skip
        self.transcript.append((result.stdout + result.stderr).rstrip())
        assert result.returncode == 0, f"{command!r} failed:\n{result.stdout}{result.stderr}"
        return result

    def output(self, name: str) -> str:
        return self.sh(f"pulumi stack output {name}").stdout.strip()


def at_home(home: Path) -> list[str]:
    """The argv prefix that runs a command with `home` as root's home (see the module docstring)."""
    passwd = home.parent / f"{home.name}.passwd"
    if not passwd.exists():
        entries = [line.split(":") for line in Path("/etc/passwd").read_text().splitlines()]
        passwd.write_text("".join(":".join([*e[:5], str(home), *e[6:]] if e[2] == "0" else e) + "\n" for e in entries))
    script = 'mount --bind "$1" /etc/passwd && shift && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", str(passwd)]


def _pulumi_at_home(home: Path, directory: Path) -> Path:
    """A `bin/pulumi` that is the real CLI run at home: what the Automation API is given."""
    wrapper = directory / "bin/pulumi"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(at_home(home))} {shlex.quote(str(tools_bin() / "pulumi"))} "$@"\n')
    wrapper.chmod(0o755)
    return directory


def _clone_of_this_repository(target: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in tracked.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file() and not name.startswith("tests/"):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _lab_settings(lab: Lab, hetzner: HetznerAPI, github: GitHubAPI) -> list[tuple[str, str]]:
    """What the lab sets besides the README: the stand-ins' URLs, the lab's forge as the clone source
    (its host key pinned, as for any forge but github.com), and pebble as the ACME CA."""
    forge = lab.forge()
    return [
        ("hcloud:endpoint", hetzner.url),
        ("github:baseUrl", github.url),
        ("django-vps:cloneUrl", forge.url(REPO)),
        ("django-vps:cloneHostKeys[0]", f"{forge.ip} {forge.host_public_key()}"),
        ("django-vps:acmeServer", lab.acme_directory),
    ]


@pytest.fixture(scope="module")
def newcomer(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    home = tmp_path_factory.mktemp("home")
    project = home / "django-vps"
    project.mkdir()
    _clone_of_this_repository(project)
    (home / ".ssh").mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "you@laptop", "-f", home / ".ssh/id_ed25519"],
                   check=True)  # fmt: skip
    install_plugins(home / ".pulumi")  # where `pulumi plugin install` would put the providers
    env = {
        "HOME": str(home),
        "PATH": f"{tools_bin()}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        # This machine reaches no get.pulumi.com: the CLI's update check would only wait for it.
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    forge = lab.forge()
    forge.create_repo(REPO, FIXTURES / "blog-uv")  # the seed's blog, as the user's project on GitHub
    hetzner = lab.hetzner_api()
    hetzner.cloud.create_zone({"name": "blog.com", "mode": "primary"})  # the user's zone at Hetzner
    github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=(REPO,))
    cafile = home / "lab-ca.pem"
    cli = _pulumi_at_home(home, tmp_path_factory.mktemp("cli"))
    user = Newcomer(home, project, cli, env, lab, hetzner, github, cafile, [])
    try:
        yield user
    finally:
        try:
            if (home / ".pulumi/stacks").exists():  # the stack exists: its server too, maybe
                user.sh("pulumi destroy --yes --skip-preview", timeout=600)
        finally:
            hetzner.stop()
            github.stop()
            print("\n".join(user.transcript[-40:]))


def test_the_quick_start_runs_in_the_order_written(newcomer: Newcomer) -> None:
    blocks = code_blocks(quick_start())
    state, config, up = blocks[0], blocks[1], blocks[2]
    # Step 2: state on this machine, the passphrase, the stack.
    for line in _dedent(state):
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            newcomer.env[name] = shlex.split(value)[0]
        else:
            newcomer.sh(line)
    assert (newcomer.home / ".pulumi/credentials.json").exists(), "pulumi login --local kept no state in ~/.pulumi"
    # Step 3: each setting as written; a secret without a value is typed (read from stdin).
    for line in _dedent(config):
        command = line.split("  #", 1)[0].strip()
        words = shlex.split(command)
        typed = SECRETS_TYPED.get(words[-1]) if "--secret" in words and len(words) == 5 else None
        assert not ("--secret" in words and len(words) == 5 and typed is None), f"no value to type for {command}"
        newcomer.sh(command, stdin=typed)
    for key, value in _lab_settings(newcomer.lab, newcomer.hetzner, newcomer.github):
        newcomer.sh(f"pulumi config set {'--path ' if '[' in key else ''}{shlex.quote(key)} {shlex.quote(value)}")
    shown = newcomer.sh("pulumi config").stdout
    assert HCLOUD_TOKEN not in shown and GITHUB_TOKEN not in shown and "[secret]" in shown
    stack_file = (newcomer.project / "Pulumi.prod.yaml").read_text()
    assert HCLOUD_TOKEN not in stack_file and "secure:" in stack_file
    # Step 4: `pulumi up` (see the module's docstring for how the program reaches the CLI).
    assert _dedent(up) == ["pulumi up"]
    stack = auto.select_stack(
        stack_name="prod",
        project_name="django-vps",
        program=_program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(newcomer.project),
            env_vars=newcomer.env,
            pulumi_command=auto.PulumiCommand(str(newcomer.cli), skip_version_check=True),
        ),
    )
    lines: list[str] = []
    started = time.monotonic()
    stack.up(on_output=lines.append, color="never")
    newcomer.up_seconds = time.monotonic() - started
    newcomer.up_output = "\n".join(lines)
    newcomer.transcript += ["$ pulumi up", newcomer.up_output]
    figure(f"quick start: pulumi up took {newcomer.up_seconds:.1f} s on the lab")
    newcomer.cafile.write_text(newcomer.lab.acme_ca_pem())
    response = web.get(newcomer.output("ipv4"), "blog.com", "/", cafile=str(newcomer.cafile))
    assert response.status == 200, response


def _timeless(line: str) -> str:
    """A line without what differs between runs in its form, not just its digits: durations."""
    line = re.sub(r"\((\d+m)?\d+(\.\d+)?s\)", "(TIME)", line.rstrip())
    return re.sub(r"^Duration: .*", "Duration: TIME", line.strip()) if line.startswith("Duration:") else line


def _shape(line: str) -> str:
    """A line with what differs between runs (numbers, durations, addresses, ids) made a pattern."""
    pattern = re.escape(_timeless(line))
    pattern = re.sub(r"\\\.\\\.\\\.", ".*", pattern)  # "..." in the excerpt elides anything
    return re.sub(r"\d+", r"\\d+", pattern)


def test_the_readmes_excerpt_of_pulumi_up_is_what_it_prints(newcomer: Newcomer) -> None:
    assert newcomer.up_output, "pulumi up did not run"
    real = [_timeless(line) for line in newcomer.up_output.splitlines()]
    position = 0
    for line in up_excerpt():
        # A line of its own "..." stands for any number of lines, none included: each line is looked for
        # anywhere after the one before. (Matched as one line, it once took the stack's own last line,
        # which nothing else but the end's rows, printed in the engine's map order, comes between.)
        if line.strip() in ("", "..."):
            continue
        pattern = re.compile(_shape(line))
        found = next((i for i in range(position, len(real)) if pattern.fullmatch(real[i])), None)
        rest = "\n".join(real[position : position + 60])
        assert found is not None, (
            f"README's excerpt line {line!r} is not in pulumi up's output after line {position}:\n{rest}"
        )
        position = found + 1


def test_pulumi_up_takes_the_time_the_readme_says(newcomer: Newcomer) -> None:
    assert 0 < newcomer.up_seconds <= stated_minutes() * 60


def test_the_workflow_is_on_the_branch_and_a_push_deploys(newcomer: Newcomer) -> None:
    # Step 5: what `git pull` brings is on the branch; from then on a push deploys.
    model = newcomer.github.model
    assert model.file_text(REPO, ".github/workflows/deploy-prod.yml", "main") is not None
    forge = newcomer.lab.forge()
    commit = forge.push_commit(REPO, {"posts/quick_start.txt": "a push\n"}, "a push after the quick start")
    (workflow,) = workflows_run_by_push(model, REPO, "main").values()
    result = run_workflow(model, REPO, workflow)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deployed {commit[:12]}" in result.stdout + result.stderr


def test_the_admin_logs_in_with_the_host_key_from_the_outputs(newcomer: Newcomer) -> None:
    # Step 6, as written: pin the host key from the outputs, then log in (a shell, read from stdin
    # here; without a terminal ssh cannot ask about an unknown host key, so a wrong pin fails).
    (login,) = [b for b in code_blocks(quick_start()) if "known_hosts" in b]
    pin, shell = _dedent(login)
    newcomer.sh(pin)
    assert shell == "$(pulumi stack output sshCommand)"
    who = newcomer.sh(shell, stdin="id -un\nsudo -n true && echo sudo works\n")
    assert who.stdout.split()[-3:] == ["admin", "sudo", "works"], who.stdout  # after the motd


def test_the_outputs_commands_work_from_the_users_machine(newcomer: Newcomer) -> None:
    """*What you get*: deployCommand, rollbackCommand, manageCommand and backupCommand run as
    `$(pulumi stack output NAME)` with the user's own key (pinned by step 6, above)."""
    deployed = newcomer.sh("$(pulumi stack output deployCommand)", timeout=300).stdout
    assert "==> deployed " in deployed, deployed
    rolled = newcomer.sh("$(pulumi stack output rollbackCommand)", timeout=300).stdout
    assert "==> rolled back to " in rolled, rolled
    migrations = newcomer.sh("$(pulumi stack output manageCommand) showmigrations").stdout
    assert "[X] 0001_initial" in migrations, migrations
    newcomer.sh("$(pulumi stack output backupCommand)")
    # scheduleLogs only with a schedule (test_real_projects runs it): journalctl fails on a pattern
    # that matches no unit ("Failed to add filter for units").
    assert "scheduleLogs" not in newcomer.sh("pulumi stack output --json").stdout


def test_no_secret_reached_the_transcript(newcomer: Newcomer) -> None:
    text = "\n".join(newcomer.transcript)
    for secret in (HCLOUD_TOKEN, GITHUB_TOKEN, newcomer.env["PULUMI_CONFIG_PASSPHRASE"]):
        assert secret not in text


def test_the_copies_operate_it_tells_to_keep_before_destroy_are_made_as_written(newcomer: Newcomer) -> None:
    """*Operate it*: the data off the server, and the local state (both commands as written, with
    SERVER the stack's address)."""
    section = README.read_text().split("\n## Operate it\n", 1)[1].split("\n## ", 1)[0]
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]*tar -C[^`]*)`", section)]
    data, state = spans
    newcomer.sh(data.replace("SERVER", newcomer.output("ipv4")))
    listed = subprocess.run(["tar", "-tzf", newcomer.project / "blog-shared.tgz"], capture_output=True, text=True)
    assert "shared/db.sqlite3" in listed.stdout.split(), listed.stdout + listed.stderr
    newcomer.sh(state)
    listed = subprocess.run(["tar", "-tzf", newcomer.project / "pulumi-state.tgz"], capture_output=True, text=True)
    assert ".pulumi/stacks/django-vps/prod.json" in listed.stdout.split(), listed.stdout
