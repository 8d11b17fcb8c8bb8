"""Self-test of the end-to-end test host (tests/e2e/testhost): image, network, servers, forge."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import paramiko
import pytest
import yaml

from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.keys import KeyPair, new_ed25519
from tests.e2e.testhost.lab import leftovers
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

IP = "198.51.100.2"


@pytest.fixture(scope="module")
def root_key() -> KeyPair:
    return new_ed25519()


@pytest.fixture(scope="module")
def host_key() -> KeyPair:
    return new_ed25519()


@pytest.fixture(scope="module")
def server(lab: Lab, root_key: KeyPair, host_key: KeyPair) -> Iterator[Server]:
    # Hetzner-style: the host key we pin is handed to cloud-init in user-data.
    user_data = "#cloud-config\n" + yaml.safe_dump(
        {
            "ssh_keys": {
                "ed25519_private": host_key.private_openssh,
                "ed25519_public": host_key.public,
            },
            "write_files": [{"path": "/root/from-user-data", "content": "written by cloud-init\n"}],
            "runcmd": [["sh", "-c", "date +%s >> /root/runcmd-count"]],
        }
    )
    srv = lab.server("app", IP, user_data=user_data, root_authorized_keys=[root_key.public])
    srv.run("cloud-init status --wait", check=True, timeout=120)
    yield srv
    lab.remove("app")


def ssh(server: Server, key: KeyPair, pinned: str, cmd: str) -> tuple[int, str]:
    client = paramiko.SSHClient()
    kind, b64 = pinned.split()[:2]
    client.get_host_keys().add(server.ip, kind, paramiko.PKey.from_type_string(kind, base64.b64decode(b64)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(key.private_openssh))
    client.connect(server.ip, username="root", pkey=pkey, timeout=10, allow_agent=False, look_for_keys=False)
    try:
        _in, out, err = client.exec_command(cmd, timeout=120)
        status = out.channel.recv_exit_status()
        return status, out.read().decode() + err.read().decode()
    finally:
        client.close()


def test_image_and_boot(lab: Lab, server: Server) -> None:
    assert lab.image and lab.image.exists()
    assert server.pid1
    assert server.run("cat /etc/hostname").stdout.strip() == "app"
    # The safety rules hold: private /dev, container env, no real consoles.
    assert server.run("ls /dev/vda /dev/ttyS0 2>&1").returncode != 0
    assert "container=dvps" in server.run("tr '\\0' '\\n' < /proc/1/environ").stdout


def test_ssh_with_pinned_host_key(server: Server, root_key: KeyPair, host_key: KeyPair) -> None:
    assert server.host_public_key() == host_key.public
    status, out = ssh(server, root_key, host_key.public, "id -u && hostname")
    assert (status, out.split()) == (0, ["0", "app"])
    with pytest.raises(paramiko.SSHException):  # a wrong pinned key is rejected
        ssh(server, root_key, new_ed25519().public, "true")


def test_user_data_applied(server: Server) -> None:
    assert server.run("cat /root/from-user-data").stdout == "written by cloud-init\n"
    assert len(server.run("cat /root/runcmd-count").stdout.split()) == 1


def test_apt_through_proxy(server: Server) -> None:
    r = server.run("apt-get update -q && apt-get install -y -q hello git && hello", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Hello, world!" in r.stdout


def test_pypi_through_proxy_in_ssh_session(server: Server, root_key: KeyPair, host_key: KeyPair) -> None:
    # /etc/environment reaches SSH sessions through pam_env: the proxy and the CA bundle.
    cmd = (
        'python3 -c "import urllib.request as u; '
        "print(u.urlopen('https://pypi.org/simple/django/', timeout=30).status)\""
    )
    status, out = ssh(server, root_key, host_key.public, cmd)
    assert (status, out.strip()) == (0, "200"), out
    # Anything off the allow-list is refused.
    status, out = ssh(
        server,
        root_key,
        host_key.public,
        "python3 -c \"import urllib.request as u; u.urlopen('https://example.com/')\"",
    )
    assert status != 0 and "403" in out


def test_dns(lab: Lab, server: Server) -> None:
    assert server.run("getent hosts app.example.test").returncode != 0  # no default answers
    lab.set_a("app.example.test", IP)
    assert server.run("getent hosts app.example.test").stdout.split()[0] == IP
    lab.clear("app.example.test")
    assert server.run("getent hosts app.example.test").returncode != 0


def test_pebble_reachable_and_trusted(lab: Lab, server: Server) -> None:
    r = server.run(
        f"python3 -c \"import urllib.request as u; print(u.urlopen('{lab.acme_directory}').read().decode())\""
    )
    assert r.returncode == 0 and "newAccount" in r.stdout, r.stderr
    assert lab.acme_ca_pem().startswith("-----BEGIN CERTIFICATE-----")


def test_forge_clone_with_deploy_key(lab: Lab, server: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    forge = lab.forge()
    (tmp_path / "README").write_text("v1\n")
    url = forge.create_repo("site", tmp_path)
    deploy = new_ed25519()
    forge.add_deploy_key(deploy.public)
    setup = (
        "id app >/dev/null 2>&1 || useradd -m app; install -d -m 700 -o app -g app ~app/.ssh; "
        f"printf '%s\\n' '{deploy.private_openssh.strip()}' > ~app/.ssh/id_ed25519; "
        f"echo '{forge.ip} {forge.host_public_key()}' > ~app/.ssh/known_hosts; "
        "chown app:app ~app/.ssh/*; chmod 600 ~app/.ssh/id_ed25519"
    )
    server.run(setup, check=True)
    as_app = "runuser -u app -- env GIT_SSH_COMMAND='ssh -o StrictHostKeyChecking=yes' "
    server.run(f"cd ~app && {as_app} git clone -q {url} site", check=True)
    assert server.run("cat ~app/site/README").stdout == "v1\n"
    forge.push_commit("site", {"README": "v2\n"}, "Second")
    server.run(f"cd ~app/site && {as_app} git pull -q", check=True)
    assert server.run("cat ~app/site/README").stdout == "v2\n"
    # A deploy key is read-only.
    r = server.run(f"cd ~app/site && {as_app} git push -q origin HEAD:refs/heads/x")
    assert r.returncode != 0 and "read-only" in r.stderr


def test_reboot(server: Server, root_key: KeyPair, host_key: KeyPair) -> None:
    server.reboot()
    status, out = ssh(server, root_key, host_key.public, "cat /root/from-user-data")
    assert (status, out) == (0, "written by cloud-init\n")
    server.run("cloud-init status --wait", check=True, timeout=120)
    assert len(server.run("cat /root/runcmd-count").stdout.split()) == 1  # same instance


def test_second_server_and_its_teardown(lab: Lab, root_key: KeyPair) -> None:
    t0 = time.monotonic()
    bare = lab.server("bench", "198.51.100.4", root_authorized_keys=[root_key.public])
    # A figure, not a budget (Lab.server's own boot limit bounds it): restore plus boot to SSH.
    figure(f"second server up (restore + boot to SSH): {time.monotonic() - t0:.1f} s")
    status, out = ssh(bare, root_key, bare.host_public_key(), "hostname")
    assert (status, out.strip()) == (0, "bench")
    lab.remove("bench")
    left = leftovers()
    assert not [x for x in left if "bench" in x], left
