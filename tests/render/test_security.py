"""The hardening: the security step run in the sandbox (see sandbox.py), its files checked by the
real tools (sshd -t/-T, nft -c in a fresh network namespace, systemd-analyze), and the CI key's
forced command run by real bash against a stub deploy.sh."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from components import render
from components.settings import Settings
from tests.render.catalog import heredocs
from tests.render.conftest import VARIANTS, find_tool, make_settings, relocate
from tests.render.sandbox import FIREWALL_UNIT, Sandbox, sandboxed_security

SSHD_CONF = "/etc/ssh/sshd_config.d/10-django-vps.conf"
RULES = "/etc/django-vps/firewall.nft"
AUTO_UPGRADES = "/etc/apt/apt.conf.d/20auto-upgrades"
JAIL = "/etc/fail2ban/jail.d/django-vps.local"
RESTART_DROP_INS = tuple(f"/etc/systemd/system/{unit}.service.d/django-vps.conf" for unit in ("nginx", "supervisor"))
REFUSAL = "this key may only run: {} [deploy|rollback]\n"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


def _root_login(**overrides: object) -> Settings:
    """An existing host reached as root (existingHostUser's default)."""
    keys = {k: v for k, v in VARIANTS["requirements-existing-host"]().items() if k.startswith("existingHost")}
    s = make_settings(**keys, **overrides)
    assert s.login_user == overrides.get("existingHostUser", "root")
    return s


def _body(script: str, delimiter: str, starts: str = "") -> str:
    (body,) = [b for d, b, _ in heredocs(script) if d == delimiter and b.startswith(starts)]
    return body


def _sshd_conf(s: Settings) -> str:
    return _body(render.security_step(s), "CONF", "# Rendered by django-vps. The first value")


def _rules(s: Settings) -> str:
    return _body(render.security_step(s), "NFT")


def _unit(s: Settings) -> str:
    return _body(render.security_step(s), "UNIT")


def _systemctl(sandbox: Sandbox) -> list[list[str]]:
    return [call[1:] for call in sandbox.calls("systemctl")]


def _index(calls: list[list[str]], call: list[str]) -> int:
    assert call in calls, f"{call} not in {calls}"
    return calls.index(call)


RELOADS = ("reload", "restart", "daemon-reload", "start", "stop")


# --- the step in the sandbox ---------------------------------------------------------------------


def test_security_step_installs_the_hardening(sandbox: Sandbox) -> None:
    s = make_settings()
    assert (s.login_user, s.host_firewall, s.fail2ban) == ("admin", True, True)
    step = render.security_step(s)
    sandbox.run(sandboxed_security(step))

    files = sandbox.files()
    assert set(files) == {SSHD_CONF, RULES, FIREWALL_UNIT, AUTO_UPGRADES, JAIL, *RESTART_DROP_INS}
    bodies = [body for _, body, _ in heredocs(step)]
    for path, text in files.items():
        assert text in bodies, f"{path} is not one of the step's here-documents"
        assert sandbox.meta(path) == ("0644", "root:root"), path
    assert "PermitRootLogin no\n" in files[SSHD_CONF].splitlines(keepends=True)
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes"):
        assert line in files[SSHD_CONF].splitlines()
    assert files[AUTO_UPGRADES] == 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
    for drop_in in RESTART_DROP_INS:
        assert files[drop_in] == "[Service]\nRestart=on-failure\nRestartSec=2s\n"
    assert "[sshd]\nenabled = true\nbackend = systemd\n" in files[JAIL]

    assert sandbox.calls("apt-get") == []  # the packages step installed what it configures

    calls = sandbox.calls()
    # sshd checks the new drop-in before ssh reloads; it saw exactly the file that was installed.
    sshd_check = _index(calls, ["sshd", "-t"])
    assert sshd_check < _index(calls, ["systemctl", "reload", "ssh"])
    assert sandbox.sshd_checked() == files[SSHD_CONF]
    # The rules are checked before the unit is enabled and before they are applied.
    check = _index(calls, ["nft", "-c", "-f", RULES])
    enable = _index(calls, ["systemctl", "enable", "--quiet", "django-vps-firewall.service"])
    apply = _index(calls, ["nft", "-f", RULES])
    assert check < enable < apply
    assert _index(calls, ["systemctl", "daemon-reload"]) < enable
    systemctl = _systemctl(sandbox)
    assert ["enable", "--quiet", "fail2ban"] in systemctl and ["restart", "fail2ban"] in systemctl
    assert ["enable", "--quiet", "apt-daily.timer", "apt-daily-upgrade.timer"] in systemctl
    # Each restart drop-in is new: systemd reads it (one daemon-reload each, plus the firewall unit's).
    assert systemctl.count(["daemon-reload"]) == 3


def test_security_step_run_again_changes_and_reloads_nothing(sandbox: Sandbox) -> None:
    s = make_settings()
    step = sandboxed_security(render.security_step(s))
    sandbox.run(step)
    before = sandbox.files()
    sandbox.clear_calls()
    (sandbox.dir / "sshd-checked").unlink()

    sandbox.run(step)
    assert sandbox.files() == before
    assert sandbox.calls("mv") == [] and sandbox.calls("chown") == [], "nothing installed again"
    assert sandbox.calls("sshd") == [] and sandbox.sshd_checked() is None, "an unchanged sshd config: no check"
    systemctl = _systemctl(sandbox)
    assert not [call for call in systemctl if call[0] in RELOADS], f"something was reloaded: {systemctl}"
    assert sorted(systemctl) == sorted(
        [
            ["enable", "--quiet", "django-vps-firewall.service"],
            ["enable", "--quiet", "apt-daily.timer", "apt-daily-upgrade.timer"],
            ["is-active", "--quiet", "fail2ban"],
        ]
    )
    # The rules are enforced again (an atomic replacement of the same table), checked first.
    assert sandbox.calls("nft") == [["nft", "-c", "-f", RULES], ["nft", "-f", RULES]]


@pytest.mark.parametrize(("login", "permit_root_login"), [("admin", "no"), ("root", "prohibit-password")])
def test_root_login_is_off_unless_root_is_the_login(sandbox: Sandbox, login: str, permit_root_login: str) -> None:
    s = make_settings() if login == "admin" else _root_login()
    assert s.login_user == login
    sandbox.run(sandboxed_security(render.security_step(s)))
    lines = sandbox.files()[SSHD_CONF].splitlines()
    assert [line for line in lines if line.startswith("PermitRootLogin")] == [f"PermitRootLogin {permit_root_login}"]


def test_existing_host_with_a_sudo_user_turns_root_login_off() -> None:
    s = _root_login(existingHostUser="deploy")
    assert s.login_user == "deploy"
    assert "PermitRootLogin no\n" in _sshd_conf(s)


def test_a_first_sshd_config_sshd_rejects_is_removed(sandbox: Sandbox) -> None:
    s = make_settings()
    sandbox.reject_sshd_config()
    result = sandbox.run(sandboxed_security(render.security_step(s)), check=False)
    assert result.returncode == 1
    assert "sshd rejected the hardened configuration; the previous one is kept" in result.stderr
    assert sandbox.sshd_checked() == _sshd_conf(s)
    assert sandbox.files() == {}, "the rejected drop-in is gone and the step stopped there"
    assert ["reload", "ssh"] not in _systemctl(sandbox)
    assert sandbox.calls("nft") == []


def test_a_changed_sshd_config_sshd_rejects_is_rolled_back(sandbox: Sandbox) -> None:
    admin, root = make_settings(), _root_login()
    sandbox.run(sandboxed_security(render.security_step(admin)))
    assert sandbox.files()[SSHD_CONF] == _sshd_conf(admin)

    sandbox.clear_calls()
    sandbox.reject_sshd_config()
    result = sandbox.run(sandboxed_security(render.security_step(root)), check=False)
    assert result.returncode == 1 and "the previous one is kept" in result.stderr
    assert sandbox.sshd_checked() == _sshd_conf(root), "sshd checked the new file"
    assert sandbox.files()[SSHD_CONF] == _sshd_conf(admin), "and the previous one is back"
    assert sandbox.meta(SSHD_CONF) == ("0644", "root:root")
    assert ["reload", "ssh"] not in _systemctl(sandbox)
    assert not list((sandbox.dir / "tmp").iterdir()), "no backup or temporary file left behind"

    sandbox.reject_sshd_config(False)
    sandbox.clear_calls()
    sandbox.run(sandboxed_security(render.security_step(root)))
    assert sandbox.files()[SSHD_CONF] == _sshd_conf(root)
    assert ["reload", "ssh"] in _systemctl(sandbox)


def test_host_firewall_off_keeps_the_table_for_the_metadata_service(sandbox: Sandbox) -> None:
    """hostFirewall off drops the input chain only: the table and its unit stay, for the output chain
    that keeps the metadata service root's. Switching it off on a host that had it replaces the table
    (the rules file changes, and nft applies it atomically); nothing is disabled."""
    on, off = make_settings(), make_settings(hostFirewall="false")
    assert "chain input {" in _rules(on) and "chain input {" not in _rules(off)
    assert "chain output {" in _rules(on) and "chain output {" in _rules(off)
    assert _unit(on) == _unit(off)
    sandbox.run(sandboxed_security(render.security_step(on)))
    assert sandbox.files()[RULES] == _rules(on)

    sandbox.clear_calls()
    sandbox.run(sandboxed_security(render.security_step(off)))
    files = sandbox.files()
    assert files[RULES] == _rules(off) and files[FIREWALL_UNIT] == _unit(off)
    assert sandbox.calls("nft") == [["nft", "-c", "-f", RULES], ["nft", "-f", RULES]]
    systemctl = _systemctl(sandbox)
    assert not [call for call in systemctl if call[0] in ("disable", "stop")], systemctl
    assert ["enable", "--quiet", "django-vps-firewall.service"] in systemctl
    assert ["daemon-reload"] not in systemctl, "the unit did not change"

    # From nothing (a host that never had the input chain): the same table and unit.
    fresh = Sandbox(sandbox.dir.parent / "fresh")
    fresh.run(sandboxed_security(render.security_step(off)))
    assert fresh.files()[RULES] == _rules(off) and fresh.files()[FIREWALL_UNIT] == _unit(off)


def test_rules_nft_rejects_are_never_applied(sandbox: Sandbox) -> None:
    s = make_settings()
    sandbox.reject_nft_rules()
    result = sandbox.run(sandboxed_security(render.security_step(s)), check=False)
    assert result.returncode != 0
    assert sandbox.calls("nft") == [["nft", "-c", "-f", RULES]]
    assert FIREWALL_UNIT not in sandbox.files()
    assert not [call for call in _systemctl(sandbox) if "django-vps-firewall.service" in call]


def test_fail2ban_off(sandbox: Sandbox) -> None:
    s = make_settings(fail2ban="false")
    sandbox.run(sandboxed_security(render.security_step(s)))
    assert JAIL not in sandbox.files()
    assert sandbox.calls("apt-get") == []
    assert "fail2ban" not in render.packages_step(s)
    assert not [call for call in sandbox.calls() if "fail2ban" in call]


# --- the files, checked by the real tools --------------------------------------------------------


def _sshd() -> str:
    sshd = find_tool("sshd")
    if sshd is None:
        pytest.skip("sshd is not installed: apt-get install -y openssh-server")
    return sshd


@pytest.mark.parametrize(("login", "permit_root_login"), [("admin", "no"), ("root", "prohibit-password")])
def test_sshd_accepts_the_drop_in_and_it_wins(login: str, permit_root_login: str, tmp_path: Path) -> None:
    """Included first, as Debian's sshd_config does, the drop-in passes the real `sshd -t`, and
    its values win over a main config that says otherwise (sshd takes a setting's first value)."""
    sshd = _sshd()
    s = make_settings() if login == "admin" else _root_login()
    drop_ins = tmp_path / "sshd_config.d"
    drop_ins.mkdir()
    (drop_ins / "10-django-vps.conf").write_text(_sshd_conf(s))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host_key")], check=True)
    main = tmp_path / "sshd_config"
    main.write_text(
        f"Include {drop_ins}/*.conf\nHostKey {tmp_path}/host_key\n"
        "PermitRootLogin yes\nPasswordAuthentication yes\nX11Forwarding yes\nMaxAuthTries 6\n"
    )
    check = subprocess.run([sshd, "-t", "-f", str(main)], capture_output=True, text=True, check=False)
    if "privilege separation directory" in check.stderr:
        pytest.skip(f"sshd cannot test configurations here: {check.stderr.strip()}")
    assert check.returncode == 0, check.stderr
    effective = subprocess.run(
        [sshd, "-T", "-f", str(main), "-C", "user=root,host=client.example,addr=198.51.100.9"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # sshd -T spells prohibit-password by its older synonym.
    shown = {"no": "no", "prohibit-password": "without-password"}[permit_root_login]
    for line in (
        f"permitrootlogin {shown}",
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "x11forwarding no",
        "allowtcpforwarding no",
        "allowagentforwarding no",
        "maxauthtries 3",
    ):
        assert line in effective, f"{line!r} is not in effect"

    # Control: sshd -t does reject a bad drop-in (what the step's rollback relies on).
    (drop_ins / "10-django-vps.conf").write_text(_sshd_conf(s) + "PermitRootLogin maybe\n")
    assert subprocess.run([sshd, "-t", "-f", str(main)], capture_output=True, check=False).returncode != 0


def _nft() -> list[str]:
    nft = find_tool("nft")
    if nft is None:
        pytest.skip("nft is not installed: apt-get install -y nftables")
    if os.geteuid() != 0:
        pytest.skip("nft needs CAP_NET_ADMIN, in a network namespace of its own: run as root")
    unshare = find_tool("unshare")
    if unshare is None:
        pytest.skip("unshare is not installed: apt-get install -y util-linux")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
    return [unshare, "-n", nft]


def test_firewall_rules_pass_nft_check(tmp_path: Path) -> None:
    nft = _nft()
    rules = tmp_path / "firewall.nft"
    rules.write_text(_rules(make_settings()))
    result = subprocess.run([*nft, "-c", "-f", str(rules)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr

    broken = tmp_path / "broken.nft"
    broken.write_text(rules.read_text().replace("tcp dport { 22, 80, 443 } accept", "tcp dport { 22, 80, 443 } acept"))
    assert subprocess.run([*nft, "-c", "-f", str(broken)], capture_output=True, check=False).returncode != 0


def _unit_commands(unit: str) -> dict[str, list[str]]:
    """The unit's ExecStart and ExecStop, split into arguments as systemd does (no shell)."""
    service = unit.split("\n[Service]\n", 1)[1].split("\n[", 1)[0]
    commands = {}
    for line in service.splitlines():
        key, _, value = line.partition("=")
        if key in ("ExecStart", "ExecStop"):
            assert key not in commands, f"two {key} lines"
            commands[key] = shlex.split(value)
    return commands


def _firewall_unit_lifecycle(nft: list[str], unit: str, rules: str, tmp_path: Path) -> dict[str, str]:
    """In a fresh network namespace that already has a table of someone else's: the unit's
    ExecStart twice (a restart), then its ExecStop, each exactly as the unit runs it (only the
    rules file's path moved). The ruleset after each, and whether each command succeeded."""
    unshare, flag, nft_path = nft
    path = tmp_path / "firewall.nft"
    path.write_text(rules)
    commands = _unit_commands(unit)
    for argv in commands.values():
        assert argv[0] == "/usr/sbin/nft" and os.access(argv[0], os.X_OK), f"{argv[0]} is not nftables' nft"
    start, stop = ([str(path) if arg == RULES else arg for arg in commands[key]] for key in ("ExecStart", "ExecStop"))
    script = (
        f"{nft_path} add table inet other; {nft_path} add chain inet other keep; "
        f"{shlex.join(start)} && {shlex.join(start)} && echo started; {nft_path} list ruleset; echo ---; "
        f"{shlex.join(stop)} && echo stopped; {nft_path} list ruleset"
    )
    result = subprocess.run([unshare, flag, "bash", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    started, stopped = result.stdout.split("---\n")
    return {"started": started, "stopped": stopped}


OTHER_TABLE = "table inet other {\n\tchain keep {\n\t}\n}\n"


def _assert_starts_and_stops_only_its_own_table(found: dict[str, str]) -> None:
    started, stopped = found["started"], found["stopped"]
    assert started.startswith("started\n"), started
    assert started.count("table inet django_vps {") == 1
    assert started.count("tcp dport { 22, 80, 443 } accept") == 1, "rules applied twice"
    assert "type filter hook input priority filter; policy drop;" in started
    assert "ct state established,related accept" in started
    assert OTHER_TABLE in started, "another table is left alone"
    assert stopped == "stopped\n" + OTHER_TABLE


def test_firewall_unit_starts_and_stops_only_its_own_table(tmp_path: Path) -> None:
    """Starting (again) replaces the table atomically, no duplicate rules and no error on the
    existing table; stopping removes it and nothing else (the machine's other tables stay)."""
    s = make_settings()
    _assert_starts_and_stops_only_its_own_table(_firewall_unit_lifecycle(_nft(), _unit(s), _rules(s), tmp_path))


@pytest.mark.parametrize(
    ("part", "old", "new"),
    [
        ("unit", "ExecStop=/usr/sbin/nft delete table inet django_vps", "ExecStop=/usr/sbin/nft flush ruleset"),
        ("rules", "table inet django_vps\ndelete table inet django_vps\n", "flush ruleset\n"),
        ("rules", "table inet django_vps\ndelete table inet django_vps\n", ""),
    ],
    ids=["stop-flushes-everything", "start-flushes-everything", "start-not-repeatable"],
)
def test_firewall_unit_check_notices_a_unit_that_touches_other_tables(
    tmp_path: Path, part: str, old: str, new: str
) -> None:
    """Control: a unit or rules file that flushes the whole ruleset, or adds its rules again on a
    restart, fails the check above."""
    s = make_settings()
    texts = {"unit": _unit(s), "rules": _rules(s)}
    assert texts[part].count(old) == 1
    texts[part] = texts[part].replace(old, new)
    found = _firewall_unit_lifecycle(_nft(), texts["unit"], texts["rules"], tmp_path)
    with pytest.raises(AssertionError):
        _assert_starts_and_stops_only_its_own_table(found)


# The metadata service, as a server sees it: an HTTP server (root's) at Hetzner's two metadata
# addresses on a link of a fresh network namespace; the table applied by the unit's ExecStart; then a
# connection from each uid, and a UDP datagram. Each result is "ok:<what it read>" or the error.
METADATA_PROBE = r"""
import json, os, socket, subprocess, sys, threading, time

def ip(*args):
    subprocess.run(["ip", *args], check=True)

ip("link", "set", "lo", "up")
ip("link", "add", "dvpsmeta0", "type", "veth", "peer", "name", "dvpsmeta1")
ip("link", "set", "dvpsmeta1", "up")
ip("link", "set", "dvpsmeta0", "up")
ip("addr", "add", "169.254.169.254/32", "dev", "dvpsmeta0")
ip("-6", "addr", "add", "fe80::a9fe:a9fe/64", "dev", "dvpsmeta0", "nodad")
# The kernel puts an IPv6 address in service (its local route) from a work queue that needs the
# machine-wide rtnl lock, nodad or not: seconds late while other namespaces come and go (labs of
# parallel test runs). A SYN sent before that leaves by the link, unanswered: wait for the route.
deadline = time.monotonic() + 30
local = ["ip", "-6", "route", "show", "table", "local", "dev", "dvpsmeta0"]
while "fe80::a9fe:a9fe" not in subprocess.run(local, capture_output=True, text=True).stdout:
    if time.monotonic() > deadline:
        sys.exit("fe80::a9fe:a9fe did not come into service in 30 s")
    time.sleep(0.05)
subprocess.run(json.loads(sys.argv[1]), check=True)

listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
listener.bind(("::", 80))
listener.listen(16)

def serve():
    while True:
        conn, _ = listener.accept()
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nssh_keys: ed25519_private")
        conn.close()

threading.Thread(target=serve, daemon=True).start()
link = socket.if_nametoindex("dvpsmeta0")
TARGETS = {
    "ipv4": (socket.AF_INET, ("169.254.169.254", 80)),
    "ipv6": (socket.AF_INET6, ("fe80::a9fe:a9fe", 80, 0, link)),
}

def probe(uid, family, address, kind):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            if kind == "tcp":
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    s.settimeout(3)
                    s.connect(address)
                    s.sendall(b"GET /hetzner/v1/userdata HTTP/1.0\r\n\r\n")
                    answer = s.recv(200).decode().split("\r\n\r\n", 1)[-1]
            else:
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.sendto(b"x", (address[0], 53, *address[2:]))
                    answer = "sent"
            os.write(write, f"ok:{answer}".encode())
        except OSError as error:
            os.write(write, f"{type(error).__name__}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as result:
        return result.read()

found = {}
for uid in (0, 33, 1001, 65534):
    for name, (family, address) in TARGETS.items():
        for kind in ("tcp", "udp"):
            found[f"{uid} {name} {kind}"] = probe(uid, family, address, kind)
print(json.dumps(found))
"""


def _metadata_probe(rules: str, unit: str, tmp_path: Path) -> dict[str, str]:
    """METADATA_PROBE in a fresh network namespace, the rules applied exactly as the unit applies them."""
    unshare, flag, _ = _nft()
    path = tmp_path / "firewall.nft"
    path.write_text(rules)
    start = [str(path) if arg == RULES else arg for arg in _unit_commands(unit)["ExecStart"]]
    python = find_tool("python3") or "/usr/bin/python3"
    result = subprocess.run(
        [unshare, flag, python, "-c", METADATA_PROBE, json.dumps(start)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


READ = "ok:ssh_keys: ed25519_private"


@pytest.mark.parametrize("host_firewall", ["true", "false"])
def test_only_root_reaches_the_metadata_service(host_firewall: str, tmp_path: Path) -> None:
    """With the table applied (hostFirewall on or off), root reads the user data at both of Hetzner's
    metadata addresses; any other uid (www-data 33, an app user, nobody) gets a refused connection (a
    TCP reset) and its datagrams are not sent."""
    s = make_settings(hostFirewall=host_firewall)
    found = _metadata_probe(_rules(s), _unit(s), tmp_path)
    for family in ("ipv4", "ipv6"):
        assert found[f"0 {family} tcp"] == READ, found
        assert found[f"0 {family} udp"] == "ok:sent", found
        for uid in (33, 1001, 65534):
            assert found[f"{uid} {family} tcp"] == "ConnectionRefusedError", found
            assert found[f"{uid} {family} udp"] == "PermissionError", found


def test_metadata_probe_control_without_the_output_chain(tmp_path: Path) -> None:
    """Control: the same probe with the output chain left out of the rules reads the user data as
    every uid, so what refuses them above is the chain."""
    s = make_settings()
    rules = _rules(s)
    chain = rules[rules.index("    chain output {") : rules.index("    }\n", rules.index("    chain output {")) + 6]
    without = rules.replace(chain, "")
    assert "chain output" not in without and "chain input" in without
    found = _metadata_probe(without, _unit(s), tmp_path)
    for uid in (0, 33, 1001, 65534):
        assert found[f"{uid} ipv4 tcp"] == READ and found[f"{uid} ipv6 tcp"] == READ, found


def test_firewall_unit_orders_before_the_network_without_a_boot_cycle(tmp_path: Path) -> None:
    """systemd-analyze on a boot with the units of a Hetzner server: cloud-init.service runs after
    networking.service and before sysinit.target (its [Unit] ordering is copied below from Debian
    12's cloud-init 22.4.2 and ifupdown 0.8.41 packages). A firewall ordered before network-pre.target
    with the default dependencies (after sysinit.target) closes a cycle, and systemd then drops a
    boot job; the rendered unit must not."""
    analyze = find_tool("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: apt-get install -y systemd")
    units = tmp_path / "units"
    units.mkdir()
    (units / "networking.service").write_text(
        "[Unit]\nDefaultDependencies=no\nWants=network.target\n"
        "After=local-fs.target network-pre.target systemd-sysctl.service systemd-modules-load.service\n"
        "Before=network.target shutdown.target network-online.target\nConflicts=shutdown.target\n"
        "[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    (units / "cloud-init.service").write_text(
        "[Unit]\nDefaultDependencies=no\nAfter=systemd-networkd-wait-online.service\nAfter=networking.service\n"
        "Before=network-online.target\nBefore=sysinit.target\nBefore=shutdown.target\nConflicts=shutdown.target\n"
        "[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    (units / "boot-test.target").write_text(
        "[Unit]\nWants=django-vps-firewall.service networking.service cloud-init.service sysinit.target\n"
    )

    def cycles(unit_text: str) -> str:
        (units / "django-vps-firewall.service").write_text(unit_text)
        result = subprocess.run(
            [analyze, "verify", "--man=no", str(units / "boot-test.target")],
            env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:", "SYSTEMD_LOG_LEVEL": "info"},
            capture_output=True,
            text=True,
            check=False,
        )
        output = result.stdout + result.stderr
        assert "django-vps-firewall.service" not in output or "ordering cycle" in output, output
        return "\n".join(line for line in output.splitlines() if "cycle" in line)

    unit = _unit(make_settings())
    assert cycles(unit) == ""
    # Control: the same unit with the default dependencies is in a cycle.
    assert "ordering cycle" in cycles(unit.replace("DefaultDependencies=no\n", ""))


# --- the CI key's forced command -----------------------------------------------------------------

STUB = """#!/bin/bash
printf '%s\\n' "$@" >"{out}"
echo "deploy.sh ran with the key {secret}"
exit "${{STUB_EXIT:-0}}"
"""
SECRET_KEY = "ci-secret-key-value-0123456789"


def _ci_command(s: Settings, tmp_path: Path) -> tuple[Path, Path]:
    """ci-command as rendered, with only the paths it runs moved: deploy.sh to a stub that records
    its arguments and prints the SECRET_KEY, the mask (the real redact.py) and the .env it reads
    into tmp_path. The commands it accepts are still the host's paths, as the workflow sends them."""
    stub, out = tmp_path / "deploy-stub.sh", tmp_path / "deploy-args"
    stub.write_text(STUB.format(out=out, secret=SECRET_KEY))
    stub.chmod(0o755)
    redact, env = tmp_path / "redact.py", tmp_path / ".env"
    redact.write_text(render.redact_py())
    env.write_text(f"SECRET_KEY={SECRET_KEY}\n")
    script = tmp_path / "ci-command"
    relocated = relocate(
        render.ci_command_sh(s),
        {
            'redacted() { "$deploy" "$1"': f'redacted() {{ {stub} "$1"',
            f" {s.redact_script} {s.env_file} ": f" {redact} {env} ",
        },
    )
    assert str(stub) in relocated and str(redact) in relocated, "the paths to move are not where they were"
    script.write_text(relocated)
    script.chmod(0o755)
    return script, out


def _run(script: Path, original_command: str | None, **env: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **env}
    if original_command is not None:
        env["SSH_ORIGINAL_COMMAND"] = original_command
    return subprocess.run(
        [str(script)], env=env, capture_output=True, stdin=subprocess.DEVNULL, text=True, timeout=10, check=False
    )


@pytest.mark.parametrize(("suffix", "argument"), [("", "deploy"), (" deploy", "deploy"), (" rollback", "rollback")])
@pytest.mark.parametrize("path", ["deploy_script", "legacy"])
def test_ci_command_runs_deploy_sh_with_its_output_masked(
    variant: Settings, suffix: str, argument: str, path: str, tmp_path: Path
) -> None:
    """The workflow's command, or the one a workflow written for an earlier version sends (the
    scripts were in ~/bin): the same deploy.sh, root's, runs."""
    script, out = _ci_command(variant, tmp_path)
    asked = variant.deploy_script if path == "deploy_script" else f"{variant.legacy_bin_dir}/deploy.sh"
    result = _run(script, asked + suffix)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "deploy.sh ran with the key [secret SECRET_KEY]\n" and result.stderr == ""
    assert out.read_text().splitlines() == [argument]


def test_ci_command_fails_when_deploy_sh_fails(variant: Settings, tmp_path: Path) -> None:
    """The mask must not swallow a failure: the workflow's step fails with deploy.sh's status."""
    script, _ = _ci_command(variant, tmp_path)
    assert _run(script, variant.deploy_script, STUB_EXIT="3").returncode == 3
    assert _run(script, variant.deploy_script, STUB_EXIT="0").returncode == 0  # the control


def test_ci_command_refuses_anything_else(variant: Settings, tmp_path: Path) -> None:
    script, out = _ci_command(variant, tmp_path)
    deploy = variant.deploy_script
    for command in (
        None,  # an interactive login
        "",
        "id",
        "deploy.sh; id",
        f"{deploy}; id",
        f"{deploy} deploy; id",
        f"{deploy} deploy && id",
        f"{deploy} $(id)",
        f"{deploy} rollback --force",
        f"{deploy}  deploy",
        f"{deploy} deploy\nid",
        f"bash -c {deploy}",
        f"sudo {deploy}",
        f"{variant.legacy_bin_dir}/deploy.sh; id",
        f"{variant.legacy_bin_dir}/ci-command",
    ):
        result = _run(script, command)
        assert result.returncode == 1, command
        assert result.stderr == REFUSAL.format(deploy), command
        assert result.stdout == "", f"{command!r} ran something"
        assert not out.exists(), f"{command!r} reached deploy.sh"


def test_destroy_keeps_the_hardening(sandbox: Sandbox) -> None:
    """On an existing host, `pulumi destroy` leaves the hardening in place and says how to undo it."""
    s = _root_login()
    sandbox.run(sandboxed_security(render.security_step(s)))
    before = sandbox.files()
    sandbox.clear_calls()
    result = sandbox.run(render.teardown_step(s, "security"))
    assert sandbox.files() == before
    assert sandbox.calls() == []
    assert "kept the SSH hardening" in result.stdout
