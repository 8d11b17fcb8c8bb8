"""The off-site step with offsiteS3Endpoint, run as real root in a jail (jail.py) after the real
app-user step, against S3 stand-in storage inside the jail (moto, every request's SigV4 signature
checked, HTTPS with a CA the jail's system bundle trusts, on the jail's own loopback): the keys
arrive by stdin and become the app user's 0600 file; the first run makes the bucket and the
repository, the next opens it; a secret key the storage refuses fails the step in one line naming
the settings, with neither key in the output."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from components import render
from tests.render import jail as jails
from tests.render.boundary_site import DEPLOY_KEY
from tests.render.conftest import CI_PUBLIC_KEY, make_settings, require_tool
from tests.support.program import ROOT

pytestmark = pytest.mark.skipif(jails.available() is not None, reason=str(jails.available()))

PORT = 19443
PASSWORD = "r" * 48
# Started in the jail: the stand-in, its key pair written to /srv/s3/keys once it listens.
STORAGE = """
import sys, time
from pathlib import Path
from tests.e2e.testhost.s3 import S3Storage
storage = S3Storage(Path("/srv/s3/cert.pem"), Path("/srv/s3/key.pem"), host="127.0.0.1").start(int(sys.argv[1]))
Path("/srv/s3/keys.tmp").write_text(f"{storage.access_key_id}\\n{storage.secret_access_key}\\n")
Path("/srv/s3/keys.tmp").rename("/srv/s3/keys")
time.sleep(600)
"""


def test_the_s3_offsite_step_writes_the_keys_and_makes_then_opens_the_repository(tmp_path: Path) -> None:
    require_tool("restic")
    from tests.e2e.testhost.certs import make_wfe_certs

    ca, cert, key = make_wfe_certs(tmp_path / "tls", "127.0.0.1")
    s = make_settings(
        offsiteS3Endpoint=f"https://127.0.0.1:{PORT}",
        offsiteS3Bucket="blog-backups",
        offsiteS3AccessKeyId="placeholder0",
        offsiteS3SecretAccessKey="placeholder-secret",
    )
    jail = jails.Jail.new()
    try:
        jail.run(render.app_user_step(s, CI_PUBLIC_KEY), stdin=DEPLOY_KEY)
        jail.write("/srv/s3/cert.pem", cert.read_text())
        jail.write("/srv/s3/key.pem", key.read_text(), 0o600)
        jail.write("/srv/s3/storage.py", STORAGE)
        jail.write("/srv/s3/step.sh", render.offsite_step(s, ""))
        # The jail's system CAs (restic's, as the app user's) trust the stand-in's certificate.
        jail.run(f"cat >>/etc/ssl/certs/ca-certificates.crt <<'PEM'\n{ca.read_text()}PEM")
        python = shlex.quote(str(Path(sys.prefix) / "bin" / "python"))
        script = f"""
cd /srv/s3
PYTHONPATH={shlex.quote(str(ROOT))} {python} storage.py {PORT} >storage.log 2>&1 &
for _ in $(seq 1 200); do [ -s keys ] && break; sleep 0.1; done
[ -s keys ] || {{ cat storage.log; exit 9; }}
{{ read -r id && read -r secret; }} <keys
run_step() {{ printf '%s\\n%s\\n%s\\n' {PASSWORD} "$1" "$2" | bash step.sh; echo "exit=$?"; }}
echo "== given"; cat keys
echo "== first"; run_step "$id" "$secret" 2>&1
echo "== again"; run_step "$id" "$secret" 2>&1
echo "== keys"; cat {shlex.quote(s.offsite_s3_credentials)}
echo "== mode"; stat -c '%a %U' {shlex.quote(s.offsite_s3_credentials)} {shlex.quote(s.offsite_password_file)}
echo "== refused"; run_step "$id" WRONGWRONGWRONGWRONG 2>&1
echo "== kept"; cat {shlex.quote(s.offsite_s3_credentials)}; ls {shlex.quote(s.offsite_dir)}
"""
        out = jail.run(script, timeout=240).stdout
    finally:
        jail.remove()
    parts = dict(part.split("\n", 1) for part in out.split("== ")[1:])
    repository = f"s3:https://127.0.0.1:{PORT}/blog-backups/django-vps/blog"
    assert f"off-site backups: made the restic repository {repository}" in parts["first"], out
    assert parts["first"].rstrip().endswith("exit=0"), out
    assert f"the restic repository {repository} opens with the stack's password" in parts["again"], out
    refused = parts["refused"]
    assert refused.rstrip().endswith("exit=1"), out
    (line,) = [line for line in refused.splitlines() if "off-site backups" in line]
    assert line.startswith(f"off-site backups: the S3 storage refused the restic repository {repository} (")
    assert "check offsiteS3Bucket, offsiteS3Region and the keys" in line
    # The file holds the keys given on stdin, exactly; a refused run leaves those of the last good one
    # (the stack's state keeps that run's inputs: the next run with them would change nothing).
    assert parts["keys"] == parts["given"], out
    assert parts["kept"] == parts["given"] + "restic-password\ns3-credentials\n", out
    key_id, secret = parts["given"].split()
    for text in (parts["first"], parts["again"], refused):
        assert key_id not in text and secret not in text and PASSWORD not in text
    assert parts["mode"].split("\n")[:2] == ["600 blog", "600 blog"], out
