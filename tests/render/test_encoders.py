"""The encoders read back by the real parsers of their syntax: bash, python-decouple (and redact.py,
which must read the .env as decouple does), PyYAML, supervisor's own config parser, visudo and
sudo's cvtsudoers, ssh-keygen for authorized_keys and known_hosts, nginx -t. Each value comes back
exactly; and, as controls, what the refused characters would have done to the real parser."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from decouple import RepositoryEnv

from components import encode, render
from tests.render.conftest import find_tool, require_tool
from tests.unit.test_encode import DOTENV, ED25519, SHELL, YAML

HOSTILE = ["o'brien", '"quoted"', "$(id)", "`id`", "a;id", "a && id", "-rf", "../..", "héllo ünïcode", "x" * 5000]


@pytest.mark.parametrize("value", [value for value, _ in SHELL] + HOSTILE)
def test_bash_reads_a_shell_word_back_exactly(value: str) -> None:
    script = f"printf '%s' {encode.shell(value)}"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == value


def test_bash_cannot_carry_nul() -> None:
    """Control: why shell() refuses NUL (bash drops it from a word)."""
    result = subprocess.run(["bash", "-c", "printf '%s' $'a\\x00b'"], capture_output=True, check=True)
    assert result.stdout == b"a"


def _decouple(tmp_path: Path, text: str) -> dict[str, str]:
    env = tmp_path / ".env"
    env.write_bytes(text.encode())
    return RepositoryEnv(str(env)).data


@pytest.mark.parametrize(("pair", "encoded"), DOTENV)
def test_decouple_reads_a_dotenv_line_back_exactly(pair: tuple[str, str], encoded: str, tmp_path: Path) -> None:
    name, value = pair
    assert _decouple(tmp_path, f"{encode.dotenv(name, value)}\n") == {name: value}


@pytest.mark.parametrize("value", [*HOSTILE, "'x'", " x ", '"', "=", "a=b"])
def test_decouple_and_redact_read_hostile_values_back_exactly(value: str, tmp_path: Path) -> None:
    lines = f"{encode.dotenv('SECRET_KEY', 'k' * 50)}\n{encode.dotenv('API_TOKEN', value)}\nDEBUG=False\n"
    assert _decouple(tmp_path, lines) == {"SECRET_KEY": "k" * 50, "API_TOKEN": value, "DEBUG": "False"}
    if len(value) >= 6:
        env, script = tmp_path / ".env", tmp_path / "redact.py"
        script.write_text(render.redact_py())
        masked = subprocess.run(
            [sys.executable, "-I", str(script), str(env), "API_TOKEN"],
            input=f"leaked: {value}\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert masked == "leaked: [secret API_TOKEN]\n"


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_decouple_splits_lines_at_cr_too(separator: str, tmp_path: Path) -> None:
    """Control: why dotenv() and the settings refuse CR: a value 'x<CR>DEBUG=True' is two lines to
    decouple, and the later DEBUG wins over ours."""
    data = _decouple(tmp_path, f"DEBUG=False\nEXTRA=x{separator}DEBUG=True\n")
    assert data["DEBUG"] == "True"


@pytest.mark.parametrize(("value", "encoded"), YAML)
def test_pyyaml_reads_a_scalar_back_exactly(value: str, encoded: str) -> None:
    assert yaml.safe_load(f"key: {encode.yaml(value)}\nother: 1\n") == {"key": value, "other": 1}


def test_yaml_reads_u2028_as_a_line_break() -> None:
    """Control: why the comment and block encoders refuse U+2028: in YAML 1.1 it ends a line, so
    text after it in a plain scalar or a comment becomes a new key."""
    assert yaml.safe_load("# comment\u2028runcmd: [id]\nkey: 1\n") == {"runcmd": ["id"], "key": 1}


def test_supervisor_reads_a_program_back_exactly(tmp_path: Path) -> None:
    from supervisor.options import ServerOptions

    user = pwd.getpwuid(os.getuid()).pw_name
    directory = f"{tmp_path}/100%"
    program = tmp_path / "program.conf"
    environment = encode.supervisor_environment([("HOME", "/home/blog"), ("PERCENT", "100%"), ("LIST", "a,b")])
    program.write_text(
        f"[program:{encode.supervisor('blog')}]\nuser = {encode.supervisor(user)}\n"
        f"directory = {encode.supervisor(directory)}\ncommand = {encode.supervisor('/bin/true')}\n"
        f"environment = {environment}\n"
    )
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        f"[supervisord]\nlogfile = {tmp_path}/log\npidfile = {tmp_path}/pid\n[include]\nfiles = {program}\n"
    )
    options = ServerOptions()
    options.configfile = str(conf)
    options.process_config(do_usage=False)
    ((process,),) = [group.process_configs for group in options.process_group_configs]
    assert (process.name, process.directory, process.command) == ("blog", directory, "/bin/true")
    assert process.environment == {"HOME": "/home/blog", "PERCENT": "100%", "LIST": "a,b"}


def test_the_sudo_rule_is_parsed_as_written(tmp_path: Path) -> None:
    """visudo accepts the rendered rule, and sudo's own parser (cvtsudoers) reads back exactly the
    five commands with their arguments, run as root, from /, without a password."""
    from tests.render.conftest import make_settings

    s = make_settings()
    rule = tmp_path / "rule"
    rule.write_text(render.sudoers(s))
    visudo = require_tool("visudo")
    assert subprocess.run([visudo, "-cqf", str(rule)], capture_output=True, check=False).returncode == 0
    parsed = subprocess.run(
        [require_tool("cvtsudoers"), "-f", "json", str(rule)], capture_output=True, text=True, check=True
    ).stdout
    commands = re.findall(r'"command": "([^"]*)"', parsed)
    assert commands == [" ".join(argv) for argv in render.sudo_commands(s)]
    assert all(argv[1:3] == ("-c", "/etc/supervisor/supervisord.conf") for argv in render.sudo_commands(s))
    assert '"runcwd": "/"' in parsed and '"authenticate": false' in parsed
    assert re.findall(r'"username": "([^"]*)"', parsed) == [s.user, "root"]
    # Control: a rule with one more argument word than written is a different command to sudo.
    rule.write_text(render.sudoers(s).replace("status blog", "status blog extra"))
    parsed = subprocess.run(
        [require_tool("cvtsudoers"), "-f", "json", str(rule)], capture_output=True, text=True, check=True
    ).stdout
    assert "status blog extra" in parsed


def _ssh_keygen() -> str:
    return require_tool("ssh-keygen")


def test_ssh_keygen_reads_the_authorized_keys_line(tmp_path: Path) -> None:
    line = encode.authorized_key(f"{ED25519} ci", [("restrict", None), ("command", "/opt/django-vps/blog/bin/ci")])
    path = tmp_path / "authorized_keys"
    path.write_text(line + "\n")
    result = subprocess.run([_ssh_keygen(), "-l", "-f", str(path)], capture_output=True, text=True, check=True)
    assert len(result.stdout.splitlines()) == 1 and "(ED25519)" in result.stdout and " ci " in result.stdout


def test_ssh_keygen_finds_the_known_hosts_entry(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(encode.known_host(f"[git.example.org]:2222 {ED25519} note") + "\n")
    found = subprocess.run(
        [_ssh_keygen(), "-F", "[git.example.org]:2222", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert found.returncode == 0 and ED25519 in found.stdout
    other = subprocess.run([_ssh_keygen(), "-F", "evil.example.org", "-f", str(path)], capture_output=True, check=False)
    assert other.returncode != 0


def test_a_star_known_hosts_line_would_trust_any_host(tmp_path: Path) -> None:
    """Control: why known_host() refuses wildcards: ssh matches `*` against every host."""
    path = tmp_path / "known_hosts"
    path.write_text(f"* {ED25519}\n")
    found = subprocess.run([_ssh_keygen(), "-F", "evil.example.org", "-f", str(path)], capture_output=True, check=False)
    assert found.returncode == 0


def test_nginx_accepts_encoded_tokens() -> None:
    nginx = find_tool("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed: apt-get install -y nginx")
    with tempfile.TemporaryDirectory() as directory:
        conf = Path(directory) / "nginx.conf"
        conf.write_text(
            f"error_log {directory}/error.log;\npid {directory}/nginx.pid;\nevents {{}}\nhttp {{\n"
            f"  access_log off;\n  client_body_temp_path {directory};\n"
            f"  server {{\n    listen 127.0.0.1:1;\n    server_name {encode.nginx('blog.example.com')};\n"
            f"    client_max_body_size {encode.nginx('10M')};\n"
            f"    location /media/ {{ alias {encode.nginx('/home/blog/blog/shared')}/media/; }}\n  }}\n}}\n"
        )
        result = subprocess.run([nginx, "-t", "-q", "-c", str(conf)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
