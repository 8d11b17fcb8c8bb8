"""components/encode.py, one table per encoder: what each value becomes, and what each refuses
(tests/render/test_encoders.py reads the same tables back with the real parsers). And the
rendering environment itself: a template output that passed no encoder does not render."""

from __future__ import annotations

import jinja2
import pytest

from components import encode, render, sshkeys
from components.encode import Encoded, EncodeError

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

SHELL = [
    ("main", "main"),
    ("/opt/django-vps/blog/bin/deploy.sh", "/opt/django-vps/blog/bin/deploy.sh"),
    ("", "''"),
    ("o'brien", "'o'\"'\"'brien'"),
    ("$(id)", "'$(id)'"),
    ("`id`", "'`id`'"),
    ("a;id", "'a;id'"),
    ("a\nid", "'a\nid'"),
    ("-rf", "-rf"),
    ("héllo", "'héllo'"),
]


@pytest.mark.parametrize(("value", "encoded"), SHELL)
def test_shell(value: str, encoded: str) -> None:
    assert encode.shell(value) == encoded
    assert isinstance(encode.shell(value), Encoded)


DOTENV = [
    (("DEBUG", "False"), "DEBUG=False"),
    (("GREETING", "hello $USER; `id`"), "GREETING=hello $USER; `id`"),
    (("QUOTED", "'x'"), "QUOTED=''x''"),
    (("QUOTED", '"x"'), "QUOTED='\"x\"'"),
    (("EDGES", " padded "), "EDGES=' padded '"),
    (("EMPTY", ""), "EMPTY="),
    (("HASH", "#not-a-comment"), "HASH=#not-a-comment"),
    (("ONE_QUOTE", "'"), "ONE_QUOTE='"),
    (("UNICODE", "ünïcödé"), "UNICODE=ünïcödé"),
]


@pytest.mark.parametrize(("pair", "encoded"), DOTENV)
def test_dotenv(pair: tuple[str, str], encoded: str) -> None:
    assert encode.dotenv(*pair) == encoded


YAML = [
    ("main", '"main"'),
    ("2024", '"2024"'),
    ("a: b", '"a: b"'),
    ("line\u2028break", '"line\\u2028break"'),
    ("é", '"\\u00e9"'),
]


@pytest.mark.parametrize(("value", "encoded"), YAML)
def test_yaml(value: str, encoded: str) -> None:
    assert encode.yaml(value) == encoded


OK = [
    (encode.nginx, ("blog.example.com",), "blog.example.com"),
    (encode.nginx, ("10M",), "10M"),
    (encode.supervisor, ("/home/blog/blog/current",), "/home/blog/blog/current"),
    (encode.supervisor, ("100%",), "100%%"),
    (encode.sudoers, ("/usr/bin/supervisorctl",), "/usr/bin/supervisorctl"),
    (encode.sshd, ("prohibit-password",), "prohibit-password"),
    (encode.python, (3,), "3"),
    (encode.python, ("x'y",), '"x\'y"'),
    (encode.comment, ("o'brien $(id)",), "o'brien $(id)"),
    (encode.yaml_block, ("/opt/x/deploy.sh",), "/opt/x/deploy.sh"),
    (encode.heredoc, ("a\nb\n", "SCRIPT"), "a\nb\n"),
    (
        encode.supervisor_environment,
        ([("HOME", "/home/blog"), ("USER", "blog")],),
        'HOME="/home/blog",USER="blog"',
    ),
    (encode.sudoers_command, (["/usr/bin/supervisorctl", "status", "blog"],), "/usr/bin/supervisorctl status blog"),
    (
        encode.authorized_key,
        (ED25519 + " ci", [("restrict", None), ("command", "/opt/x/ci-command")]),
        f'restrict,command="/opt/x/ci-command" {ED25519} ci',
    ),
    (encode.known_host, (f"[git.example.org]:2222 {ED25519} comment",), f"[git.example.org]:2222 {ED25519}"),
    (encode.known_host, (f"GitHub.com,1.2.3.4 {ED25519}",), f"github.com,1.2.3.4 {ED25519}"),
]


@pytest.mark.parametrize(
    ("encoder", "args", "encoded"), OK, ids=[f"{e.__name__}-{i}" for i, (e, _, _) in enumerate(OK)]
)
def test_encodes(encoder, args: tuple, encoded: str) -> None:
    assert encoder(*args) == encoded


