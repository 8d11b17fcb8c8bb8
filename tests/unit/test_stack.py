"""The real __main__.py under mocks: which resources, under which parents, wired how."""

from __future__ import annotations

import json
from collections import Counter

import pulumi
import pytest
import yaml

from components.host import (
    CREATED_SERVER_ONLY,
    DATA_VOLUME_ONLY,
    OFFSITE_ONLY,
    POSTGRESQL_ONLY,
    STEP_NEEDS,
    STEPS,
    TEARDOWN_AFTER,
)
from components.settings import github_environment
from tests.unit.conftest import (
    PROD_CONFIG,
    SERVER_IPV4,
    SERVER_IPV6,
    Recorded,
    StackRun,
    is_secret,
    unwrap,
)
from tests.unit.keys import ed25519_pair, ed25519_public

LABELS = {"managed-by": "django-vps", "app": "blog", "stack": "prod"}
SECRET_NAMES = ["SSH_HOST", "SSH_USERNAME", "SSH_KEY", "SSH_KNOWN_HOSTS"]
EXISTING_IP = "203.0.113.10"

COMMAND = "command:remote:Command"
SERVER = "hcloud:index/server:Server"
FIREWALL = "hcloud:index/firewall:Firewall"
SSH_KEY = "hcloud:index/sshKey:SshKey"
RRSET = "hcloud:index/zoneRrset:ZoneRrset"
ZONE = "hcloud:index/zone:Zone"
TLS_KEY = "tls:index/privateKey:PrivateKey"
SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
REPOSITORY_SECRET = "github:index/actionsSecret:ActionsSecret"
ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
DEPLOY_KEY = "github:index/repositoryDeployKey:RepositoryDeployKey"
FILE = "github:index/repositoryFile:RepositoryFile"
GITHUB_PROVIDER = "pulumi:providers:github"
STACK = "pulumi:pulumi:Stack"

# A created server's steps with the default settings (SQLite: no database step).
CREATED_STEPS = set(STEP_NEEDS) - POSTGRESQL_ONLY - OFFSITE_ONLY - DATA_VOLUME_ONLY

# The prod example: every resource, its type and the component it belongs to.
PROD_RESOURCES: dict[str, tuple[str, str]] = {
    "blog": ("django-vps:site:DjangoSite", STACK),
    "blog-server": ("django-vps:server:Server", "blog"),
    "blog-dns": ("django-vps:dns:Dns", "blog"),
    "blog-github": ("django-vps:github:GitHubAccess", "blog"),
    "blog-host": ("django-vps:host:Host", "blog"),
    "blog-secret-key": ("random:index/randomPassword:RandomPassword", "blog"),
    "blog-server-provisioning-key": (TLS_KEY, "blog-server"),
    "blog-server-host-key": (TLS_KEY, "blog-server"),
    "blog-server-provisioning": (SSH_KEY, "blog-server"),
    "blog-server-firewall": (FIREWALL, "blog-server"),
    "blog-server-server": (SERVER, "blog-server"),
    "blog-dns-a": (RRSET, "blog-dns"),
    "blog-dns-aaaa": (RRSET, "blog-dns"),
    "blog-github-provider": (GITHUB_PROVIDER, "blog-github"),
    "blog-github-ci-key": (TLS_KEY, "blog-github"),
    "blog-github-deploy-key": (TLS_KEY, "blog-github"),
    "blog-github-deploy-key#github": (DEPLOY_KEY, "blog-github"),
    "blog-github-environment": (ENVIRONMENT, "blog-github"),
    "blog-github-ssh-host": (SECRET, "blog-github"),
    "blog-github-ssh-username": (SECRET, "blog-github"),
    "blog-github-ssh-key": (SECRET, "blog-github"),
    "blog-github-ssh-known-hosts": (SECRET, "blog-github"),
    "blog-github-workflow": (FILE, "blog-github"),
    **{f"blog-host-{step}": (COMMAND, "blog-host") for step in CREATED_STEPS},
}


def one(run: StackRun, typ: str, name: str | None = None) -> Recorded:
    found = [r for r in run.mocks.of_type(typ) if name is None or r.name == name]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def parent_of(run: StackRun, r: Recorded) -> str:
    if r.parent.split("::")[2] == STACK:
        return STACK
    return run.mocks.by_urn(r.parent).name


def commands(run: StackRun) -> dict[str, Recorded]:
    return {r.name.removeprefix("blog-host-"): r for r in run.mocks.commands()}


def public_key(run: StackRun, name: str) -> str:
    """A tls key's public half as "type base64" (what host_key and known_hosts hold)."""
    return " ".join(run.mocks.tls_key(name)["publicKeyOpenssh"].split()[:2])


def existing_host_config(**extra: str | None) -> dict[str, str | None]:
    return {
        "existingHost": EXISTING_IP,
        "existingHostKey": ed25519_public("existing-host", "root@old-server"),
        "existingHostPrivateKey": ed25519_pair("existing-login")[0],
        "serverType": None,
        "location": None,
        "backups": None,
        **extra,
    }


