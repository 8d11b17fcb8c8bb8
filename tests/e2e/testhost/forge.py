"""A git forge over SSH in its own netns, standing in for GitHub and its deploy keys.

The machine's own /usr/sbin/sshd (never enabled on the machine itself) runs in netns
dvps<N>-forge with a private config, host key and authorized_keys. Every key gets a forced
command: deploy keys may only fetch (git-upload-pack), the harness's push key may also push.
URLs look like GitHub's: ssh://git@198.51.100.3/<name>.git. The `git` login is a uid-0 entry
in a private copy of /etc/passwd, bind-mounted only inside sshd's own mount namespace, so the
machine's user database is untouched.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .common import LabNames, kill_cgroup, make_cgroup, sh, spawn, wait_until
from .image import remove_tree
from .network import create_host_netns, delete_netns

USER = "git"
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Forced command for every key: $1 is "ro" (deploy key) or "rw" (the harness's push key).
FORGE_SHELL = r"""#!/bin/sh
set -f
cmd="$SSH_ORIGINAL_COMMAND"
case "$cmd" in
  "git-upload-pack "*|"git upload-pack "*) verb=upload-pack ;;
  "git-receive-pack "*|"git receive-pack "*)
    if [ "$1" != rw ]; then echo "forge: this deploy key is read-only" >&2; exit 1; fi
    verb=receive-pack ;;
  *) echo "forge: only git clone/fetch is allowed" >&2; exit 1 ;;
