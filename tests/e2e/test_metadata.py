"""Hetzner's metadata service serves the server's user_data, and with it the SSH host private key, to
any local process that asks. On a server provisioned by the real program through the real Pulumi CLI
(Hetzner mode), with the lab's stand-in for the service at 169.254.169.254 and fe80::a9fe:a9fe
(tests/e2e/testhost/metadata.py): root reads it; the app user, www-data and the admin user without
sudo get a refused connection, and so does a Django view of the deployed site. Controls: with our
output chain flushed the app user does read the key (the endpoint is reachable, so the refusals are
the chain's doing), and after a reboot the unit has put the chain back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e import web
from tests.e2e.site import APP, DOMAIN, FIXTURES, SERVER_IP, Deployed, deploy_site
from tests.e2e.testhost import Lab

pytestmark = pytest.mark.e2e

REPO = "metadata"
# Python takes the IPv6 zone as it is; curl wants it percent-encoded (%25eth0), as RFC 6874 writes it.
URLS = {
    "ipv4": "http://169.254.169.254/hetzner/v1/userdata",
    "ipv6": "http://[fe80::a9fe:a9fe%eth0]/hetzner/v1/userdata",
}
# What a process can learn, as a small program any user can run (the machine's python3): the user it
# runs as, then per address "read <bytes>" and whether the host key was in it, or the error's name.
# No proxy: sudo's session gets the lab's proxy variables from /etc/environment (pam_env).
PROBE = """
import json, os, pwd, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
found = {"user": pwd.getpwuid(os.getuid()).pw_name}
for name, url in URLS.items():
    try:
        with opener.open(url, timeout=5) as response:
            body = response.read().decode()
        found[name] = f"read {len(body)} " + ("with-key" if "BEGIN OPENSSH PRIVATE KEY" in body else "no-key")
    except OSError as error:
        found[name] = type(getattr(error, "reason", error)).__name__
print(json.dumps(found))
"""
PROBE_PATH = "/usr/local/bin/dvps-metadata-probe"
VIEWS = (FIXTURES / "blog-uv/posts/views.py").read_text()
URLCONF = (FIXTURES / "blog-uv/posts/urls.py").read_text()
VIEW = """

def metadata(request):
    \"\"\"What Django code running in the site can read of the metadata service.\"\"\"
    import json, os, pwd, urllib.request
    URLS = {urls}
{body}
    return HttpResponse(json.dumps(found), content_type="application/json")