# The prod example stack.


def test_prod_example_registers_exactly_these_resources(run_stack) -> None:
    run = run_stack()
    recorded = {(r.name + ("#github" if r.typ == DEPLOY_KEY else "")): r for r in run.resources}
    assert len(recorded) == len(run.resources), "duplicate names"
    assert {name: r.typ for name, r in recorded.items()} == {name: typ for name, (typ, _) in PROD_RESOURCES.items()}
    assert Counter(r.typ for r in run.resources) == {
        "django-vps:site:DjangoSite": 1,
        "django-vps:server:Server": 1,
        "django-vps:dns:Dns": 1,
        "django-vps:github:GitHubAccess": 1,
        "django-vps:host:Host": 1,
        "random:index/randomPassword:RandomPassword": 1,
        TLS_KEY: 4,
        SSH_KEY: 1,
        FIREWALL: 1,
        SERVER: 1,
        RRSET: 2,
        GITHUB_PROVIDER: 1,
        ENVIRONMENT: 1,
        SECRET: 4,
        DEPLOY_KEY: 1,
        FILE: 1,
        COMMAND: 15,
    }


def test_every_resource_has_the_right_parent(run_stack) -> None:
    run = run_stack()
    parents = {(r.name + ("#github" if r.typ == DEPLOY_KEY else "")): parent_of(run, r) for r in run.resources}
    assert parents == {name: parent for name, (_, parent) in PROD_RESOURCES.items()}
    # Components are components, everything else is custom.
    for r in run.resources:
        assert r.registration.custom is (not r.typ.startswith("django-vps:")), r.name


def test_tls_keys_are_ed25519(run_stack) -> None:
    run = run_stack()
    keys = run.mocks.of_type(TLS_KEY)
    assert sorted(r.name for r in keys) == [
        "blog-github-ci-key",
        "blog-github-deploy-key",
        "blog-server-host-key",
        "blog-server-provisioning-key",
    ]
    assert {r.inputs["algorithm"] for r in keys} == {"ED25519"}


def test_firewall_opens_only_ssh_http_https_and_icmp(run_stack) -> None:
    run = run_stack()
    firewall = one(run, FIREWALL)
    rules = firewall.inputs["rules"]
    assert sorted((r["direction"], r["protocol"], r.get("port")) for r in rules) == sorted(
        [("in", "tcp", "22"), ("in", "tcp", "80"), ("in", "tcp", "443"), ("in", "icmp", None)]
    )
    assert all(r["sourceIps"] == ["0.0.0.0/0", "::/0"] for r in rules)
    assert firewall.inputs["labels"] == LABELS
    assert firewall.inputs["name"] == "blog-prod"


def test_server(run_stack) -> None:
    run = run_stack()
    server = one(run, SERVER)
    firewall = one(run, FIREWALL)
    ssh_key = one(run, SSH_KEY)
    # The name carries location and image: a replacement's new server exists beside the old one.
    assert server.inputs["name"] == "blog-prod-fsn1-debian-12"
    assert firewall.inputs["name"] == "blog-prod" and ssh_key.inputs["name"] == "blog-prod-provisioning"
    assert (server.inputs["serverType"], server.inputs["image"], server.inputs["location"]) == (
        "cx23",
        "debian-12",
        "fsn1",
    )
    assert server.inputs["backups"] is False
    assert server.inputs["labels"] == LABELS
    assert [int(i) for i in server.inputs["firewallIds"]] == [int(firewall.id)]
    assert server.inputs["sshKeys"] == [ssh_key.id]
    assert server.inputs["publicNets"] == [{"ipv4Enabled": True, "ipv6Enabled": True}]
    # cloud-init runs once, and a new location or image is a new server: none of it may rebuild the
    # server unless the user confirmed a replacement (test_hetzner_changes.py).
    assert set(server.registration.ignore_changes) == {"userData", "sshKeys", "location", "image"}
    assert server.registration.delete_before_replace is False
    assert "userData" in server.registration.additional_secret_outputs
    assert ssh_key.inputs["publicKey"] == run.mocks.tls_key("blog-server-provisioning-key")["publicKeyOpenssh"]
    assert ssh_key.inputs["labels"] == LABELS


def test_server_user_data_is_cloud_config_with_the_pinned_host_key(run_stack) -> None:
    run = run_stack()
    user_data = one(run, SERVER).plain("userData")
    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    host_key = run.mocks.tls_key("blog-server-host-key")
    assert config["ssh_keys"]["ed25519_private"].strip() == host_key["privateKeyOpenssh"].strip()
    assert config["ssh_keys"]["ed25519_public"] == public_key(run, "blog-server-host-key")
    assert config["ssh_deletekeys"] is True
    assert "ssh_genkeytypes" not in config  # cloud-init makes no key of its own when ssh_keys is given
    assert config["ssh_pwauth"] is False
    # Root cannot log in; the admin user (passwordless sudo) has the provisioning key.
    assert config["disable_root"] is True
    (admin,) = config["users"]
    assert admin["name"] == "admin"
    assert (admin["groups"], admin["sudo"], admin["lock_passwd"]) == (["sudo"], "ALL=(ALL) NOPASSWD:ALL", True)
    assert admin["ssh_authorized_keys"] == [public_key(run, "blog-server-provisioning-key")]


