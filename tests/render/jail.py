"""A throwaway copy of this machine where host steps run as real root and the app user is a real uid.

The jail is a copy-on-write view of the root filesystem (overlayfs: this machine's / below, an
upper layer on a tmpfs above), entered in new mount, PID, network, IPC and UTS namespaces and
chrooted into. So useradd, sudo with the installed rule, visudo, install, chown, git, bash and
Python are the real ones and behave as on a server: a link really is followed, a chown really
hands a file over, sudo really refuses a command. What the steps write lands in the upper layer;
nothing reaches the machine, and there is no network (loopback only). Every run starts the jail
anew from the same layers (the PID namespace ends with the run, and its processes with it).

Stand-ins, written into the jail only: systemctl (records), supervisorctl (a program's state in
/var/lib/jail-supervisor; `start` runs a tiny server on the program's socket as its user, or
fails when told to), ssh (git's transport: runs git-upload-pack on a directory of bare repositories,
the "forge"), and a recorder around git and python3 that logs each call's uid and arguments.
`use_real_supervisorctl` puts supervisor's own supervisorctl (the project's environment) in place.

This is where the attack tests act as the app user (tests/render/test_boundary.py); the stub
sandbox (sandbox.py) is for what a step does when all goes well.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from components.settings import SUPERVISOR_CONF

PROJECT_VENV = Path(sys.prefix)
CALLS = "/var/log/jail-calls"
SUPERVISOR_STATE = "/var/lib/jail-supervisor"
FORGE = "/srv/forge"

_ENTER = r"""
set -eu
merged=$1; upper=$2; work=$3; shift 3
mount -t overlay overlay -o "lowerdir=/,upperdir=$upper,workdir=$work" "$merged"
mount -t proc proc "$merged/proc"
# A /dev of a few character devices only, and a /dev/shm and /run of the jail's own.
mount -t tmpfs -o mode=0755 dev "$merged/dev"
for node in null:3 zero:5 full:7 random:8 urandom:9; do
    mknod -m 0666 "$merged/dev/${node%:*}" c 1 "${node#*:}"
