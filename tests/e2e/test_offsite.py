"""Off-site backups on the real CLI: an existing-host lab server running the postgres-uv fixture
on SQLite (the default database), once per target:

- sftp: a second lab host as the SFTP target (a Storage Box's role). The first up stops in one line
  naming the stack's key to authorize there; authorized, the next up makes the restic repository.
- s3: S3-compatible storage (Hetzner Object Storage's role: moto in the test process, over HTTPS on
  the lab's gateway, checking each request's signature); the first up makes the bucket and the
  repository.

A backup goes off-site (and the local retention prunes an older backup of the same day), `restic
check` reads it all, the target holds no plaintext of the rows or the upload, the password and the
keys are in no state file or output in clear; the server loses its rows, its upload and its local
backups, and `backup.sh offsite-restore` brings them back. `pulumi destroy` leaves the repository
where it is; (sftp) a new server and a new stack with the kept password restore from it (disaster
recovery: the same restore path as the one above, so S3 does not pay for a third stack)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.e2e.cli import CliStack
from tests.e2e.site import FIXTURES
from tests.e2e.testhost import Lab, Server
from tests.e2e.testhost.s3 import S3Storage
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

IP = "198.51.100.10"
SFTP_IP = "198.51.100.11"
OWNER = "example"
FIXTURE = "postgres-uv"
DOMAIN = "offsite.data.test"
GITHUB_TOKEN = "ghp_" + "offsit" * 6
ROW = "a row only the backups remember"
UPLOAD = "an upload only the backups remember\n"
REPOSITORY_DIR = f"/home/u1/django-vps/{FIXTURE}"
BUCKET = "offsite-backups"
PREFIX = f"django-vps/{FIXTURE}"


@dataclass
class Offsite:
    lab: Lab
    server: Server
    sftp: Server | None
    stack: CliStack
    cafile: str
    first_error: str
    config: dict[str, str]
    login_private: str
    saved_password: str = ""
    storage: S3Storage | None = None

    @property
    def repository(self) -> str:
        if self.storage is not None:
            return f"s3:{self.storage.endpoint}/{BUCKET}/{PREFIX}"
        return f"sftp:u1@{SFTP_IP}:{PREFIX}"

    def repository_files(self) -> list[str]:
        """The repository's files on the target, relative to the repository."""
        if self.storage is not None:
            return [name.removeprefix(PREFIX + "/") for name in self.storage.objects(BUCKET)]
        assert self.sftp is not None
        listed = self.sftp.run(f"cd {REPOSITORY_DIR} && find . -type f -printf '%P\\n'")
        return listed.stdout.split()

    def target_holds(self, text: str) -> bool:
        """Whether any file of the target holds `text` in clear."""
        if self.storage is not None:
            return any(text.encode() in content for content in self.storage.objects(BUCKET).values())
        assert self.sftp is not None
        found = self.sftp.run(f"grep -r -a -l -F {shlex.quote(text)} /home/u1")
        assert found.returncode in (0, 1), found.stderr
        return found.returncode == 0

    def https(self, path: str, form: dict[str, str] | None = None) -> str:
        argv = ["curl", "-sS", "--fail-with-body", "--cacert", self.cafile, "--resolve", f"{DOMAIN}:443:{IP}"]
        for key, value in (form or {}).items():
            argv += ["--data-urlencode", f"{key}={value}"]
        result = subprocess.run([*argv, f"https://{DOMAIN}{path}"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def backup_sh(self, *args: str) -> subprocess.CompletedProcess[str]:
        words = " ".join(shlex.quote(arg) for arg in args)
        return self.server.run(f"cd / && sudo -u {FIXTURE} -H /opt/django-vps/{FIXTURE}/bin/backup.sh {words} 2>&1")


# Each test names its targets (the fixture's param, one deployed stack per target shared by its tests):
# the s3 one first (the newer code fails sooner). A test for one target only is not collected for the other.
BOTH = pytest.mark.parametrize("offsite", ["s3", "sftp"], indirect=True)
S3_ONLY = pytest.mark.parametrize("offsite", ["s3"], indirect=True)
SFTP_ONLY = pytest.mark.parametrize("offsite", ["sftp"], indirect=True)


@pytest.fixture(scope="module")
def offsite(request: pytest.FixtureRequest, lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offsite]:
    target = request.param
    server = lab.server("offapp", IP)
    sftp = lab.server("offsftp", SFTP_IP) if target == "sftp" else None
    storage = lab.s3_storage() if target == "s3" else None
    github = lab.github_api(OWNER, GITHUB_TOKEN, repositories=(FIXTURE,))
    try:
        login = server.add_sudo_login()
        forge = lab.forge()
        forge.create_repo(FIXTURE, FIXTURES / FIXTURE)
        lab.set_a(DOMAIN, IP)
        stack = CliStack(tmp_path_factory.mktemp("stack"))
        config = {
            "domain": DOMAIN,
            "repository": f"{OWNER}/{FIXTURE}",
            "appName": FIXTURE,
            "cloneUrl": forge.url(FIXTURE),
            "cloneHostKeys": json.dumps([f"{forge.ip} {forge.host_public_key()}"]),
            "letsencryptEmail": "admin@data.test",
            "acmeServer": lab.acme_directory,
            "manageDns": "false",
            "existingHost": IP,
            "existingHostUser": "admin",
            "existingHostKey": server.host_public_key(),
            "existingHostPrivateKey": login.private_openssh,
            "deployWorkflow": "false",
            "github:token": GITHUB_TOKEN,
            "github:baseUrl": github.url,
        }
        first_error = ""
        if sftp is not None:
            sftp.run(
                "useradd --create-home --shell /bin/sh u1 && install -d -m 700 -o u1 -g u1 /home/u1/.ssh", check=True
            )
            config |= {
                "offsiteSftpHost": SFTP_IP,
                "offsiteSftpUser": "u1",
                "offsiteSftpHostKey": sftp.host_public_key(),
            }
            stack.configure(config)
            # The Storage Box does not know the stack's key yet: the first up says which to authorize.
            with pytest.raises(auto.CommandError) as refused:
                stack.up(echo=None)
            first_error = str(refused.value)
            state = stack.export()
            (key,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith("-offsite-key")]
            public = key["outputs"]["publicKeyOpenssh"].strip()
            sftp.run(
                f"echo {shlex.quote(public)} > /home/u1/.ssh/authorized_keys && "
                "chown u1:u1 /home/u1/.ssh/authorized_keys",
                check=True,
            )
        else:
            assert storage is not None
            config |= {
                "offsiteS3Endpoint": storage.endpoint,
                "offsiteS3Bucket": BUCKET,
                "offsiteS3AccessKeyId": storage.access_key_id,
                "offsiteS3SecretAccessKey": storage.secret_access_key,
            }
            stack.configure(config)
        stack.up(echo=None)
        cafile = tmp_path_factory.mktemp("ca") / "root.pem"
        cafile.write_text(lab.acme_ca_pem())
        yield Offsite(lab, server, sftp, stack, str(cafile), first_error, config, login.private_openssh, "", storage)
    finally:
        github.stop()
        if storage is not None:
            storage.stop()
        for name in ("offapp", "offnew", "offsftp"):
            if name in lab.servers:
                lab.remove(name)


@BOTH
def test_the_first_up_names_the_key_to_authorize_then_the_repository_is_made(offsite: Offsite) -> None:
    if offsite.sftp is not None:
        assert f"the SFTP server u1@{SFTP_IP}:22 refused the off-site backups" in offsite.first_error
        public = offsite.stack.cli("stack", "output", "offsiteSshPublicKey").stdout.strip()
        assert public.split()[1] in offsite.first_error, offsite.first_error[-2000:]
    else:
        # Nothing to authorize: the keys are the storage's; the step made the bucket and the repository.
        outputs = json.loads(offsite.stack.cli("stack", "output", "--json").stdout)
        assert "offsiteSshPublicKey" not in outputs, outputs
        assert "made the restic repository" in _step_stdout(offsite.stack, "offsite")
    assert "config" in offsite.repository_files()
    assert offsite.stack.cli("stack", "output", "offsiteRepository").stdout.strip() == offsite.repository


@BOTH
def test_a_backup_goes_off_site_encrypted_and_checked(offsite: Offsite) -> None:
    assert offsite.https("/rows/", {"text": ROW}) == "rows 1"
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write(UPLOAD)
        file.flush()
        saved = subprocess.run(
            ["curl", "-sS", "--cacert", offsite.cafile, "--resolve", f"{DOMAIN}:443:{IP}",
             "-F", f"file=@{file.name};filename=remember.txt", f"https://{DOMAIN}/upload/"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    assert saved.startswith("saved /media/"), saved
    # Two older backups of one day: the local retention (7 days, 4 weeks) keeps the newer one only.
    backups = f"/home/{FIXTURE}/{FIXTURE}/shared/backups"
    for old in ("20200106-010000", "20200106-020000"):
        offsite.server.run(f"sudo -u {FIXTURE} mkdir -p {backups}/{old}", check=True)
    started = time.monotonic()
    offsite.server.run(f"systemctl start django-vps-backup-{FIXTURE}.service", check=True)
    seconds = time.monotonic() - started
    journal = offsite.server.run(f"journalctl -u django-vps-backup-{FIXTURE}.service -o cat --no-pager").stdout
    assert "==> off-site: backup " in journal, journal
    assert (
        "==> kept 2 backups (the newest of each of the last 7 days and 4 ISO weeks that have backups), "
        "removed 1: 20200106-010000"
    ) in journal, journal
    assert offsite.server.run(f"ls {backups}").stdout.split()[0] == "20200106-020000"
    figure(f"backup with the off-site copy (SQLite, media, restic to {offsite.repository}): {seconds:.2f} s")
    check = offsite.backup_sh("offsite-check")
    assert check.returncode == 0 and "no errors were found" in check.stdout, check.stdout
    snapshots = offsite.backup_sh("offsite-list")
    assert snapshots.returncode == 0 and "django-vps" in snapshots.stdout, snapshots.stdout
    # Encrypted: neither the row nor the upload is anywhere in the target in clear.
    assert any(name.startswith("data/") for name in offsite.repository_files())
    for text in (ROW, UPLOAD.strip(), "CREATE TABLE"):
        assert not offsite.target_holds(text), text
    # ...while the local backup does hold them (the test looks for the right thing).
    assert offsite.server.run(f"grep -r -a -l -F {shlex.quote(ROW)} /home/{FIXTURE}/{FIXTURE}/shared/backups").stdout


@BOTH
def test_the_password_and_key_are_in_no_state_or_output_in_clear(offsite: Offsite) -> None:
    password = offsite.stack.cli("stack", "output", "offsiteRepositoryPassword", "--show-secrets").stdout.strip()
    assert len(password) == 48
    config_dir = f"/home/{FIXTURE}/.config/django-vps"
    if offsite.storage is not None:
        keys = offsite.server.run(f"cat {config_dir}/s3-credentials", check=True).stdout
        assert keys == f"{offsite.storage.access_key_id}\n{offsite.storage.secret_access_key}\n"
        files, hidden = ("s3-credentials", "restic-password"), [offsite.storage.secret_access_key]
        hidden.append(offsite.storage.access_key_id)
    else:
        private = offsite.server.run(f"cat {config_dir}/offsite_key", check=True).stdout
        files, hidden = ("offsite_key", "restic-password"), [private.splitlines()[2]]  # a line of the key's base64
    assert offsite.server.run(f"cat {config_dir}/restic-password").stdout.strip() == password
    for path in files:
        mode = offsite.server.run(f"stat -c '%a %U' {config_dir}/{path}").stdout.strip()
        assert mode == f"600 {FIXTURE}", (path, mode)
    assert offsite.stack.cli("stack", "output", "offsiteRepositoryPassword").stdout.strip() == "[secret]"
    texts = [path.read_text(errors="replace") for path in offsite.stack.state_files()]
    texts.append(offsite.stack.cli("stack", "export").stdout)
    texts.append(offsite.stack.cli("stack", "output", "--json").stdout)
    # ...nor in the server's journal (the off-site step's and the backups' output).
    texts.append(offsite.server.run("journalctl -o cat --no-pager").stdout)
    for text in texts:
        assert password not in text
        for secret in hidden:
            assert secret not in text


@BOTH
def test_offsite_restore_brings_back_what_the_server_lost(offsite: Offsite) -> None:
    shared = f"/home/{FIXTURE}/{FIXTURE}/shared"
    delete = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM notes_note'); c.commit()"
    offsite.server.run(f"python3 -c {shlex.quote(delete)} {shared}/db.sqlite3", check=True)
    offsite.server.run(f"rm -rf {shared}/media/uploads {shared}/backups", check=True)
    assert offsite.https("/rows/") == "rows 0"
    restored = offsite.backup_sh("offsite-restore")
    assert restored.returncode == 0, restored.stdout
    assert "==> fetched off-site backup " in restored.stdout
    found = re.search(r"restored backup \S+ in ([0-9.]+) s", restored.stdout)
    assert found, restored.stdout
    figure(f"off-site restore (restic restore, then backup.sh restore): {found.group(1)} s")
    assert offsite.https("/rows/") == "rows 1"
    assert offsite.https("/media/uploads/remember.txt") == UPLOAD


@S3_ONLY
def test_keys_the_storage_refuses_stop_the_up_in_one_line(offsite: Offsite) -> None:
    assert offsite.storage is not None  # (SFTP's refusal, an unknown key, is the first up's: above)
    right = offsite.storage.secret_access_key
    offsite.stack.configure({"offsiteS3SecretAccessKey": "W" * 40})
    with pytest.raises(auto.CommandError) as refused:
        offsite.stack.up(echo=None)
    message = str(refused.value)
    expected = f"off-site backups: the S3 storage refused the restic repository {offsite.repository} ("
    assert expected in message and "check offsiteS3Bucket, offsiteS3Region and the keys" in message, message[-2000:]
    assert "W" * 40 not in message and right not in message
    offsite.stack.configure({"offsiteS3SecretAccessKey": right})
    offsite.stack.up(echo=None)
    assert offsite.backup_sh("offsite-list").returncode == 0


@BOTH
def test_destroy_keeps_the_off_site_backups_and_says_where(offsite: Offsite) -> None:
    # What the README tells the user to keep before destroying: the repository's password.
    offsite.saved_password = offsite.stack.cli(
        "stack", "output", "offsiteRepositoryPassword", "--show-secrets"
    ).stdout.strip()
    # What the teardown says when it runs (the CLI does not show a delete's output: the retained
    # OffsiteBackups resource, below, is what destroy prints).
    state = offsite.stack.export()
    (teardown,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith("-host-teardown-supervisor")]
    assert f"kept the off-site backups in {offsite.repository}" in teardown["inputs"]["delete"]
    before = sorted(offsite.repository_files())
    destroyed = offsite.stack.destroy(echo=None)
    assert set(destroyed.changes) == {"delete"}, destroyed.changes
    # What `pulumi destroy` itself printed: the repository's line, marked kept.
    kept = f"django-vps:backup:OffsiteBackups {FIXTURE}-offsite-backups kept at {offsite.repository} deleting"
    lines = [line for line in destroyed.output.splitlines() if kept in line]
    assert lines and lines[0].rstrip().endswith("[retain]"), destroyed.output[-3000:]
    # Every file of the repository is still there (the config, the keys, the snapshots, the data).
    assert sorted(offsite.repository_files()) == before
    assert "config" in before and any(name.startswith("snapshots/") for name in before)


NEW_IP = "198.51.100.12"


@SFTP_ONLY
def test_a_new_server_and_stack_restore_from_the_off_site_repository(
    offsite: Offsite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Disaster recovery: the server is gone; a new one, a new stack with the same off-site settings
    and the repository password kept from the old stack, serves the same rows and upload."""
    # SFTP only: S3's offsite-restore is proven above by the same code path; a third stack for S3 would
    # add minutes to the file for no new line of backup.sh.
    assert offsite.sftp is not None
    kept = offsite.saved_password
    assert len(kept) == 48
    offsite.lab.remove("offapp")
    new = offsite.lab.server("offnew", NEW_IP)
    login = new.add_sudo_login()
    offsite.lab.set_a(DOMAIN, NEW_IP)
    stack = CliStack(tmp_path_factory.mktemp("recovered"))
    stack.configure(
        {
            **offsite.config,
            "existingHost": NEW_IP,
            "existingHostKey": new.host_public_key(),
            "existingHostPrivateKey": login.private_openssh,
            "offsiteRepositoryPassword": kept,
        }
    )
    with pytest.raises(auto.CommandError):  # the new stack's key, not yet authorized
        stack.up(echo=None)
    public = stack.cli("stack", "output", "offsiteSshPublicKey", check=False).stdout.strip()
    if not public:
        state = stack.export()
        (key,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith("-offsite-key")]
        public = key["outputs"]["publicKeyOpenssh"].strip()
    offsite.sftp.run(f"echo {shlex.quote(public)} >> /home/u1/.ssh/authorized_keys", check=True)
    stack.up(echo=None)
    # The repository was there: opened with the kept password, not made anew.
    figure(f"offsite step on the new server: {_step_stdout(stack, 'offsite').strip()}")
    # The README's last step as written, from the user's machine as the server's admin.
    remote = _readme_recovery_restore().removeprefix("ssh admin@NEW_SERVER ").replace("blog", FIXTURE)
    admin = tmp_path_factory.mktemp("admin")
    key, known = admin / "key", admin / "known_hosts"
    key.write_text(login.private_openssh)
    key.chmod(0o600)
    known.write_text(f"{NEW_IP} {new.host_public_key()}\n")
    started = time.monotonic()
    restored = subprocess.run(
        ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
         "-o", "StrictHostKeyChecking=yes", f"admin@{NEW_IP}", remote],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stdout + restored.stderr
    figure(f"disaster recovery (new server: offsite-restore after pulumi up): {time.monotonic() - started:.2f} s")
    https = lambda path: subprocess.run(  # noqa: E731
        ["curl", "-sS", "--fail-with-body", "--cacert", offsite.cafile, "--resolve", f"{DOMAIN}:443:{NEW_IP}",
         f"https://{DOMAIN}{path}"], capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert https("/rows/") == "rows 1"
    assert https("/media/uploads/remember.txt") == UPLOAD


def _readme_recovery_restore() -> str:
    """The restore line of the README's disaster-recovery steps (*Data and backups*)."""
    section = (Path(__file__).parents[2] / "README.md").read_text().split("\n## Data and backups\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    (line,) = [line.strip() for line in section.splitlines() if line.strip().startswith("ssh admin@NEW_SERVER ")]
    assert line.endswith("backup.sh offsite-restore"), line
    return line


def _step_stdout(stack: CliStack, role: str) -> str:
    from tests.e2e.site import _plain

    state = json.loads(stack.cli("stack", "export", "--show-secrets").stdout)
    (step,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith(f"-host-{role}")]
    return _plain(step["outputs"]).get("stdout", "")
