"""Runs a rendered host step with real bash but no access to the machine.

PATH holds only stubs: the file tools the scripts use (mktemp, chmod, chown, mv, cp, rm, cmp,
stat, install) act on a mirror of the filesystem under <sandbox>/root, and the system tools
(nginx, systemctl, supervisorctl, certbot, sudo, visudo, useradd, ...) only record how they were
called. Any other command is "not found", which stops the script (set -e) instead of touching the
host. So the test sees exactly which files a step installs, byte for byte, with which mode and
owner, and what it reloads, by running the script itself rather than reading it.

A few lines are rewritten (see `sandboxed`): the `[ -e /etc/letsencrypt/... ]` test and the renewal
path in certbot_step, because `[` is a shell builtin that no stub can intercept.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.render.conftest import relocate

_SEP = "\x1f"

_LIB = r"""
map() { case $1 in "$SANDBOX"/*) printf '%s' "$1" ;; /*) printf '%s' "$SANDBOX/root$1" ;; *) printf '%s' "$1" ;; esac; }
record() { local IFS=$'\x1f'; printf '%s\n' "$*" >>"$SANDBOX/calls"; }
"""

_FILE_TOOLS = {
    # Under `sudo -u USER` (SANDBOX_AS), what a tool makes is USER's.
    "mktemp": """record mktemp "$@"
tmp=$({mktemp} "$SANDBOX/tmp/tmp.XXXXXX")
if [ -n "${{SANDBOX_AS:-}}" ]; then printf '%s\\n' "$SANDBOX_AS:$SANDBOX_AS" >"$tmp.owner"; fi
printf '%s\\n' "$tmp\"""",
    "chmod": 'record chmod "$@"\nexec {chmod} "$1" "$(map "$2")"',
    "chown": 'record chown "$@"\nprintf \'%s\\n\' "$1" >"$(map "$2").owner"',
    "mv": """[ "$1" = -f ] && shift
record mv "$@"
src=$(map "$1"); dst=$(map "$2")
{mkdir} -p "${{dst%/*}}"
{mv} -f "$src" "$dst"
if [ -e "$src.owner" ]; then {mv} -f "$src.owner" "$dst.owner"; fi""",
    "cp": """args=()
for arg in "$@"; do case $arg in -*) args+=("$arg") ;; *) args+=("$(map "$arg")") ;; esac; done
record cp "$@"
exec {cp} "${{args[@]}}\"""",
    "rm": """record rm "$@"
flags=(-f)
for arg in "$@"; do case $arg in -*r*) flags=(-rf) ;; esac; done
for arg in "$@"; do case $arg in -*) ;; *) {rm} "${{flags[@]}}" "$(map "$arg")" "$(map "$arg").owner" ;; esac; done""",
    "rmdir": """record rmdir "$@"
args=()
for arg in "$@"; do case $arg in -*) args+=("$arg") ;; *) args+=("$(map "$arg")") ;; esac; done
exec {rmdir} "${{args[@]}}\"""",
    "cmp": """args=()
for arg in "$@"; do case $arg in -*) args+=("$arg") ;; *) args+=("$(map "$arg")") ;; esac; done
exec {cmp} "${{args[@]}}\"""",
    # Only `stat -c FORMAT PATH` is used; the owner comes from what chown, install or a write as
    # another user recorded. A directory the mirror lacks is the host's own: root's.
    "stat": """path=$(map "$3")
owner=$({cat} "$path.owner" 2>/dev/null || echo root:root)
if [ "$2" = %u ]; then
    case $owner in root:*) echo 0 ;; *) echo 1001 ;; esac
    exit 0
fi
exec {stat} -c "${{2//%U:%G/$owner}}" "$path\"""",
    # install -d [-m MODE] [-o OWNER -g GROUP] DIR...: the directories, their owner recorded.
    "install": """record install "$@"
owner=${{SANDBOX_AS:+$SANDBOX_AS:$SANDBOX_AS}}
dirs=()
while [ $# -gt 0 ]; do
    case $1 in
        -d) ;;
        -m) shift ;;
        -o) owner=$2:$2; shift ;;
        -g) owner=${{owner%%:*}}:$2; shift ;;
        *) dirs+=("$1") ;;
    esac
    shift
done
for dir in "${{dirs[@]}}"; do
    {mkdir} -p "$(map "$dir")"
    if [ -n "$owner" ]; then printf '%s\\n' "$owner" >"$(map "$dir").owner"; fi
done""",
    # sudo [-n] -u USER [-H] [--] COMMAND...: recorded; COMMAND runs, as USER, if it is a sandbox tool.
    "sudo": """record sudo "$@"
as=""
[ "$1" = -n ] && shift
[ "$1" = -u ] && {{ as=$2; shift 2; }}
[ "$1" = -H ] && shift
[ "$1" = -- ] && shift
if [ -x "$SANDBOX/bin/$1" ]; then SANDBOX_AS=$as exec "$@"; fi""",
    # Real openssl on the mirror's files (the certbot step reads the certificate's OCSP URI).
    "openssl": """args=()
for arg in "$@"; do case $arg in -*) args+=("$arg") ;; *) args+=("$(map "$arg")") ;; esac; done
record openssl "$@"
exec {openssl} "${{args[@]}}\"""",
}

# Tools that only record their call; some answer as the real one would on a working host.
_RECORDERS = {
    "supervisorctl": """[ "$1" = -c ] && shift 2
if [ "$1" = status ]; then echo "$2                 RUNNING   pid 4242, uptime 0:00:05"; fi""",
    "nginx": 'if [ -e "$SANDBOX/nginx-rejects" ]; then echo "nginx: configuration test failed" >&2; exit 1; fi',
    "certbot": """while [ $# -gt 0 ]; do case $1 in --cert-name=*) name=${{1#--cert-name=}} ;; esac; shift; done
{mkdir} -p "$SANDBOX/root/etc/letsencrypt/live/$name"
: >"$SANDBOX/root/etc/letsencrypt/live/$name/fullchain.pem\"""",
    # `sshd -t` keeps a copy of the drop-ins it was asked to check, and fails on demand.
    "sshd": """{cat} "$SANDBOX"/root/etc/ssh/sshd_config.d/*.conf >"$SANDBOX/sshd-checked" 2>/dev/null || :
if [ -e "$SANDBOX/sshd-rejects" ]; then echo "sshd_config.d/10-django-vps.conf: bad option" >&2; exit 255; fi""",
    "nft": 'if [ -e "$SANDBOX/nft-rejects" ]; then echo "Error: syntax error" >&2; exit 1; fi',
    "apt-get": "",
    "visudo": "",
    "systemctl": "",
    "python3": "",
    # Users "exist" once useradd made them: a file per user, and the home directory.
    "useradd": """while [ $# -gt 1 ]; do if [ "$1" = --home-dir ]; then home=$2; fi; shift; done
{mkdir} -p "$SANDBOX/users" "$(map "$home")"
: >"$SANDBOX/users/$1"
""",
    "usermod": "",
    "id": '[ -e "$SANDBOX/users/${{!#}}" ] && echo 1001',
    "getent": 'if [ "$1" = passwd ] && [ -e "$SANDBOX/users/$2" ]; then echo "$2:x:1001:1001::/home/$2:/bin/sh"; fi',
    "sleep": "",
    # grep reads a file where the mirror has it (an argument naming a path that is there); a pattern
    # or a path the mirror lacks goes as it is.
    "grep": """args=()
for arg in "$@"; do
    case $arg in /*) if [ -e "$(map "$arg")" ]; then arg=$(map "$arg"); fi ;; esac
    args+=("$arg")
done
exec {grep} "${{args[@]}}\"""",
}

# Read-only tools the scripts may use for real.
_REAL = ("cat", "seq", "cut", "sh")


def _real(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin")
    assert path, f"{name} not found"
    return path


class Sandbox:
    def __init__(self, directory: Path, *, record: tuple[str, ...] = ()) -> None:
        """`record`: more tools that only record their call (e.g. git, or a canary command)."""
        self.dir = directory
        self.root = directory / "root"
        self.bin = directory / "bin"
        for sub in (self.root, self.bin, directory / "tmp"):
            sub.mkdir(parents=True, exist_ok=True)
        (directory / "calls").touch()
        tools = {
            name: _real(name)
            for name in ("mktemp", "chmod", "mv", "cp", "rm", "rmdir", "cmp", "stat", "mkdir", "cat", "openssl", "grep")
        }
        recorders = {**_RECORDERS, **dict.fromkeys(record, "")}
        for name, body in {**_FILE_TOOLS, **recorders}.items():
            if name in recorders:
                body = f'record {name} "$@"\n{body}'
            self._stub(name, body.format(**tools))
        for name in _REAL:
            (self.bin / name).symlink_to(_real(name))

    def _stub(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!/bin/bash\nset -eu\n{_LIB}\n{body}\n")
        path.chmod(0o755)

    def _env(self) -> dict[str, str]:
        return {"PATH": str(self.bin), "SANDBOX": str(self.dir), "HOME": str(self.dir / "tmp"), "LC_ALL": "C"}

    def run(self, script: str, stdin: str = "", *, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["/bin/bash", "-c", script, "step"],
            input=stdin,
            capture_output=True,
            text=True,
            env=self._env(),
            check=False,
        )
        if check:
            assert result.returncode == 0, f"step failed ({result.returncode}):\n{result.stderr}"
        return result

    def run_installed(self, host_path: str, *args: str) -> subprocess.CompletedProcess:
        """Executes a file a step installed, as the host would (its own #! line, its mode), with
        only the stubs on PATH."""
        path = self.root / host_path.lstrip("/")
        return subprocess.run([str(path), *args], capture_output=True, text=True, env=self._env(), check=False)

    def reject_nginx_config(self, reject: bool = True) -> None:
        self._flag("nginx-rejects", reject)

    def reject_sshd_config(self, reject: bool = True) -> None:
        self._flag("sshd-rejects", reject)

    def reject_nft_rules(self, reject: bool = True) -> None:
        self._flag("nft-rejects", reject)

    def _flag(self, name: str, on: bool) -> None:
        flag = self.dir / name
        if on:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def sshd_checked(self) -> str | None:
        """The sshd drop-ins as the last `sshd` call saw them (None: sshd never ran)."""
        path = self.dir / "sshd-checked"
        return path.read_text() if path.exists() else None

    def files(self) -> dict[str, str]:
        """Installed files by their absolute path on the host (directories left out)."""
        return {
            "/" + str(path.relative_to(self.root)): path.read_text()
            for path in sorted(self.root.rglob("*"))
            if path.is_file() and not path.name.endswith(".owner")
        }

    def meta(self, host_path: str) -> tuple[str, str]:
        """(mode as 4 octal digits, owner) of an installed file."""
        path = self.root / host_path.lstrip("/")
        owner_file = path.with_name(path.name + ".owner")
        owner = owner_file.read_text().strip() if owner_file.exists() else "(not chowned)"
        return f"{stat.S_IMODE(os.stat(path).st_mode):04o}", owner

    def calls(self, tool: str | None = None) -> list[list[str]]:
        lines = (self.dir / "calls").read_text().splitlines()
        found = [line.split(_SEP) for line in lines]
        return [call for call in found if tool is None or call[0] == tool]

    def clear_calls(self) -> None:
        (self.dir / "calls").write_text("")


def sandboxed(script: str, domain: str) -> str:
    """Point the certificate checks, which use the `[` builtin, at the sandbox's mirror."""
    rewrites = {
        f"if [ -e /etc/letsencrypt/live/{domain}/fullchain.pem ]": (
            f'if [ -e "$SANDBOX/root/etc/letsencrypt/live/{domain}/fullchain.pem" ]'
        )
    }
    if "renewal=/etc/letsencrypt/renewal/" in script:
        rewrites["renewal=/etc/letsencrypt/renewal/"] = 'renewal="$SANDBOX"/root/etc/letsencrypt/renewal/'
    return relocate(script, rewrites)


FIREWALL_UNIT = "/etc/systemd/system/django-vps-firewall.service"


def sandboxed_security(script: str) -> str:
    """security_step as it runs in the sandbox. It tests no host path with `[` (its table and unit are
    installed whatever hostFirewall says), so nothing needs moving; kept as the one place to add such a
    rewrite, and it checks that no such test crept in."""
    assert f"[ -f {FIREWALL_UNIT} ]" not in script, "a `[` on a host path: point it at the mirror here"
    return script