"""


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    deployed = deploy_site(lab, tmp_path_factory.mktemp("pebble") / "root.pem", repo=REPO)
    deployed.sh(f"cat > {PROBE_PATH} <<'PY'\nURLS = {URLS!r}\n{PROBE}PY\nchmod 0755 {PROBE_PATH}")
    yield deployed
    deployed.remove()


def user_data(site: Deployed) -> str:
    """What the server was created with, as the Hetzner stand-in holds it."""
    (server,) = site.hetzner.cloud.servers.values()
    return server["user_data"]


def host_private_key(site: Deployed) -> str:
    return site.outputs_of("blog-server-host-key", "tls:index/privateKey:PrivateKey")["privateKeyOpenssh"]


def probe(site: Deployed, user: str) -> dict[str, str]:
    as_user = "" if user == "root" else f"sudo -u {user} -- "
    return json.loads(site.sh(f"{as_user}/usr/bin/python3 {PROBE_PATH}"))


def curl(site: Deployed, user: str, url: str) -> tuple[int, str, str]:
    as_user = "" if user == "root" else f"sudo -u {user} -- "
    result = site.server.run(f"{as_user}curl --noproxy '*' -sS -m 5 '{url.replace('%', '%25')}'")
    return result.returncode, result.stdout, result.stderr


def test_root_reads_the_user_data_and_the_host_key_is_in_it(site: Deployed) -> None:
    """Not vacuous: the stand-in serves the server its real user_data at both addresses, and that
    holds the SSH host private key the stack generated."""
    expected = user_data(site)
    key_lines = [line for line in host_private_key(site).splitlines() if len(line) >= 40]
    assert key_lines and all(line in expected for line in key_lines)
    for url in URLS.values():
        status, out, err = curl(site, "root", url)
        assert status == 0, err
        assert out == expected
    assert probe(site, "root") == {"user": "root", "ipv4": f"read {len(expected)} with-key",
                                   "ipv6": f"read {len(expected)} with-key"}  # fmt: skip
    (server_id,) = site.hetzner.cloud.servers
    status, out, err = curl(site, "root", "http://169.254.169.254/hetzner/v1/metadata/instance-id")
    assert (status, out) == (0, str(server_id)), err
    status, out, err = curl(site, "root", "http://169.254.169.254/hetzner/v1/metadata")
    assert status == 0 and f"public-ipv4: {json.dumps(SERVER_IP)}" in out, out + err


@pytest.mark.parametrize("user", [APP, "www-data", "admin"])
def test_every_other_user_gets_a_refused_connection(site: Deployed, user: str) -> None:
    """The app user (who runs the site's code), nginx's www-data, and the admin user as itself
    (without sudo): refused at both addresses, by curl and by Python."""
    if user == "admin":
        assert site.settings.login_user == "admin"
    for url in URLS.values():
        status, out, err = curl(site, user, url)
        assert status == 7 and out == "", f"{user} {url}: curl exited {status}: {out!r} {err!r}"
    assert probe(site, user) == {"user": user, "ipv4": "ConnectionRefusedError", "ipv6": "ConnectionRefusedError"}


def test_a_django_view_cannot_read_it(site: Deployed) -> None:
    """A view of the deployed site (pushed and deployed as any commit would be) asks the metadata
    service from inside gunicorn: refused, as the app user."""
    body = "\n".join(f"    {line}" for line in PROBE.strip().splitlines()[1:-1])
    views = VIEWS + VIEW.format(urls=repr(URLS), body=body)
    urls = URLCONF.replace('    path("health/", views.health),\n', '    path("health/", views.health),\n'
                           '    path("metadata/", views.metadata),\n')  # fmt: skip
    assert "views.metadata" in urls
    site.lab.forge().push_commit(REPO, {"posts/views.py": views, "posts/urls.py": urls}, "a view that asks")
    deployed = site.ci_ssh(site.settings.deploy_script)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    web.wait_for(SERVER_IP, DOMAIN, "/metadata/", "ConnectionRefusedError", cafile=site.cafile, timeout=20)
    found = json.loads(site.https("/metadata/").body)
    assert found == {"user": APP, "ipv4": "ConnectionRefusedError", "ipv6": "ConnectionRefusedError"}


def test_control_without_the_output_chain_the_app_user_reads_the_key(site: Deployed) -> None:
    """Flush our output chain: the app user reads the user data, host key included. Then the rules
    file is applied again, as the unit does, and the refusal is back."""
    expected = user_data(site)
    site.sh("nft flush chain inet django_vps output")
    try:
        found = probe(site, APP)
        status, out, _ = curl(site, APP, URLS["ipv4"])
    finally:
        site.sh("nft -f /etc/django-vps/firewall.nft")
    assert found == {"user": APP, "ipv4": f"read {len(expected)} with-key", "ipv6": f"read {len(expected)} with-key"}
    assert (status, out) == (0, expected)
    assert probe(site, APP)["ipv4"] == "ConnectionRefusedError"


def test_after_a_reboot_the_unit_has_restored_the_chain(site: Deployed) -> None:
    """Last: it restarts the server. At boot the unit restores the table (before the network)."""
    site.server.reboot()
    assert site.sh("systemctl is-active django-vps-firewall.service").strip() == "active"
    assert "chain output" in site.sh("nft list table inet django_vps")
    assert probe(site, APP) == {"user": APP, "ipv4": "ConnectionRefusedError", "ipv6": "ConnectionRefusedError"}
    assert probe(site, "root")["ipv4"].endswith("with-key")
