"""Hardened by default, proven on a real server: SSH, the CI key's forced command, host key pinning,
the host firewall, TLS (testssl.sh), renewals, updates, fail2ban, crash recovery, and a secrets
audit of everything the program produced while provisioning."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.settings import load_settings
from tests.e2e import web
from tests.e2e.engine import SERVER_IP, LabEngine, reveal, run_remote
from tests.e2e.site import APP, DOMAIN, Deployed, deploy_site
from tests.e2e.testhost import Lab
from tests.support.program import run_program

pytestmark = pytest.mark.e2e

GITHUB_TOKEN = "ghp_django-vps-e2e-token-0123456789abcdef"


class ProcessSampler(threading.Thread):
    """Every command line on the server, sampled while the program provisions it."""

    def __init__(self, site_engine) -> None:
        super().__init__(daemon=True)
        self.engine = site_engine
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            server = self.engine.server
            if server is not None and server.pid1:
                result = server.run("ps -eo args=")
                self.seen.update(result.stdout.splitlines())
            time.sleep(0.1)


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployed, ProcessSampler]]:
    samplers: list[ProcessSampler] = []

    def sample(engine: LabEngine) -> None:  # from the moment the engine exists
        samplers.append(ProcessSampler(engine))
        samplers[0].start()

    try:
        deployed = deploy_site(
            lab,
            tmp_path_factory.mktemp("pebble") / "root.pem",
            repo="secure",
            on_engine=sample,
            **{"github:token": GITHUB_TOKEN},
            djangoSecretEnv=json.dumps(["API_TOKEN=api-secret-e2e-5f1d"]),
        )
    finally:
        for sampler in samplers:
            sampler.stop.set()
            sampler.join()
    sampler = samplers[0]
    yield deployed, sampler
    lab.remove(deployed.engine.server_name)


def ssh_cli(site: Deployed, user: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return site.ssh(user, key, *args)


def state_value(site: Deployed, name_suffix: str, output: str) -> str:
    (value,) = [
        outs[output]
        for (typ, name), (_, _, outs) in site.engine.state.items()
        if name.endswith(name_suffix) and typ.split(":")[0] in ("tls", "random")
    ]
    return value


def secrets_of(site: Deployed) -> dict[str, str]:
    return {
        "provisioning key": state_value(site, "server-provisioning-key", "privateKeyOpenssh"),
        "host key": state_value(site, "server-host-key", "privateKeyOpenssh"),
        "CI key": state_value(site, "github-ci-key", "privateKeyOpenssh"),
        "deploy key": state_value(site, "github-deploy-key", "privateKeyOpenssh"),
        "SECRET_KEY": state_value(site, "secret-key", "result"),
        "GitHub token": GITHUB_TOKEN,
        "djangoSecretEnv value": "api-secret-e2e-5f1d",
    }


# --- SSH --------------------------------------------------------------------------------------


def test_the_ci_key_can_deploy_and_nothing_else(site) -> None:
    deployed, _ = site
    key = deployed.secret("PRODUCTION_SSH_KEY")
    denied = ssh_cli(deployed, APP, key, "id")
    assert denied.returncode != 0 and "may only run" in denied.stderr
    assert "uid=" not in denied.stdout
    shell = ssh_cli(deployed, APP, key)
    assert shell.returncode != 0 and "may only run" in shell.stderr
    pty = ssh_cli(deployed, APP, key, "-tt", "true")
    assert pty.returncode != 0 and "PTY allocation request failed" in pty.stderr
    forwarding = ssh_cli(deployed, APP, key, "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:0:127.0.0.1:22")
    assert forwarding.returncode != 0
    allowed = ssh_cli(deployed, APP, key, load_settings(deployed.config.get).deploy_script)
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
    as_root = ssh_cli(deployed, "root", provisioning_key, "id")
    assert as_root.returncode != 0 and "uid=0" not in as_root.stdout
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
    deployed, _ = site
    connection = {
        "host": SERVER_IP,
        "user": "admin",
        "privateKey": secrets_of(deployed)["provisioning key"],
        "hostKey": deployed.exports["hostKey"],
    }
    out, _ = run_remote(
        connection, "sudo nft -f /etc/django-vps/firewall.nft && sleep 1 && echo still-here", None, "firewall"
    )
    assert "still-here" in out


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
    print(
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
    assert "Journal matches" in deployed.sh("fail2ban-client status sshd") or "Currently banned" in deployed.sh(
        "fail2ban-client status sshd"
    )
    deployed.sh("fail2ban-client set sshd banip 198.51.100.77")
    try:
        assert "198.51.100.77" in deployed.sh("fail2ban-client get sshd banned")
        assert "198.51.100.77" in deployed.sh("nft list ruleset")
    finally:
        deployed.sh("fail2ban-client set sshd unbanip 198.51.100.77")


# --- crash recovery --------------------------------------------------------------------------


def test_a_killed_gunicorn_master_is_back_within_5_seconds(site) -> None:
    deployed, _ = site

    def master() -> str | None:
        status = deployed.sh(f"supervisorctl status {APP} || true")
        return status.split("pid ", 1)[1].split(",", 1)[0] if "RUNNING" in status else None

    killed = master()
    deployed.sh(f"kill -9 {killed}")
    started = time.monotonic()
    # Back means: supervisor runs a new master, and it serves.
    while (current := master()) in (None, killed) and time.monotonic() - started < 5:
        time.sleep(0.1)
    assert current not in (None, killed), "supervisor did not start a new gunicorn master"
    web.wait_for(SERVER_IP, DOMAIN, "/", "Hello from django-vps", cafile=deployed.cafile, timeout=5)
    elapsed = time.monotonic() - started
    print(f"\ngunicorn back after kill -9: {elapsed:.1f} s (new master {current})")
    assert elapsed <= 5


def test_a_killed_nginx_comes_back(site) -> None:
    deployed, _ = site
    master = deployed.sh("cat /run/nginx.pid").strip()
    deployed.sh(f"kill -9 {master}")
    started = time.monotonic()
    web.wait_for(SERVER_IP, DOMAIN, "/", "Hello from django-vps", cafile=deployed.cafile, timeout=15)
    print(f"\nnginx back after kill -9: {time.monotonic() - started:.1f} s")


# --- secrets ---------------------------------------------------------------------------------


def test_no_secret_appears_anywhere_in_plaintext(site) -> None:
    deployed, sampler = site
    haystack: dict[str, str] = {}
    for (typ, name), (_, inputs, outputs) in deployed.engine.state.items():
        if typ == "command:remote:Command":
            revealed = reveal(inputs)
            for field in ("create", "update", "delete"):
                haystack[f"{name}.{field}"] = revealed.get(field) or ""
            haystack[f"{name}.stdout"] = outputs.get("stdout", "")
            haystack[f"{name}.stderr"] = outputs.get("stderr", "")
    haystack["exports"] = json.dumps(deployed.exports, default=str)
    for name, inputs in deployed.engine.github.items():
        haystack[f"github {name}"] = json.dumps({k: v for k, v in inputs.items() if k != "value"})
    files = deployed.sh(
        "find /home/blog/bin /etc/nginx/conf.d /etc/supervisor/conf.d /etc/sudoers.d /etc/ssh/sshd_config.d "
        "/etc/django-vps /home/blog/blog/current/ -maxdepth 1 -type f"
    ).split()
    for path in files:
        haystack[path] = deployed.sh(f"cat {path}")
    haystack["server process list"] = "\n".join(sorted(sampler.seen))
    assert len(sampler.seen) > 50, "the sampler saw too little of the provisioning"
    assert any("bash -c" in line for line in sampler.seen)

    leaks = [
        f"{secret_name} in {where}"
        for secret_name, secret in secrets_of(deployed).items()
        for where, text in haystack.items()
        if any(part in text for part in _fingerprints(secret))
    ]
    assert not leaks, leaks
    # Not vacuous: the token did reach the GitHub provider, as a secret input.
    (provider,) = [
        inputs for (typ, _), (_, inputs, _) in deployed.engine.state.items() if typ == "pulumi:providers:github"
    ]
    assert reveal(provider["token"]) == GITHUB_TOKEN and provider["token"] != GITHUB_TOKEN
    # The one place the SECRET_KEY lives: the 0600 env file.
    assert secrets_of(deployed)["SECRET_KEY"] in deployed.sh("cat /home/blog/blog/shared/.env")


def _fingerprints(secret: str) -> list[str]:
    """The secret itself, and for PEM keys each base64 line long enough to be unique."""
    lines = [line for line in secret.splitlines() if len(line) >= 40 and "PRIVATE KEY" not in line]
    return lines or [secret]


# --- host key pinning (last: it replaces the server's host key) ------------------------------


def test_a_server_with_another_host_key_stops_the_run(site) -> None:
    deployed, _ = site
    deployed.sh("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A -q && systemctl restart ssh")
    deployed.engine.new_run(force_commands=True)
    with pytest.raises(Exception, match="does not match"):
        run_program(deployed.engine, deployed.config)
    workflow = deployed.run_workflow()
    assert workflow.returncode != 0
    assert "Host key verification failed" in workflow.stderr
    # Nothing was run on the impostor.
    assert deployed.engine.new_run().executed == []
