"""Hardened by default, proven on a real server provisioned through the real Pulumi CLI: SSH, the CI
key's forced command, host key pinning, the host firewall, TLS (testssl.sh), renewals, updates,
fail2ban, crash recovery, and a secrets audit of everything the program and the engine produced
(the state on disk, the CLI's output, the server's files and process list while it was provisioned)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import render
from tests.e2e import web
from tests.e2e.providers.command import run_remote
from tests.e2e.site import APP, DOMAIN, GITHUB_TOKEN, SERVER_IP, Deployed, deploy_site
from tests.e2e.testhost import Lab, Server
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

API_TOKEN = "api-secret-e2e-5f1d"


class ProcessSampler(threading.Thread):
    """Every command line on the server, sampled every 0.1 s while the program provisions it."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.server.pid1:
                self.seen.update(self.server.run("ps -eo args=").stdout.splitlines())
            time.sleep(0.1)


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployed, ProcessSampler]]:
    samplers: list[ProcessSampler] = []

    def sample(server: Server) -> None:  # from the moment the Hetzner stand-in has booted it
        samplers.append(ProcessSampler(server))
        samplers[0].start()

    try:
        deployed = deploy_site(
            lab,
            tmp_path_factory.mktemp("pebble") / "root.pem",
            repo="secure",
            on_server=sample,
            djangoSecretEnv=json.dumps([f"API_TOKEN={API_TOKEN}"]),
        )
    finally:
        for sampler in samplers:
            sampler.stop.set()
            sampler.join()
    (sampler,) = samplers
    yield deployed, sampler
    deployed.remove()


def ssh_cli(site: Deployed, user: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return site.ssh(user, key, *args)


def secrets_of(site: Deployed) -> dict[str, str]:
    """The stack's secrets, as the user with the passphrase reads them (`stack export --show-secrets`)."""
    keys = {
        "provisioning key": "blog-server-provisioning-key",
        "host key": "blog-server-host-key",
        "CI key": "blog-github-ci-key",
        "deploy key": "blog-github-deploy-key",  # the tls key; the GitHub deploy key has the same name
    }
    tls_key = "tls:index/privateKey:PrivateKey"
    found = {name: site.outputs_of(resource, tls_key)["privateKeyOpenssh"] for name, resource in keys.items()}
    return {
        **found,
        "SECRET_KEY": site.outputs_of("blog-secret-key")["result"],
        "GitHub token": GITHUB_TOKEN,
        "djangoSecretEnv value": API_TOKEN,
    }


# --- SSH --------------------------------------------------------------------------------------


def test_the_ci_key_can_deploy_and_nothing_else(site) -> None:
    deployed, _ = site
    key = deployed.secret("SSH_KEY")
    denied = ssh_cli(deployed, APP, key, "id")
    assert denied.returncode != 0 and "may only run" in denied.stderr
    assert "uid=" not in denied.stdout
    shell = ssh_cli(deployed, APP, key)
    assert shell.returncode != 0 and "may only run" in shell.stderr
    pty = ssh_cli(deployed, APP, key, "-tt", "true")
    assert pty.returncode != 0 and "PTY allocation request failed" in pty.stderr
    forwarding = ssh_cli(deployed, APP, key, "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:0:127.0.0.1:22")
    assert forwarding.returncode != 0
    allowed = ssh_cli(deployed, APP, key, deployed.settings.deploy_script)
    assert allowed.returncode == 0, allowed.stderr
    assert "deployed" in allowed.stdout


def test_passwords_and_root_logins_are_refused(site) -> None:
    deployed, _ = site
    password = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            f"root@{SERVER_IP}",
            "true",
        ],
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert password.returncode != 0
    assert "Permission denied (publickey)" in password.stderr
    provisioning_key = secrets_of(deployed)["provisioning key"]
    # Hetzner gives root the project's keys it was created with, the provisioning key among them: so
    # only the SSH configuration refuses this login (cloud-init's disable_root would let it in, to
    # print a message).
    public = deployed.outputs_of("blog-server-provisioning-key", "tls:index/privateKey:PrivateKey")
    public = public["publicKeyOpenssh"].split()[1]
    assert public in deployed.sh("cat /root/.ssh/authorized_keys")
    as_root = ssh_cli(deployed, "root", provisioning_key, "id")
    assert as_root.returncode != 0 and "uid=0" not in as_root.stdout
    assert "Permission denied (publickey)" in as_root.stderr, as_root.stderr
    effective = deployed.sh("sshd -T")
    for line in ("permitrootlogin no", "passwordauthentication no", "x11forwarding no", "allowtcpforwarding no"):
        assert line in effective