esac
repo=$(printf '%s' "${cmd##*-pack }" | tr -d "'\"")
repo=${repo#/}
repo=${repo#\~/}
case "$repo" in
  */*|.*|"") echo "forge: no such repository" >&2; exit 1 ;;
esac
[ -d "REPOS/$repo" ] || { echo "forge: no such repository" >&2; exit 1; }
exec git "$verb" "REPOS/$repo"
"""

SSHD_CONFIG = """\
Port 22
ListenAddress {ip}
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin forced-commands-only
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PermitUserEnvironment no
LogLevel VERBOSE
"""

GIT_ID = {
    "GIT_AUTHOR_NAME": "Test Forge",
    "GIT_AUTHOR_EMAIL": "forge@example.invalid",
    "GIT_COMMITTER_NAME": "Test Forge",
    "GIT_COMMITTER_EMAIL": "forge@example.invalid",
}


class Forge:
    """Create through `Lab.forge(ip=...)`."""

    def __init__(self, names: LabNames, run_dir: Path, ip: str) -> None:
        self.names = names
        self.ip = ip
        self.dir = run_dir / "forge"
        self.repos = self.dir / "repos"
        self.work = self.dir / "work"
        self.cgroup = names.cgroup / "_forge"
        self.netns = names.netns("forge")
        for d in (self.repos, self.work):
            d.mkdir(parents=True, exist_ok=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "forge-host", "-f", self.dir / "ssh_host_ed25519_key"])
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "forge-push", "-f", self.dir / "push_key"])
        self.push_key_path = self.dir / "push_key"
        shell = self.dir / "forge-shell"
        shell.write_text(FORGE_SHELL.replace("REPOS", str(self.repos)))
        shell.chmod(0o755)
        self._shell = shell
        self._keys: list[str] = []
        self._add_key((self.dir / "push_key.pub").read_text(), "rw")
        (self.dir / "sshd_config").write_text(SSHD_CONFIG.format(ip=ip, dir=self.dir))
        passwd = self.dir / "passwd"
        passwd.write_text(Path("/etc/passwd").read_text() + f"{USER}:x:0:0:test forge:{self.repos}:/bin/sh\n")
        (self.dir / "known_hosts").write_text(f"{ip} {self.host_public_key()}\n")
        create_host_netns(names, "forge", ip)
        make_cgroup(self.cgroup)
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        argv = [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            f"mount --bind {passwd} /etc/passwd && exec /usr/sbin/sshd -D -e -f {self.dir}/sshd_config",
        ]
        self.proc = spawn(self.cgroup, argv, self.dir / "sshd.log")
        wait_until("forge sshd", self._listening, 10)

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("forge sshd exited:\n" + (self.dir / "sshd.log").read_text())
        out = sh(["ip", "netns", "exec", self.netns, "ss", "-ltnH"], check=False).stdout
        return f"{self.ip}:22" in out

    def _add_key(self, pubkey: str, mode: str) -> None:
        line = f'command="{self._shell} {mode}",restrict {pubkey.strip()}\n'
        self._keys.append(line)
        (self.dir / "authorized_keys").write_text("".join(self._keys))

    # --- public API ---------------------------------------------------------------------------

    def add_deploy_key(self, pubkey: str, *, read_only: bool = True) -> None:
        """Allow `pubkey` to clone/fetch every repository (like a deploy key); to push too unless read_only."""
        self._add_key(pubkey, "ro" if read_only else "rw")

    def remove_deploy_key(self, pubkey: str) -> None:
        """Withdraw a deploy key (matched on "type base64", whatever the comment); sshd reads
        authorized_keys at each login, so the next fetch with it fails."""
        wanted = pubkey.split()[:2]
        kept = [line for line in self._keys if line.split(",restrict ", 1)[1].split()[:2] != wanted]
        if len(kept) == len(self._keys):
            raise KeyError(f"no such deploy key: {' '.join(wanted)}")
        self._keys = kept
        (self.dir / "authorized_keys").write_text("".join(self._keys))

    def host_public_key(self) -> str:
        line = (self.dir / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{line[0]} {line[1]}"

    def url(self, name: str) -> str:
        return f"ssh://{USER}@{self.ip}/{name}.git"

    def create_repo(self, name: str, source_dir: Path) -> str:
        """A new repository whose first commit on main holds `source_dir`'s files; its URL."""
        if not REPO_RE.match(name):
            raise ValueError(f"bad repository name {name!r}")
        sh(["git", "init", "-q", "--bare", "-b", "main", self.repos / f"{name}.git"])
        work = self.work / name
        sh(["git", "init", "-q", "-b", "main", work])
        shutil.copytree(source_dir, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
        self._commit_and_push(name, "Initial commit")
        return self.url(name)

    def push_commit(self, name: str, files: dict[str, str], message: str, *, branch: str = "main") -> str:
        """Commit `files` (path -> content) on `branch` and push it over SSH; the new commit id."""
        work = self.work / name
        sh(["git", "-C", work, "checkout", "-q", branch])
        for rel, content in files.items():
            path = work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return self._commit_and_push(name, message, branch)

    def create_branch(self, name: str, branch: str, source: str = "main") -> str:
        """Branch `branch` off `source` and push it (as `git push origin source:branch`); its head."""
        work = self.work / name
        sh(["git", "-C", work, "branch", branch, source])
        self._push(name, branch)
        return self.head(name, branch)

    def head(self, name: str, branch: str = "main") -> str:
        return sh(["git", "-C", self.repos / f"{name}.git", "rev-parse", branch]).stdout.strip()

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            **GIT_ID,
            "GIT_SSH_COMMAND": (
                f"ssh -i {self.push_key_path} -o IdentitiesOnly=yes -o BatchMode=yes"
                f" -o UserKnownHostsFile={self.dir / 'known_hosts'}"
                " -o StrictHostKeyChecking=yes"
            ),
        }

    def _push(self, name: str, branch: str) -> None:
        sh(["git", "-C", self.work / name, "push", "-q", self.url(name), branch], env=self._env())

    def _commit_and_push(self, name: str, message: str, branch: str = "main") -> str:
        work, env = self.work / name, self._env()
        sh(["git", "-C", work, "add", "-A"], env=env)
        sh(["git", "-C", work, "commit", "-q", "--allow-empty", "-m", message], env=env)
        self._push(name, branch)
        return sh(["git", "-C", work, "rev-parse", "HEAD"]).stdout.strip()

    def teardown(self) -> None:
        kill_cgroup(self.cgroup)
        self.proc.wait(timeout=10)
        delete_netns(self.names, "forge")
        remove_tree(self.dir)