# What each encoder refuses: a value its syntax cannot carry unchanged.
REFUSED = [
    (encode.shell, ("a\x00b",)),
    (encode.dotenv, ("X", "a\rDEBUG=True")),
    (encode.dotenv, ("X", "a\nb")),
    (encode.dotenv, ("X", "a\u2028b")),
    (encode.dotenv, ("X", "a\x85b")),
    (encode.dotenv, ("lower", "x")),
    (encode.dotenv, ("A=B", "x")),
    (encode.comment, ("a\nrm -rf /",)),
    (encode.comment, ("a\u2028runcmd",)),
    (encode.comment, ("a\rb",)),
    (encode.nginx, ("$host",)),
    (encode.nginx, ("a;b",)),
    (encode.nginx, ("a b",)),
    (encode.nginx, ('a"b',)),
    (encode.nginx, ("a{b",)),
    (encode.nginx, ("a\nb",)),
    (encode.supervisor, ("a;b",)),
    (encode.supervisor, ("a #b",)),
    (encode.supervisor, ("a\nkey = v",)),
    (encode.supervisor_environment, ([("HOME", 'a"b')],)),
    (encode.sudoers, ("a,b",)),
    (encode.sudoers, ("a b",)),
    (encode.sudoers, ("*",)),
    (encode.sudoers, ("a:b",)),
    (encode.sudoers, ("#0",)),
    (encode.sudoers, ("a\nb",)),
    (encode.sshd, ("no\nPermitRootLogin yes",)),
    (encode.yaml_block, ("a\nb",)),
    (encode.yaml_block, (" a",)),
    (encode.heredoc, ("a\nSCRIPT\nb\n", "SCRIPT")),
    (encode.heredoc, ("no newline", "SCRIPT")),
    (encode.python, (True,)),
    (encode.authorized_key, (ED25519, [("command", 'x" ssh-rsa')])),
    (encode.authorized_key, (ED25519, [("command", "x\ny")])),
]


@pytest.mark.parametrize(("encoder", "args"), REFUSED, ids=[f"{e.__name__}-{i}" for i, (e, _) in enumerate(REFUSED)])
def test_refuses(encoder, args: tuple) -> None:
    with pytest.raises((EncodeError, sshkeys.KeyFormatError)):
        encoder(*args)


KEYS_REFUSED = [
    f"{ED25519} me\nruncmd",
    f"{ED25519} me\u2028x",
    f'from="1.2.3.4" {ED25519}',
    f"command=x {ED25519}",
    "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
    "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t",
    "ssh-ed25519",
    "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",  # an ed25519 blob
    f"{ED25519} ünïcödé",
    f"{ED25519} {'c' * 101}",
    "",
]


@pytest.mark.parametrize("line", KEYS_REFUSED)
def test_public_keys_are_refused_with_a_reason(line: str) -> None:
    with pytest.raises(sshkeys.KeyFormatError) as caught:
        sshkeys.public_key(line)
    assert "\n" not in str(caught.value)


KNOWN_HOSTS_REFUSED = [
    f"* {ED25519}",
    f"*.example.org {ED25519}",
    f"!evil.org,github.com {ED25519}",
    f"@cert-authority *.example.org {ED25519}",
    f"@revoked github.com {ED25519}",
    f"github.com {ED25519}\nKEYS",
    f"github.com {ED25519}\n* {ED25519}",
    f"[github.com]:99999 {ED25519}",
    "github.com ssh-ed25519",
]


@pytest.mark.parametrize("line", KNOWN_HOSTS_REFUSED)
def test_known_hosts_lines_are_refused_with_a_reason(line: str) -> None:
    with pytest.raises(sshkeys.KeyFormatError) as caught:
        sshkeys.known_host(line)
    assert "\n" not in str(caught.value)


def test_a_key_comes_back_re_serialized() -> None:
    key = sshkeys.public_key(f"  {ED25519}   me@laptop  ")
    assert key.line() == f"{ED25519} me@laptop"
    assert key.line(comment=False) == ED25519


def test_a_template_output_without_an_encoder_does_not_render() -> None:
    """Control for the environment's finalize: the same template renders with an encoder and
    fails without one."""
    env = render._env
    assert env.from_string("x={{ value | sh }}").render(value="a b") == "x='a b'"
    assert env.from_string("n={{ count }}").render(count=3) == "n=3"
    with pytest.raises(EncodeError, match="without an encoder"):
        env.from_string("x={{ value }}").render(value="a b")
    with pytest.raises(EncodeError):
        env.from_string("x={{ value ~ '' }}").render(value=Encoded("a"))
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("x={{ missing | sh }}").render()