# --- firewall --------------------------------------------------------------------------------


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((SERVER_IP, port), timeout=2):
            return True
    except OSError:
        return False


def test_only_ssh_http_https_and_icmp_come_in(site) -> None:
    deployed, _ = site
    pid = deployed.sh("setsid python3 -m http.server 8080 --bind 0.0.0.0 >/dev/null 2>&1 < /dev/null & echo $!").strip()
    try:
        deadline = time.monotonic() + 10
        while "0.0.0.0:8080" not in deployed.sh("ss -ltnH") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "0.0.0.0:8080" in deployed.sh("ss -ltnH")
        assert not port_open(8080), "the firewall let a connection to 8080 through"
        assert all(port_open(port) for port in (22, 80, 443))
        ping = subprocess.run(["ping", "-c", "1", "-W", "2", SERVER_IP], capture_output=True, timeout=10)
        assert ping.returncode == 0
    finally:
        deployed.sh(f"kill {pid}")


def test_applying_the_firewall_keeps_the_running_ssh_session(site) -> None:
    """The ruleset is swapped atomically and established connections stay: a session that applies a
    ruleset which lets no NEW SSH connection in keeps working, while a new connection is refused;
    then our ruleset is back."""
    deployed, _ = site
    connection = {
        "host": deployed.ip,
        "user": "admin",
        "privateKey": secrets_of(deployed)["provisioning key"],
        "hostKey": deployed.exports["hostKey"],
    }
    closed = "sed 's/tcp dport { 22, 80, 443 }/tcp dport { 80, 443 }/' /etc/django-vps/firewall.nft > /tmp/closed.nft"
    results: dict[str, bool] = {}

    def new_connection_during_the_window() -> None:
        time.sleep(2)
        results["new"] = port_open(22)

    probe = threading.Thread(target=new_connection_during_the_window)
    probe.start()
    out, _ = run_remote(
        connection,
        f"{closed} && sudo nft -f /tmp/closed.nft && sleep 4 && echo still-here"
        " && sudo nft -f /etc/django-vps/firewall.nft",
        None,
    )
    probe.join()
    assert "still-here" in out
    assert results["new"] is False, "the closed ruleset let a new SSH connection in: the test proves nothing"
    assert port_open(22)


# --- TLS -------------------------------------------------------------------------------------