done
ln -s /proc/self/fd "$merged/dev/fd"
for fd in 0:stdin 1:stdout 2:stderr; do ln -s "/proc/self/fd/${fd%:*}" "$merged/dev/${fd#*:}"; done
mkdir -m 1777 "$merged/dev/shm"
mount -t tmpfs -o mode=0755 run "$merged/run"
ip link set lo up 2>/dev/null || true
exec chroot "$merged" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C.UTF-8 "$@"
"""

# Recorders: what ran, as whom, from where; then the real program.
_RECORDER = """#!/bin/sh
printf '%s\\t%s\\t%s\\t%s\\n' "$(id -u)" "{name}" "$PWD" "$*" >>{calls} 2>/dev/null || true
exec {real} "$@"
"""

_SYSTEMCTL = f"""#!/bin/sh
printf '%s\\t%s\\t%s\\t%s\\n' "$(id -u)" systemctl "$PWD" "$*" >>{CALLS}
"""

# supervisorctl's stand-in. `start` (and update of a new program) runs, as the program's user, a
# server on the program's unix socket answering 200, as gunicorn would; it lives until the run ends.
_SUPERVISORCTL = f"""#!/bin/bash
set -u
printf '%s\\t%s\\t%s\\t%s\\n' "$(id -u)" supervisorctl "$PWD" "$*" >>{CALLS}
[ "${{1:-}}" = -c ] && shift 2
state={SUPERVISOR_STATE}
mkdir -p "$state"
serve() {{
    local conf=/etc/supervisor/conf.d/$1.conf user socket
    user=$(sed -n 's/^user = //p' "$conf")
    socket=$(sed -n 's/.*--bind unix:\\([^ ]*\\).*/\\1/p' "$(sed -n 's/^command = //p' "$conf")")
    setsid runuser -u "$user" -- python3 -I -c '
import http.server, os, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
class S(socketserver.UnixStreamServer):
    def get_request(self):
        request, _ = super().get_request(); return request, ("local", 0)
path = sys.argv[1]
if os.path.exists(path): os.unlink(path)
S(path, H).serve_forever()' "$socket" >/dev/null 2>&1 </dev/null &
    for _ in $(seq 1 50); do [ -S "$socket" ] && return 0; sleep 0.1; done
    return 1
}}
start() {{
    if [ -e "$state/fail-start" ]; then echo "$1: ERROR (spawn error)"; exit 7; fi
    serve "$1" && touch "$state/$1.running"
}}
case ${{1:-}} in
    avail) for conf in /etc/supervisor/conf.d/*.conf; do
               if [ -e "$conf" ]; then echo "$(basename "$conf" .conf)   in use  auto  999:999"; fi
           done ;;
    status) if [ -e "$state/$2.running" ]; then echo "$2   RUNNING   pid 42"; else echo "$2   STOPPED"; exit 3; fi ;;
    start) start "$2"; echo "$2: started" ;;
    signal) [ -e "$state/$3.running" ] || exit 7; serve "$3"; echo "$3: signalled" ;;
    update) for conf in /etc/supervisor/conf.d/*.conf; do
                if [ -e "$conf" ]; then start "$(basename "$conf" .conf)"; fi
            done ;;
    stop) rm -f "$state/$2.running" ;;
    # Real supervisorctl names each program whose configuration is new ("available"), changed or
    # gone; here every configured one counts as changed.
    reread) for conf in /etc/supervisor/conf.d/*.conf; do
                if [ -e "$conf" ]; then echo "$(basename "$conf" .conf): changed"; fi
            done ;;
esac
"""

# git's transport: `ssh [options] user@host COMMAND` runs COMMAND (git-upload-pack 'path') on the forge.
_SSH = f"""#!/bin/sh
printf '%s\\t%s\\t%s\\t%s\\n' "$(id -u)" ssh "$PWD" "$*" >>{CALLS}
for last in "$@"; do :; done
cd {FORGE} && exec sh -c "$last"
"""

_SUPERVISORD_CONF = """; The jail's stand-in for Debian's supervisord.conf.
[unix_http_server]
file = /run/supervisor.sock
chmod = 0700

[supervisord]
logfile = /var/log/supervisor/supervisord.log
pidfile = /run/supervisord.pid

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix:///run/supervisor.sock

[include]
files = /etc/supervisor/conf.d/*.conf
"""


class Jail:
    """Layers in `directory` (on a tmpfs: overlayfs does not stack on the filesystem it covers)."""

    def __init__(self, directory: Path, *, fresh: bool = True) -> None:
        self.dir = directory
        self.upper, self.work, self.merged = (directory / name for name in ("upper", "work", "merged"))
        if fresh:
            for path in (self.upper, self.work, self.merged):
                path.mkdir(parents=True)
            self._install_stand_ins()

    @classmethod
    def new(cls) -> Jail:
        return cls(Path(tempfile.mkdtemp(prefix="django-vps-jail-", dir="/dev/shm")))

    def clone(self) -> Jail:
        """Another jail in this one's state (its upper layer copied, overlay's whiteouts and
        xattrs included)."""
        other = Path(tempfile.mkdtemp(prefix="django-vps-jail-", dir="/dev/shm"))
        subprocess.run(["cp", "-a", str(self.upper), str(other / "upper")], check=True)
        (other / "work").mkdir()
        (other / "merged").mkdir()
        return Jail(other, fresh=False)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(
        self, script: str, *, stdin: str = "", user: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """bash -c script in the jail, as root, or as `user` (runuser: a login-less switch, from /)."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir()
        command = ["/bin/bash", "-c", script]
        if user is not None:
            command = ["/usr/sbin/runuser", "-u", user, "--", "/bin/bash", "-c", f"cd / && {script}"]
        result = subprocess.run(
            ["unshare", "--mount", "--pid", "--fork", "--net", "--ipc", "--uts", "--propagation", "private",
             "/bin/bash", "-c", _ENTER, "enter", str(self.merged), str(self.upper), str(self.work), *command],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, (
                f"jail run failed ({result.returncode}):\n{script[:300]}\n--- stdout:\n{result.stdout[-3000:]}"
                f"\n--- stderr:\n{result.stderr[-3000:]}"
            )
        return result

    def as_root(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run(script, **kwargs)  # type: ignore[arg-type]

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """A file in the jail, root's."""
        self.run(f"install -D -m {mode:o} /dev/stdin {shlex.quote(path)}", stdin=text)

    def read(self, path: str) -> str:
        return self.run(f"cat {shlex.quote(path)}").stdout

    def stat(self, path: str) -> str:
        """'<mode> <owner>:<group> <type>' of path itself (links not followed), or 'absent'."""
        quoted = shlex.quote(path)
        return self.run(f"stat -c '%a %U:%G %F' {quoted} 2>/dev/null || echo absent").stdout.strip()

    def calls(self, name: str | None = None) -> list[tuple[int, str, str, str]]:
        """(uid, program, working directory, arguments) of the recorded calls."""
        text = self.run(f"cat {CALLS} 2>/dev/null || true").stdout
        found = [line.split("\t", 3) for line in text.splitlines() if line.count("\t") >= 3]
        return [(int(u), n, d, a) for u, n, d, a in found if name is None or n == name]

    def clear_calls(self) -> None:
        self.run(f"rm -f {CALLS}")

    def fail_start(self, on: bool = True) -> None:
        self.run(f"mkdir -p {SUPERVISOR_STATE} && " + (f"touch {SUPERVISOR_STATE}/fail-start" if on else
                                                       f"rm -f {SUPERVISOR_STATE}/fail-start"))  # fmt: skip

    def use_real_supervisorctl(self) -> None:
        """supervisor's own supervisorctl (which reads ./supervisord.conf first unless given -c)."""
        self.write(
            "/usr/bin/supervisorctl",
            f'#!/bin/sh\nexec {PROJECT_VENV}/bin/python {PROJECT_VENV}/bin/supervisorctl "$@"\n',
            0o755,
        )

    def _install_stand_ins(self) -> None:
        stand_ins = {
            "/usr/bin/systemctl": _SYSTEMCTL,
            "/usr/bin/supervisorctl": _SUPERVISORCTL,
            "/usr/local/bin/ssh": _SSH,
            # Before the real ones on PATH (sudo's secure_path too).
            "/usr/local/bin/git": _RECORDER.format(name="git", calls=CALLS, real="/usr/bin/git"),
            "/usr/local/bin/python3": _RECORDER.format(name="python3", calls=CALLS, real="/usr/bin/python3"),
        }
        script = [f"install -d -m 0755 /etc/supervisor/conf.d /var/log/supervisor {FORGE}", f": >{CALLS}",
                  f"chmod 0666 {CALLS}"]  # fmt: skip
        for path, text in stand_ins.items():
            script.append(f"cat >{path} <<'STANDIN'\n{text}STANDIN\nchmod 0755 {path}")
        script.append(f"cat >{SUPERVISOR_CONF} <<'STANDIN'\n{_SUPERVISORD_CONF}STANDIN")
        self.run("\n".join(script))


def available() -> str | None:
    """Why no jail can be made here, or None."""
    if os.geteuid() != 0:
        return "needs root: it acts as root against files of another uid (tests/run runs as root)"
    if not Path("/dev/shm").is_dir():
        return "no /dev/shm for the jail's layers"
    return None
