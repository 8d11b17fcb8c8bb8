"""Issue 11's setting reproductions, each now one line naming the setting (no traceback, nothing
written): values that broke out of their file (finding 5), the logsDir that handed a system
directory to the app user (finding 3), and the inputs that raised tracebacks (finding 6)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.settings import SettingError
from tests.unit.keys import ed25519_public
from tests.unit.test_settings import existing_host, load

KEY = ed25519_public("boundary")

CASES: list[tuple[str, dict[str, Any], str]] = [
    # 5. acmeServer with a newline: a command in the certbot step.
    ("acme-newline", {"acmeServer": "https://acme.example.org/dir\ntouch /etc/pwned"}, "acmeServer"),
    ("acme-userinfo", {"acmeServer": "https://user:pw@acme.example.org/dir"}, "acmeServer"),
    ("acme-quote", {"acmeServer": "https://acme.example.org/'$(id)'"}, "acmeServer"),
    # 5. cloneHostKeys lines that close the here-document, or trust every host.
    ("known-hosts-heredoc", {"cloneHostKeys": [f"github.com {KEY}\nKEYS\ntouch /etc/pwned"]}, "cloneHostKeys"),
    ("known-hosts-star", {"cloneHostKeys": [f"* {KEY}"]}, "cloneHostKeys"),
    ("known-hosts-glob", {"cloneHostKeys": [f"*.github.com {KEY}"]}, "cloneHostKeys"),
    ("known-hosts-negation", {"cloneHostKeys": [f"!evil.org,github.com {KEY}"]}, "cloneHostKeys"),
    # 6. @cert-authority in cloneHostKeys: a traceback before.
    ("known-hosts-cert-authority", {"cloneHostKeys": [f"@cert-authority *.github.com {KEY}"]}, "cloneHostKeys"),
    ("known-hosts-revoked", {"cloneHostKeys": [f"@revoked github.com {KEY}"]}, "cloneHostKeys"),
    # 5. adminSshKeys comments with a newline, CR or U+2028: new cloud-init keys.
    ("admin-key-newline", {"adminSshKeys": [f"{KEY} me\nruncmd: [touch /etc/pwned]"]}, "adminSshKeys"),
    ("admin-key-cr", {"adminSshKeys": [f"{KEY} me\rruncmd: [id]"]}, "adminSshKeys"),
    ("admin-key-u2028", {"adminSshKeys": [f"{KEY} me\u2028runcmd: [id]"]}, "adminSshKeys"),
    ("admin-key-non-ascii", {"adminSshKeys": [f"{KEY} mé@laptop"]}, "adminSshKeys"),
    # 6. adminSshKeys with options: a traceback before.
    ("admin-key-options", {"adminSshKeys": [f'from="10.0.0.1" {KEY} me']}, "adminSshKeys"),
    ("admin-key-command", {"adminSshKeys": [f'command="id",no-pty {KEY}']}, "adminSshKeys"),
    ("admin-key-dss", {"adminSshKeys": ["ssh-dss AAAAB3NzaC1kc3MAAACBAP me"]}, "adminSshKeys"),
    ("admin-key-sk", {"adminSshKeys": ["sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5 me"]}, "adminSshKeys"),
    # 5. .env values with CR (decouple splits there: a later DEBUG or SECRET_KEY wins), NUL, U+2028.
    ("env-cr", {"djangoEnv": ["GREETING=hi\rDEBUG=True"]}, "djangoEnv"),
    ("env-cr-secret-key", {"djangoEnv": ["GREETING=hi\rSECRET_KEY=known"]}, "djangoEnv"),
    ("env-nul", {"djangoEnv": ["GREETING=hi\x00"]}, "djangoEnv"),
    ("secret-env-cr", {"djangoSecretEnv": ["API_TOKEN=tok\rDEBUG=True"]}, "djangoSecretEnv"),
    ("secret-key-cr", {"djangoSecretKey": "k" * 40 + "\rDEBUG=True"}, "djangoSecretKey"),
    ("secret-key-u2028", {"djangoSecretKey": "k" * 40 + "\u2028x"}, "djangoSecretKey"),
    # 3. logsDir on a system directory, or in the app user's home outside the app: chowned to it.
    ("logs-root", {"logsDir": "/"}, "logsDir"),
    ("logs-etc", {"logsDir": "/etc"}, "logsDir"),
    ("logs-var-log", {"logsDir": "/var/log"}, "logsDir"),
    ("logs-var-log-nginx", {"logsDir": "/var/log/nginx"}, "logsDir"),
    ("logs-ssh", {"logsDir": "/home/blog/.ssh"}, "logsDir"),
    ("logs-bin", {"logsDir": "/home/blog/bin"}, "logsDir"),
    ("logs-home", {"logsDir": "/home/blog"}, "logsDir"),
    ("logs-app-dir-itself", {"logsDir": "/home/blog/blog"}, "logsDir"),
    ("logs-ours-not-the-apps", {"logsDir": "/var/log/django-vps"}, "logsDir"),
    ("logs-another-apps", {"logsDir": "/var/log/django-vps/shop"}, "logsDir"),
    ("logs-prefix-trick", {"logsDir": "/var/log/django-vps/blogger"}, "logsDir"),
    ("logs-dot", {"logsDir": "/home/blog/blog/./../../.ssh"}, "logsDir"),
    # Values that would reach ssh or certbot as an option.
    ("clone-url-option-user", {"cloneUrl": "-oProxyCommand=id@github.com:x/y.git"}, "cloneUrl"),
    ("clone-url-option-host", {"cloneUrl": "ssh://git@-oProxyCommand=id/x.git"}, "cloneUrl"),
    ("clone-url-newline", {"cloneUrl": "git@github.com:x/y.git\nid"}, "cloneUrl"),
    ("email-newline", {"letsencryptEmail": "a@example.com\nid"}, "letsencryptEmail"),
    ("email-space", {"letsencryptEmail": "a b@example.com"}, "letsencryptEmail"),
    ("very-long", {"djangoEnv": ["GREETING=" + "x" * 5000]}, "djangoEnv"),
]


@pytest.mark.parametrize(("overrides", "key"), [(o, k) for _, o, k in CASES], ids=[c[0] for c in CASES])
def test_refused_in_one_line_naming_the_setting(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingError) as caught:
        load(**overrides)
    message = str(caught.value)
    assert isinstance(caught.value, pulumi.RunError)
    assert not {"\n", "\r", "\u2028", "\x00"} & set(message), repr(message)
    assert message.startswith(f"django-vps:{key}: "), message


@pytest.mark.parametrize(
    "host_key",
    [
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5",
        "@cert-authority * " + KEY,
        "203.0.113.10 ssh-ed25519",
        "ssh-ed25519 " + KEY.split()[1] + "\nid",
        "*",
    ],
    # Fixed ids: KEY is made at import, so ids from it differ between pytest-xdist's workers.
    ids=["dss", "sk-ed25519", "cert-authority", "no-key", "newline", "star"],
)
def test_a_malformed_existing_host_key_is_one_line(host_key: str) -> None:
    with pytest.raises(SettingError) as caught:
        load(**existing_host(existingHostKey=host_key))
    assert str(caught.value).startswith("django-vps:existingHostKey: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize("around", ["garbage\n{key}", "{key}\nmore", "{key}\n{key}"], ids=["before", "after", "twice"])
def test_text_around_the_private_key_is_refused_without_showing_it(around: str) -> None:
    private = existing_host()["existingHostPrivateKey"]
    with pytest.raises(SettingError) as caught:
        load(**existing_host(existingHostPrivateKey=around.format(key=private.strip())))
    message = str(caught.value)
    assert message.startswith("django-vps:existingHostPrivateKey: ")
    assert not any(line in message for line in private.splitlines()[1:-1])


def test_what_these_settings_accept_is_written_again_not_pasted() -> None:
    s = load(
        adminSshKeys=[f"  {KEY}   me@laptop "],
        cloneHostKeys=[f"GitHub.com {KEY} a comment"],
        logsDir="/var/log/django-vps/blog/django",
    )
    assert s.server is not None and s.server.admin_ssh_keys == (f"{KEY} me@laptop",)
    assert s.clone_host_keys == (f"github.com {KEY}",)
    assert s.logs.directory == "/var/log/django-vps/blog/django"
    assert load(**existing_host(existingHostKey=f"203.0.113.10 {KEY}")).existing_host.host_key == KEY
    assert load(**existing_host(existingHostKey=f"{KEY} root@host")).existing_host.host_key == KEY