def test_testssl_finds_no_old_protocols_and_nothing_high(site, tmp_path: Path) -> None:
    deployed, _ = site
    report = tmp_path / "testssl.json"
    started = time.monotonic()
    result = subprocess.run(
        [
            "testssl",
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "batch",
            "--ip",
            SERVER_IP,
            "--add-ca",
            deployed.cafile,
            "--protocols",
            "--server-defaults",
            "--headers",
            "--vulnerable",
            "--std",
            "--jsonfile",
            str(report),
            f"https://{DOMAIN}/",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    findings = json.loads(report.read_text())
    by_id = {f["id"]: f for f in findings}
    severe = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
    figure(
        f"\ntestssl.sh ({time.monotonic() - started:.0f} s): {len(findings)} findings, "
        f"{len(severe)} HIGH/CRITICAL; protocols: "
        + ", ".join(f"{k} {by_id[k]['finding']}" for k in ("TLS1", "TLS1_1", "TLS1_2", "TLS1_3") if k in by_id)
    )
    assert not severe, severe
    assert by_id["TLS1"]["finding"] == "not offered" and by_id["TLS1_1"]["finding"] == "not offered"
    assert by_id["TLS1_3"]["finding"].startswith("offered")
    assert "HSTS_time" in by_id and "63072000" in by_id["HSTS_time"]["finding"], result.stdout[-3000:]
    assert "Strict Transport Security" in result.stdout


def test_security_headers_and_no_version(site) -> None:
    deployed, _ = site
    headers = deployed.https("/").headers
    assert headers["server"] == "nginx"
    assert headers["strict-transport-security"] == "max-age=63072000"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"


def served_serial() -> int:
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((SERVER_IP, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        from cryptography import x509

        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_renewals_work_and_reach_nginx(site) -> None:
    deployed, _ = site
    acme = deployed.lab.acme_directory
    dry = deployed.server.run(f"certbot renew --dry-run --server {acme} --no-random-sleep-on-renew")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    before = served_serial()
    deployed.sh(f"certbot renew --force-renewal --server {acme} --no-random-sleep-on-renew")
    deadline = time.monotonic() + 10
    while served_serial() == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert served_serial() != before, "the renewed certificate is not served: the deploy hook did not reload nginx"


# --- updates, fail2ban -----------------------------------------------------------------------


def test_automatic_security_updates_are_on(site) -> None:
    deployed, _ = site
    assert 'APT::Periodic::Unattended-Upgrade "1";' in deployed.sh("apt-config dump APT::Periodic")
    assert deployed.sh("systemctl is-enabled apt-daily-upgrade.timer").strip() == "enabled"
    dry = deployed.server.run("unattended-upgrade --dry-run", timeout=300)
    assert dry.returncode == 0, dry.stdout + dry.stderr


def test_fail2ban_guards_sshd(site) -> None:
    deployed, _ = site
    # Our jail reads sshd's journal (Debian 12 has no auth.log): its status names the journal match.
    status = deployed.sh("fail2ban-client status sshd")
    assert "Journal matches:\t_SYSTEMD_UNIT=sshd.service + _COMM=sshd" in status or (
        "Journal matches:" in status and "sshd" in status.split("Journal matches:", 1)[1].splitlines()[0]
    ), status
    deployed.sh("fail2ban-client set sshd banip 198.51.100.77")
    try:
        assert "198.51.100.77" in deployed.sh("fail2ban-client get sshd banned")
        assert "198.51.100.77" in deployed.sh("nft list ruleset")
    finally:
        deployed.sh("fail2ban-client set sshd unbanip 198.51.100.77")


# --- crash recovery --------------------------------------------------------------------------


def test_a_killed_gunicorn_master_comes_back(site) -> None:
    deployed, _ = site

    def master() -> str | None:
        status = deployed.sh(f"supervisorctl status {APP} || true")
        return status.split("pid ", 1)[1].split(",", 1)[0] if "RUNNING" in status else None

    killed = master()
    deployed.sh(f"kill -9 {killed}")
    started = time.monotonic()
    # Back means: supervisor runs a new master, and it serves. A generous limit; the figure is printed.
    while (current := master()) in (None, killed) and time.monotonic() - started < 60:
        time.sleep(0.1)
    assert current not in (None, killed), "supervisor did not start a new gunicorn master"
    web.wait_for(SERVER_IP, DOMAIN, "/", "Hello from django-vps", cafile=deployed.cafile, timeout=60)
    figure(f"gunicorn back after kill -9: {time.monotonic() - started:.1f} s (new master {current})")


def test_a_killed_nginx_comes_back(site) -> None:
    deployed, _ = site
    master = deployed.sh("cat /run/nginx.pid").strip()
    workers = set(deployed.sh(f"pgrep -P {master}").split())
    assert workers
    deployed.sh(f"kill -9 {master}")
    started = time.monotonic()
    # Back means a NEW master (systemd restarted the unit), not the orphaned workers still holding
    # the sockets: they must be gone.
    while time.monotonic() - started < 60:
        now = deployed.server.run("cat /run/nginx.pid").stdout.strip()
        if now and now != master and deployed.server.run(f"kill -0 {now}").returncode == 0:
            break
        time.sleep(0.2)
    assert now and now != master, "no new nginx master"
    assert not workers & set(deployed.sh("pgrep nginx").split()), "the old master's workers are still running"
    web.wait_for(SERVER_IP, DOMAIN, "/", "Hello from django-vps", cafile=deployed.cafile, timeout=30)
    figure(f"nginx back after kill -9: {time.monotonic() - started:.1f} s (new master {now})")


# --- secrets ---------------------------------------------------------------------------------


def test_no_secret_appears_anywhere_in_plaintext(site) -> None:
    deployed, sampler = site
    haystack: dict[str, str] = {
        "pulumi stack export": deployed.stack.cli("stack", "export").stdout,
        "stack outputs": deployed.stack.cli("stack", "output", "--json").stdout,
        "the CLI's output of pulumi up": deployed.first_up.output,
        "the workflow on GitHub": json.dumps(deployed.workflow()),
    }
    for path in deployed.stack.state_files():
        haystack[str(path)] = path.read_text(errors="replace")
    files = deployed.sh(
        f"find {deployed.settings.bin_dir} /etc/nginx/conf.d /etc/supervisor/conf.d /etc/sudoers.d "
        "/etc/ssh/sshd_config.d /etc/django-vps /home/blog/blog/current/ -maxdepth 1 -type f"
    ).split()
    for path in files:
        haystack[path] = deployed.sh(f"cat {path}")
    haystack["server process list"] = "\n".join(sorted(sampler.seen))
    assert len(sampler.seen) > 50, "the sampler saw too little of the provisioning"
    assert any("bash -c" in line for line in sampler.seen)

    secrets = secrets_of(deployed)
    leaks = [
        f"{secret_name} in {where}"
        for secret_name, secret in secrets.items()
        for where, text in haystack.items()
        if any(part in text for part in _fingerprints(secret))
    ]
    assert not leaks, leaks
    # Not vacuous: the token did reach the GitHub provider, as a secret input (ciphertext in the plain
    # export, the token itself with --show-secrets), and GitHub holds the sealed values.
    (provider,) = [
        r for r in deployed.shown_secrets()["deployment"]["resources"] if r["type"] == "pulumi:providers:github"
    ]
    assert provider["inputs"]["token"]["plaintext"] == json.dumps(GITHUB_TOKEN)
    assert deployed.secret("SSH_KEY") == secrets["CI key"]
    # The one place the SECRET_KEY lives: the 0600 env file.
    assert secrets["SECRET_KEY"] in deployed.sh(f"cat {deployed.settings.env_file}")


def _fingerprints(secret: str) -> list[str]:
    """The secret itself, and for PEM keys each base64 line long enough to be unique."""
    lines = [line for line in secret.splitlines() if len(line) >= 40 and "PRIVATE KEY" not in line]
    return lines or [secret]


# --- host key pinning (last: it replaces the server's host key) ------------------------------


def test_a_server_with_another_host_key_stops_the_run(site, monkeypatch: pytest.MonkeyPatch) -> None:
    deployed, _ = site
    deployed.sh("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A -q && systemctl restart ssh")
    # Every step must run again (each script edited), so each must connect first.
    original = render.render
    monkeypatch.setattr(
        render, "render", lambda t, **c: original(t, **c) + ("# edited\n" if t.startswith("host-") else "")
    )
    before = deployed.sh("stat -c %Y /etc/nginx/conf.d/blog.conf")
    with pytest.raises(Exception, match="key mismatch"):
        deployed.stack.up(echo=None)
    workflow = deployed.run_workflow()
    assert workflow.returncode != 0
    assert "Host key verification failed" in workflow.stderr
    # Nothing was run on the impostor: its site file is untouched.
    assert deployed.sh("stat -c %Y /etc/nginx/conf.d/blog.conf") == before