def test_another_admin_user_is_made_logged_in_as_and_exported(run_stack) -> None:
    run = run_stack(adminUser="ops")
    config = yaml.safe_load(one(run, SERVER).plain("userData"))
    assert [user["name"] for user in config["users"]] == ["ops"]
    assert {c.plain("connection")["user"] for c in run.mocks.commands()} == {"ops"}
    assert {c.plain("create").startswith("sudo -n bash -c ") for c in run.mocks.commands()} == {True}
    assert run.exports["sshCommand"] == f"ssh ops@{SERVER_IPV4}"


def test_schedule_logs_is_an_output_only_with_a_schedule(run_stack) -> None:
    tick = [{"name": "tick", "on": "hourly", "command": "clearsessions"}]
    run = run_stack(schedule=json.dumps(tick))
    assert run.exports["scheduleLogs"] == (
        f"ssh admin@{SERVER_IPV4} sudo journalctl -u 'django-vps-blog.*' -n 50 --no-pager"
    )
    assert "scheduleLogs" not in run_stack().exports


def test_no_admin_keys_is_warned_about_once(run_stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pulumi.prod.yaml has no adminSshKeys: nobody could log in to operate the site. A warning, not
    a refusal (the workflow deploys without them); with a key, none."""
    from components import site as site_module

    warned: list[str] = []
    monkeypatch.setattr(site_module.pulumi.log, "warn", lambda message, *args, **kwargs: warned.append(message))
    run_stack()
    assert len(warned) == 1 and warned[0].startswith("adminSshKeys is empty: only the stack's own provisioning key")
    warned.clear()
    run_stack(adminSshKeys=json.dumps([ed25519_public("admin-1", "me@laptop")]))
    assert warned == []


def test_admin_keys_reach_cloud_init_and_the_admin_keys_step_not_hetzner(run_stack) -> None:
    """Hetzner gets the provisioning key only (a user's key may already be in the project, and an
    edited one would collide on its name); the admin user gets them all, at the first boot from
    cloud-init and after it from the admin-keys step."""
    admin = [ed25519_public("admin-1", "me@laptop"), ed25519_public("admin-2")]
    run = run_stack(adminSshKeys=json.dumps(admin))
    (key,) = run.mocks.of_type(SSH_KEY)
    assert key.name == "blog-server-provisioning"
    server = one(run, SERVER)
    assert server.inputs["sshKeys"] == [key.id]
    authorized = yaml.safe_load(server.plain("userData"))["users"][0]["ssh_authorized_keys"]
    assert authorized == [public_key(run, "blog-server-provisioning-key"), *admin]
    step = commands(run)["admin-keys"]
    assert step.plain("create") == step.plain("update")
    assert not step.inputs.get("triggers") and not step.inputs.get("delete")
    for line in (public_key(run, "blog-server-provisioning-key"), *admin):
        assert f"\n{line}\n" in step.plain("create")


def test_dns_records_point_the_apex_at_the_server(run_stack) -> None:
    run = run_stack()
    rrsets = {r.inputs["type"]: r for r in run.mocks.of_type(RRSET)}
    assert set(rrsets) == {"A", "AAAA"}
    for kind, address in (("A", SERVER_IPV4), ("AAAA", SERVER_IPV6)):
        r = rrsets[kind]
        assert (r.inputs["zone"], r.inputs["name"], r.inputs["ttl"]) == ("blog.com", "@", 300)
        assert r.inputs["records"] == [{"value": address}]
        assert r.inputs["labels"] == LABELS
        server = one(run, SERVER)
        assert server.urn in r.registration.property_dependencies["records"]
    assert not run.mocks.of_type(ZONE)


def test_github_secrets_for_the_workflow_are_the_stacks_environments(run_stack) -> None:
    run = run_stack()
    environment = one(run, ENVIRONMENT)
    assert environment.inputs == {"repository": "blog", "environment": "prod"}
    assert not run.mocks.of_type(REPOSITORY_SECRET), "a repository secret is shared by every stack"
    secrets = {r.inputs["secretName"]: r for r in run.mocks.of_type(SECRET)}
    assert sorted(secrets) == sorted(SECRET_NAMES)
    for r in secrets.values():
        assert is_secret(r.inputs["value"])
        assert "plaintextValue" not in r.inputs and "encryptedValue" not in r.inputs
        assert (r.inputs["repository"], r.inputs["environment"]) == ("blog", "prod")
        # The environment's name comes from the environment resource: created first, deleted last.
        assert environment.urn in r.registration.property_dependencies["environment"]
    host_key = public_key(run, "blog-server-host-key")
    assert secrets["SSH_HOST"].plain("value") == SERVER_IPV4
    assert secrets["SSH_USERNAME"].plain("value") == "blog"
    ci_key = run.mocks.tls_key("blog-github-ci-key")["privateKeyOpenssh"]
    assert secrets["SSH_KEY"].plain("value") == ci_key
    assert secrets["SSH_KNOWN_HOSTS"].plain("value") == f"{SERVER_IPV4} {host_key}"
    assert run.exports["githubEnvironment"] == "prod"


def test_a_second_stack_on_the_repository_owns_other_things_only(run_stack) -> None:
    """staging beside prod: its own environment, secrets (same names, in its environment) and
    workflow file on its own branch, so neither up nor destroy of one touches the other's."""
    prod = run_stack()
    staging = run_stack(stack="staging", branch="staging", domain="staging.blog.com")

    def owned(run: StackRun) -> set[tuple[str, ...]]:
        things: set[tuple[str, ...]] = set()
        for r in run.resources:
            if r.typ == ENVIRONMENT:
                things.add(("environment", r.inputs["environment"]))
            elif r.typ == SECRET:
                things.add(("secret", r.inputs["environment"], r.inputs["secretName"]))
            elif r.typ == FILE:
                things.add(("file", r.inputs["branch"], r.inputs["file"]))
        return things

    assert owned(prod) & owned(staging) == set()
    assert ("file", "staging", ".github/workflows/deploy-staging.yml") in owned(staging)
    assert ("environment", "staging") in owned(staging)
    workflow = yaml.safe_load(one(staging, FILE).inputs["content"])
    assert workflow[True]["push"]["branches"] == ["staging"]
    assert workflow["jobs"]["deploy"]["environment"] == {"name": "staging", "url": "https://staging.blog.com"}
    assert workflow["concurrency"]["group"] == "deploy-staging"
    assert staging.exports["nextSteps"].split(". ")[1] == (
        "A push to staging deploys (.github/workflows/deploy-staging.yml, GitHub Environment staging)"
    )


@pytest.mark.parametrize(
    ("stack", "accepted"),
    [("prod", True), ("staging.eu-1", True), ("Prod_2", True), ("x" * 100, True), (".", False), ("..", False)],
)
def test_the_environment_name_is_the_stacks_checked_as_github_does(stack: str, accepted: bool) -> None:
    if accepted:
        assert github_environment(stack) == stack
        return
    with pytest.raises(pulumi.RunError) as refused:
        github_environment(stack)
    (line,) = str(refused.value).splitlines()
    assert line.startswith(f"django-vps: the stack name {stack!r} cannot name its GitHub Environment"), line


def test_a_stack_name_github_refuses_registers_nothing(run_stack) -> None:
    with pytest.raises(Exception, match=r"cannot name its GitHub Environment"):
        run_stack(stack="..", manageDns="false", **existing_host_config())


def test_read_only_deploy_key_and_workflow_file(run_stack) -> None:
    run = run_stack()
    deploy_key = one(run, DEPLOY_KEY)
    assert deploy_key.inputs["readOnly"] is True
    assert deploy_key.inputs["repository"] == "blog"
    assert deploy_key.inputs["key"] == public_key(run, "blog-github-deploy-key")
    assert deploy_key.inputs["title"] == "django-vps blog.com (read-only clone)"
    workflow = one(run, FILE)
    assert workflow.inputs["file"] == ".github/workflows/deploy-prod.yml"
    assert (workflow.inputs["repository"], workflow.inputs["branch"]) == ("blog", "main")
    assert workflow.inputs["overwriteOnCreate"] is True
    content = yaml.safe_load(workflow.inputs["content"])
    triggers = content[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"]["branches"] == ["main"]
    assert content["jobs"]["deploy"]["environment"] == {"name": "prod", "url": "https://blog.com"}
    for name in SECRET_NAMES:
        assert f"secrets.{name}" in workflow.inputs["content"]
    assert "StrictHostKeyChecking=yes" in workflow.inputs["content"]
    assert workflow.inputs["content"].rstrip().endswith("/opt/django-vps/blog/bin/deploy.sh")


def test_github_resources_use_the_explicit_provider_for_the_owner(run_stack) -> None:
    run = run_stack()
    provider = one(run, GITHUB_PROVIDER)
    assert provider.inputs["owner"] == "sdelquin"
    github = [r for r in run.resources if r.typ.startswith("github:")]
    assert len(github) == 7
    for r in github:
        assert r.registration.provider == f"{provider.urn}::{provider.id}", r.name


def test_host_steps_wait_for_exactly_what_they_need(run_stack) -> None:
    """The engine runs every step whose needs are done at once: each depends on the steps named in
    STEP_NEEDS and on no other command, and no input of a step comes from another command."""
    run = run_stack()
    steps = commands(run)
    assert set(steps) == CREATED_STEPS == {*STEPS, *CREATED_SERVER_ONLY}
    assert STEP_NEEDS["packages"] == ("volume",) and STEP_NEEDS["dns-wait"] == () and STEP_NEEDS["admin-keys"] == ()
    for role in CREATED_STEPS:
        registration = steps[role].registration
        waited = {other for other, c in steps.items() if c.urn in registration.dependencies}
        assert waited == set(STEP_NEEDS[role]) - POSTGRESQL_ONLY - OFFSITE_ONLY - DATA_VOLUME_ONLY, role
        assert not any(c.urn in urns for c in steps.values() for urns in registration.property_dependencies.values())

    def upstream(role: str) -> set[str]:
        seen: set[str] = set()
        todo = [role]
        while todo:
            for need in STEP_NEEDS[todo.pop()]:
                if need not in seen:
                    seen.add(need)
                    todo.append(need)
        return seen

    # What each step uses is installed before it: packages (apt, uv, git, nginx) before everything
    # that uses them, the user before its files, the first release before gunicorn starts, the HTTP
    # site and the A record before certbot.
    for role in STEPS:
        if role not in ("packages", "dns-wait"):
            assert "packages" in upstream(role), role
    assert {"app-user", "clone", "env"} <= upstream("deploy")
    assert "deploy" in upstream("supervisor")
    assert {"nginx", "dns-wait"} <= upstream("certbot")
    # ...and independent work is not serialised: the hardening, the site and the app run side by side.
    for a, b in (("security", "nginx"), ("nginx", "deploy"), ("certbot", "supervisor")):
        assert a not in upstream(b) and b not in upstream(a), (a, b)
    # Everything that opens connections waits for the firewall: one loaded under an open connection
    # can leave it hanging (the lab's clone stalled so, once).
    for role in ("app-user", "clone", "deploy", "certbot"):
        assert "security" in upstream(role), role


def test_the_security_step_hardens_right_after_the_packages(run_stack) -> None:
    run = run_stack()
    steps = commands(run)
    assert steps["packages"].urn in steps["security"].dependencies
    script = steps["security"].plain("create")
    assert script.startswith("sudo -n bash -c ")
    assert "PermitRootLogin no" in script and "django_vps" in script and "fail2ban" in script
    assert steps["security"].inputs["update"] == steps["security"].inputs["create"]


def test_the_workflow_is_committed_only_once_the_site_serves(run_stack) -> None:
    """Committing the workflow is a push: its first deploy must find the server provisioned and the
    site verified (the verify step runs after the supervisor and certbot steps)."""
    run = run_stack()
    steps = commands(run)
    workflow = one(run, FILE)
    assert steps["verify"].urn in workflow.registration.dependencies
    # ...and the first run finds the environment's secrets there.
    assert {r.urn for r in run.mocks.of_type(SECRET)} <= workflow.registration.dependencies
    assert {steps["supervisor"].urn, steps["certbot"].urn} <= steps["verify"].dependencies


def test_clone_waits_for_the_deploy_key_and_certbot_path_for_dns(run_stack) -> None:
    run = run_stack()
    steps = commands(run)
    deploy_key = one(run, DEPLOY_KEY)
    assert deploy_key.urn in steps["clone"].dependencies
    assert deploy_key.urn not in steps["app-user"].dependencies
    rrsets = run.mocks.of_type(RRSET)
    assert len(rrsets) == 2
    for r in rrsets:
        assert r.urn in steps["dns-wait"].dependencies
        assert r.urn not in steps["nginx"].dependencies
    assert steps["dns-wait"].urn in steps["certbot"].dependencies


def test_every_command_pins_the_host_key_and_goes_with_the_server(run_stack) -> None:
    run = run_stack()
    server = one(run, SERVER)
    host_key = public_key(run, "blog-server-host-key")
    provisioning = run.mocks.tls_key("blog-server-provisioning-key")["privateKeyOpenssh"]
    for role, c in commands(run).items():
        connection = c.plain("connection")
        assert connection["hostKey"] == host_key, role
        assert connection["host"] == SERVER_IPV4
        assert connection["user"] == "admin"  # the cloud-init user: root cannot log in
        assert connection["privateKey"] == provisioning
        assert connection["dialErrorLimit"] > 0 and connection["perDialTimeout"] > 0
        assert c.registration.deleted_with == server.urn, role
        assert c.inputs["create"] and c.inputs["update"] == c.inputs["create"]
        # A change of script or stdin must be an update in place. triggers would make it a
        # replacement (create-before-delete), and a delete would then uninstall what was just installed.
        assert not c.inputs.get("triggers"), role
        assert not c.inputs.get("delete"), role
    # A created server takes everything with it: no teardown commands.
    assert set(commands(run)) == CREATED_STEPS


def test_dns_wait_expects_the_servers_ipv4(run_stack) -> None:
    run = run_stack()
    assert SERVER_IPV4 in commands(run)["dns-wait"].plain("create")


# Variants.


def test_postgresql_adds_the_database_step_before_the_first_deploy(run_stack) -> None:
    run = run_stack(database="postgresql")
    steps = commands(run)
    assert set(steps) == CREATED_STEPS | {"database"}
    waited = {other for other, c in steps.items() if c.urn in steps["database"].dependencies}
    assert waited == {"packages", "app-user"}
    assert steps["database"].urn in steps["deploy"].dependencies
    assert " postgresql\n" in steps["packages"].plain("create")
    script = steps["database"].plain("create")
    assert "ALTER SYSTEM SET listen_addresses" in script and "CREATE ROLE %I LOGIN" in script
    # No secret goes there: peer authentication has no password.
    assert "stdin" not in steps["database"].inputs
    env = run.mocks.named("blog-host-env").plain("stdin")
    assert "DATABASE_URL=postgres:///blog?host=/var/run/postgresql\n" in env and "PGUSER=blog\n" in env
    # SQLite needs neither.
    default = commands(run_stack())
    assert "database" not in default and "postgresql" not in default["packages"].plain("create")


def test_offsite_backups_get_a_key_and_password_of_the_stack_kept_secret(run_stack) -> None:
    host_key = ed25519_public("storage-box")
    run = run_stack(
        offsiteSftpHost="u1.your-storagebox.de", offsiteSftpPort="23", offsiteSftpUser="u1", offsiteSftpHostKey=host_key
    )
    steps = commands(run)
    assert set(steps) == CREATED_STEPS | {"offsite"}
    waited = {other for other, c in steps.items() if c.urn in steps["offsite"].dependencies}
    assert waited == {"packages", "app-user"}
    assert " restic openssh-client\n" in steps["packages"].plain("create")
    (password,) = [r for r in run.mocks.of_type("random:index/randomPassword:RandomPassword") if "offsite" in r.name]
    key = run.mocks.tls_key("blog-offsite-key")
    generated = password.outputs["result"]
    stdin = steps["offsite"].plain("stdin")
    assert stdin == f"{generated}\n{key['privateKeyOpenssh'].strip()}\n"
    assert is_secret(steps["offsite"].inputs["stdin"])
    script = steps["offsite"].plain("create")
    assert generated not in script and key["privateKeyOpenssh"].strip() not in script
    assert key["publicKeyOpenssh"].split()[1] in script  # named in the message to authorize it
    assert f"[u1.your-storagebox.de]:23 {host_key}" in script
    assert run.exports["offsiteRepository"] == "sftp:u1@u1.your-storagebox.de:django-vps/blog"
    # Printed by `pulumi destroy` among the outputs it removes (tests/e2e/test_offsite.py sees it).
    assert run.exports["offsiteBackups"].startswith(
        "restic repository sftp:u1@u1.your-storagebox.de:django-vps/blog: pulumi destroy never deletes it"
    )
    assert generated not in run.exports["offsiteBackups"]
    # The line `pulumi destroy` shows of them: a retained leaf component named after the repository.
    kept = run.mocks.of_type("django-vps:backup:OffsiteBackups")
    assert [(r.name, r.registration.retain_on_delete, r.registration.custom) for r in kept if r.registration] == [
        ("blog-offsite-backups kept at sftp:u1@u1.your-storagebox.de:django-vps/blog", True, False)
    ]
    assert run.exports["offsiteSshPublicKey"].startswith("ssh-ed25519 ")
    assert run.exports["__secret__"] == {"offsiteRepositoryPassword"}


def test_existing_host_mode(run_stack) -> None:
    run = run_stack(**existing_host_config())
    types = Counter(r.typ for r in run.resources)
    for absent in (SERVER, FIREWALL, SSH_KEY):
        assert types[absent] == 0, absent
    assert sorted(r.name for r in run.mocks.of_type(TLS_KEY)) == ["blog-github-ci-key", "blog-github-deploy-key"]
    assert types[COMMAND] == len(STEPS) + len(TEARDOWN_AFTER) == 18
    pinned = ed25519_public("existing-host")  # without the comment
    login = ed25519_pair("existing-login")[0]
    for role, c in commands(run).items():
        connection = c.plain("connection")
        assert connection["host"] == EXISTING_IP, role
        assert connection["hostKey"] == pinned, role
        assert connection["user"] == "root"
        assert connection["privateKey"].strip() == login.strip()
        # Nothing deletes the host: destroy runs the teardown scripts.
        assert c.registration.deleted_with == "", role
    steps = commands(run)
    # The teardowns are commands of their own that only delete: an update of one (say a re-rendered
    # teardown after a setting changed) runs nothing, and the install steps never uninstall.
    for role in STEPS:
        assert not steps[role].inputs.get("delete") and not steps[role].inputs.get("triggers"), role
    for part in TEARDOWN_AFTER:
        teardown = steps[f"teardown-{part}"]
        assert set(teardown.inputs) & {"create", "update", "triggers", "stdin"} == set(), part
        assert teardown.plain("delete").startswith("bash -c "), part
    assert "removed the nginx site blog" in steps["teardown-nginx"].inputs["delete"]
    assert "removed the supervisor program blog" in steps["teardown-supervisor"].inputs["delete"]
    assert "/etc/sudoers.d/django-vps-blog" in steps["teardown-app-user"].inputs["delete"]
    # destroy deletes dependents first: the site goes, then the program, then the keys and sudo rule;
    # each teardown also comes after what it removes.
    assert steps["teardown-supervisor"].urn in steps["teardown-nginx"].dependencies
    assert steps["teardown-app-user"].urn in steps["teardown-supervisor"].dependencies
    assert {steps["nginx"].urn, steps["certbot"].urn} <= steps["teardown-nginx"].dependencies
    assert steps["supervisor"].urn in steps["teardown-supervisor"].dependencies
    # An IPv4 address: an A record and no AAAA.
    (rrset,) = run.mocks.of_type(RRSET)
    assert (rrset.inputs["type"], rrset.inputs["name"], rrset.inputs["records"]) == ("A", "@", [{"value": EXISTING_IP}])
    assert rrset.urn in steps["dns-wait"].dependencies
    secrets = {r.inputs["secretName"]: r.plain("value") for r in run.mocks.of_type(SECRET)}
    assert secrets["SSH_HOST"] == EXISTING_IP
    assert secrets["SSH_KNOWN_HOSTS"] == f"{EXISTING_IP} {pinned}"
    assert run.exports["ipv4"] == EXISTING_IP
    assert run.exports["ipv6"] is None
    assert run.exports["hostKey"] == pinned
    assert run.exports["sshCommand"] == f"ssh root@{EXISTING_IP}"
    assert [r["type"] for r in run.exports["dnsRecords"]] == ["A"]
    # Logged in as root, the hardening keeps root's key logins (and nothing runs through sudo).
    security = steps["security"].plain("create")
    assert security.startswith("bash -c ") and "PermitRootLogin prohibit-password" in security


def test_existing_host_with_a_sudo_user(run_stack) -> None:
    run = run_stack(**existing_host_config(existingHostUser="deploy"))
    assert {c.plain("connection")["user"] for c in run.mocks.commands()} == {"deploy"}
    assert run.exports["sshCommand"] == f"ssh deploy@{EXISTING_IP}"
    security = commands(run)["security"].plain("create")
    assert security.startswith("sudo -n bash -c ") and "PermitRootLogin no" in security


def test_hardening_switches_reach_the_host_steps(run_stack) -> None:
    steps = commands(run_stack(hostFirewall="false", fail2ban="false", hsts="false"))
    security = steps["security"].plain("create")
    # The table stays for the metadata service's output chain; only the input chain goes.
    assert "table inet django_vps {" in security and "chain output {" in security
    assert "chain input {" not in security and "disable --now" not in security
    assert "fail2ban python3-systemd" not in security and "[sshd]" not in security
    assert "rm -f /etc/fail2ban/jail.d/django-vps.local" in security
    for role in ("nginx", "certbot"):
        # Without our HSTS header, the app's own is neither added to nor hidden.
        assert "Strict-Transport-Security" not in steps[role].plain("create")
    defaults = commands(run_stack())
    assert "add_header Strict-Transport-Security" in defaults["certbot"].plain("create")


def test_existing_host_without_ipv4_is_refused(run_stack) -> None:
    with pytest.raises(Exception, match=r"django-vps:existingHost: '2001:db8::5' has no IPv4 address"):
        run_stack(**existing_host_config(existingHost="2001:db8::5"))


def test_dns_off_lists_the_records_to_create_by_hand(run_stack) -> None:
    run = run_stack(manageDns="false")
    assert not run.mocks.of_type(RRSET) and not run.mocks.of_type(ZONE)
    assert run.exports["dnsManaged"] is False
    assert run.exports["dnsRecords"] == [
        {"type": "A", "name": "@", "zone": "blog.com", "fqdn": "blog.com", "value": SERVER_IPV4, "ttl": 300},
        {"type": "AAAA", "name": "@", "zone": "blog.com", "fqdn": "blog.com", "value": SERVER_IPV6, "ttl": 300},
    ]
    assert "Create the dnsRecords" in run.exports["nextSteps"]
    steps = commands(run)
    assert set(steps) == CREATED_STEPS
    # Nothing to wait for but the records the user creates: dns-wait starts at once.
    assert not any(c.urn in steps["dns-wait"].dependencies for c in steps.values())


def test_create_dns_zone(run_stack) -> None:
    run = run_stack(createDnsZone="true")
    zone = one(run, ZONE)
    assert (zone.inputs["name"], zone.inputs["mode"], zone.inputs["ttl"]) == ("blog.com", "primary", 300)
    assert zone.inputs["labels"] == LABELS
    assert parent_of(run, zone) == "blog-dns"
    rrsets = run.mocks.of_type(RRSET)
    assert len(rrsets) == 2
    for r in rrsets:
        assert r.inputs["zone"] == "blog.com"
        assert zone.urn in r.registration.property_dependencies["zone"], "the record does not reference the zone"


@pytest.mark.parametrize(
    ("domain", "zone", "name"),
    [("blog.com", "blog.com", "@"), ("www.blog.com", "blog.com", "www"), ("www.blog.co.uk", "blog.co.uk", "www")],
)
def test_record_name_relative_to_the_zone(run_stack, domain: str, zone: str, name: str) -> None:
    run = run_stack(domain=domain)
    rrsets = run.mocks.of_type(RRSET)
    assert {(r.inputs["zone"], r.inputs["name"]) for r in rrsets} == {(zone, name)}
    assert {r.inputs["type"] for r in rrsets} == {"A", "AAAA"}
    assert run.exports["url"] == f"https://{domain}"
    assert {(r["name"], r["zone"], r["fqdn"]) for r in run.exports["dnsRecords"]} == {(name, zone, domain)}


def test_no_workflow_file_when_deploy_workflow_is_off(run_stack) -> None:
    run = run_stack(deployWorkflow="false")
    assert not run.mocks.of_type(FILE)
    assert len(run.mocks.of_type(SECRET)) == 4
    assert "deployCommand" in run.exports["nextSteps"]


def test_a_bad_setting_registers_nothing(run_stack) -> None:
    with pytest.raises(Exception, match=r"django-vps:domain: 'Blog\.com' has uppercase letters"):
        run_stack(domain="Blog.com")


# The prod example, exactly as committed: its exports.


def test_prod_example_exports(run_stack) -> None:
    run = run_stack()
    assert run.config == PROD_CONFIG  # no overrides: Pulumi.prod.yaml as is
    host_key = public_key(run, "blog-server-host-key")
    exports = dict(run.exports)
    assert "__secret__" not in exports, f"secret exports: {exports.get('__secret__')}"
    assert exports == {
        "domain": "blog.com",
        "url": "https://blog.com",
        "ipv4": SERVER_IPV4,
        "ipv6": SERVER_IPV6,
        "sshCommand": f"ssh admin@{SERVER_IPV4}",
        "appUser": "blog",
        "appDirectory": "/home/blog/blog",
        # Run from the user's machine with the admin key (the app user's key is the CI's alone).
        "deployCommand": f"ssh admin@{SERVER_IPV4} sudo -u blog -H /opt/django-vps/blog/bin/deploy.sh",
        "rollbackCommand": f"ssh admin@{SERVER_IPV4} sudo -u blog -H /opt/django-vps/blog/bin/deploy.sh rollback",
        "manageCommand": f"ssh -t admin@{SERVER_IPV4} sudo django-vps-manage blog",
        # no scheduleLogs: no schedule (journalctl fails on a pattern that matches no unit)
        "hostKey": host_key,
        "githubEnvironment": "prod",
        "githubSecrets": SECRET_NAMES,
        "dnsRecords": [
            {"type": "A", "name": "@", "zone": "blog.com", "fqdn": "blog.com", "value": SERVER_IPV4, "ttl": 300},
            {"type": "AAAA", "name": "@", "zone": "blog.com", "fqdn": "blog.com", "value": SERVER_IPV6, "ttl": 300},
        ],
        "dnsManaged": True,
        # Written out, not read back from the exports: what a user is told to do next.
        "nextSteps": "Hetzner DNS serves the records (dnsRecords). A push to main deploys"
        " (.github/workflows/deploy-prod.yml, GitHub Environment prod). Open https://blog.com.",
        "backupCommand": f"ssh admin@{SERVER_IPV4} sudo -u blog -H /opt/django-vps/blog/bin/backup.sh list",
    }
    assert host_key.startswith("ssh-ed25519 ") and len(host_key.split()) == 2
    assert not any(is_secret(v) for v in exports.values())
    assert unwrap(exports) == exports


def test_offsite_backups_to_s3_send_the_keys_by_stdin_only(run_stack) -> None:
    key_id, secret = "AKIAHETZNER0EXAMPLE1", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    run = run_stack(
        offsiteS3Endpoint="https://fsn1.your-objectstorage.com",
        offsiteS3Bucket="blog-backups",
        offsiteS3Region="fsn1",
        offsiteS3AccessKeyId=key_id,
        offsiteS3SecretAccessKey=secret,
    )
    steps = commands(run)
    assert set(steps) == CREATED_STEPS | {"offsite"}
    assert " restic openssh-client\n" in steps["packages"].plain("create")
    assert not [r for r in run.mocks.of_type("tls:index/privateKey:PrivateKey") if "offsite" in r.name]
    (password,) = [r for r in run.mocks.of_type("random:index/randomPassword:RandomPassword") if "offsite" in r.name]
    assert steps["offsite"].plain("stdin") == f"{password.outputs['result']}\n{key_id}\n{secret}\n"
    assert is_secret(steps["offsite"].inputs["stdin"])
    script = steps["offsite"].plain("create")
    assert key_id not in script and secret not in script and password.outputs["result"] not in script
    assert "s3.region=fsn1" in script
    repository = "s3:https://fsn1.your-objectstorage.com/blog-backups/django-vps/blog"
    assert run.exports["offsiteRepository"] == repository
    assert "offsiteSshPublicKey" not in run.exports
    assert run.exports["__secret__"] == {"offsiteRepositoryPassword"}
