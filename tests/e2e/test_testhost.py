"""Self-test of the end-to-end test host (tests/e2e/testhost): image, network, servers, forge."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
import yaml

from tests.e2e.testhost import Lab, LabBusy, Server, netns
from tests.e2e.testhost.common import LAB_IDS, LabNames
from tests.e2e.testhost.keys import KeyPair, new_ed25519
from tests.e2e.testhost.lab import _try_lock, leftovers
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

IP = "198.51.100.2"
ROOT = Path(__file__).resolve().parents[2]


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
    assert lab.names is not None
    left = leftovers(lab.names)
    assert not [x for x in left if "bench" in x], left


# --- labs side by side -----------------------------------------------------------------------


def _host_key_at(ip: str, lab: Lab | None = None) -> str:
    """'ssh-ed25519 AAAA…' that whatever answers at ip:22 shows: from this process's namespace, or
    from `lab`'s."""
    argv = ["ssh-keyscan", "-T", "10", "-t", "ed25519", ip]
    found = lab.run_in(argv, timeout=30) if lab else subprocess.run(argv, capture_output=True, text=True, timeout=30)
    lines = [line.split() for line in found.stdout.splitlines() if not line.startswith("#")]
    assert lines, found.stderr
    return " ".join(lines[0][1:3])


def _free_ids(count: int) -> list[int]:
    """The highest `count` lab ids nobody holds now (workers' labs take the lowest free ones)."""
    free = []
    for lab_id in reversed(LAB_IDS):
        fd = _try_lock(LabNames(lab_id))
        if fd is not None:
            os.close(fd)
            free.append(lab_id)
    assert len(free) >= count, f"need {count} free lab ids, have {free}"
    return free[:count]


def test_two_labs_at_once_each_reaching_only_its_own(lab: Lab, server: Server, root_key: KeyPair) -> None:
    own = server.host_public_key()
    home = netns.current_inode()
    with Lab() as other:
        assert other.id != lab.id and other.names is not None
        # The same address in the second lab: this process is in that lab's network now.
        twin = other.server("app", IP, root_authorized_keys=[root_key.public])
        assert netns.current_inode() != home
        assert _host_key_at(IP) == twin.host_public_key() != own
        # The first lab's servers are where they were, at the same address, in its own network.
        assert _host_key_at(IP, lab) == own
        assert server.run("hostname", check=True).stdout.strip() == "app"
        # Each lab has its own way out: the second one's proxy reaches the index too.
        fetch = "python3 -c \"import urllib.request as u; print(u.urlopen('https://pypi.org/simple/pip/').status)\""
        assert twin.run(fetch, timeout=60).stdout.strip() == "200"
        # Nothing of either lab is in the machine's own namespace.
        machine = netns.machine_path()
        assert machine is not None
        links = subprocess.run(["nsenter", f"--net={machine}", "ip", "-o", "link"], capture_output=True, text=True)
        assert "veth-" not in links.stdout and f"{other.names.prefix}-" not in links.stdout
        with pytest.raises(LabBusy):  # a live lab's id is not taken twice
            Lab(lab_id=other.id).start()
        names = other.names
    # Back in the first lab's network; the second left nothing, and its id is free again.
    assert netns.current_inode() == home
    assert _host_key_at(IP) == own
    assert leftovers(names) == []
    fd = _try_lock(names)
    assert fd is not None
    os.close(fd)


KILLED_LAB = """
import sys, time
from pathlib import Path
from tests.e2e.testhost import Lab
lab = Lab(lab_id=int(sys.argv[1])).start()
lab.server("gone", "198.51.100.2")
Path(sys.argv[2]).write_text("ready")
time.sleep(600)
"""


def test_a_killed_labs_leftovers_go_with_the_next_lab_of_its_id_only(lab: Lab, tmp_path: Path) -> None:
    killed_id, other_id = _free_ids(2)
    ready = tmp_path / "ready"
    # A lab in a process of its own, started from the machine's namespace as a test run would be.
    argv = netns.in_machine([sys.executable, "-c", KILLED_LAB, str(killed_id), str(ready)])
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert proc.poll() is None, "the lab to be killed did not start"
            assert time.monotonic() < deadline, "the lab to be killed did not start in 180 s"
            time.sleep(0.2)
    finally:
        proc.kill()  # SIGKILL: no teardown runs
        proc.wait()
    killed = LabNames(killed_id)
    left = leftovers(killed)
    for thing in (f"netns {killed.lab_netns}", f"netns {killed.netns('gone')}", f"cgroup {killed.cgroup}"):
        assert thing in left, left
    assert any(x.startswith("dir ") for x in left) and any(x.startswith("mount ") for x in left), left
    # Another id's lab starts, works and ends beside them, and leaves them alone.
    with Lab(lab_id=other_id) as other:
        other.server("app", IP)
        assert sorted(leftovers(killed)) == sorted(left)
    assert sorted(leftovers(killed)) == sorted(left)
    # The next lab of the killed one's id removes them before it makes its own.
    with Lab(lab_id=killed_id) as again:
        now = leftovers(killed)
        remade = {f"netns {killed.lab_netns}", f"mount {killed.lab_netns_path}", f"cgroup {killed.cgroup}"}
        assert not (set(now) & set(left)) - remade, now
        assert f"netns {killed.netns('gone')}" not in now
        assert again.run_in(["ip", "-o", "link", "show", "veth-gone"]).returncode != 0
    assert leftovers(killed) == []
