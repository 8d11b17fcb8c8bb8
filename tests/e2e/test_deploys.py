"""Deploys that never drop a request, on a real server under a steady HTTPS load: atomic releases,
graceful reload, the release check, rollback, fast no-change deploys, the lock, pruning."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

import pytest

from tests.e2e import web
from tests.e2e.load import LoadResult, steady_load
from tests.e2e.site import DOMAIN, FIXTURES, SERVER_IP, Deployed, deploy_site
from tests.e2e.testhost import Lab
from tests.support.figures import figure

pytestmark = pytest.mark.e2e

REPO = "releases"
KEEP = 3
VIEWS = (FIXTURES / "blog-uv/posts/views.py").read_text()
FAILING_MIGRATION = """from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("django-vps failing migration")


class Migration(migrations.Migration):
    dependencies = (("posts", "0001_initial"),)
    operations = (migrations.RunPython(fail),)
"""
HARMLESS_MIGRATION = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = (("posts", "0001_initial"),)
    operations = ()
"""


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    deployed = deploy_site(lab, tmp_path_factory.mktemp("pebble") / "root.pem", repo=REPO, keepReleases=str(KEEP))
    yield deployed
    deployed.remove()


def heading(text: str) -> dict[str, str]:
    return {"posts/views.py": VIEWS.replace("<h1>blog</h1>", f"<h1>{text}</h1>")}


def push(site: Deployed, files: dict[str, str], message: str) -> None:
    site.lab.forge().push_commit(REPO, files, message)


def deploy(site: Deployed, command: str = "") -> tuple[float, str, str, int]:
    started = time.monotonic()
    result = site.ci_ssh(f"{site.settings.deploy_script} {command}".strip())
    return time.monotonic() - started, result.stdout, result.stderr, result.returncode


def live(site: Deployed) -> str:
    return site.sh("readlink /home/blog/blog/current").strip()


def assert_nothing_failed(load: LoadResult) -> None:
    assert load.sent > 100, load.output
    assert load.failed == 0, f"{load.failed} of {load.sent} requests failed:\n{load.output}"


def test_a_deploy_under_load_drops_no_request_and_serves_the_new_code(site: Deployed) -> None:
    push(site, heading("release two"), "release two")
    with steady_load(SERVER_IP, DOMAIN) as load:
        seconds, out, err, status = deploy(site)
    assert status == 0, out + err
    assert_nothing_failed(load)
    web.wait_for(SERVER_IP, DOMAIN, "/", "release two", cafile=site.cafile, timeout=10)
    figure(f"deploy under load: {seconds:.1f} s, {load.sent} requests, {load.failed} failed, p99 {load.p99_seconds}")


def test_a_code_only_deploy_is_fast(site: Deployed) -> None:
    push(site, heading("release three"), "release three")
    seconds, out, err, status = deploy(site)
    assert status == 0, out + err
    assert "dependencies unchanged" in out and "npm packages unchanged" in out
    web.wait_for(SERVER_IP, DOMAIN, "/", "release three", cafile=site.cafile, timeout=10)
    # A figure, not a budget: benchmarks/deploys.py measures it side by side.
    figure(f"code-only deploy: {seconds:.2f} s")


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"posts/views.py": "import not_a_module  # noqa\n" + VIEWS}, "No module named 'not_a_module'"),
        ({"posts/migrations/0002_fail.py": FAILING_MIGRATION}, "django-vps failing migration"),
    ],
    ids=["import-error", "failing-migration"],
)
def test_a_broken_commit_leaves_the_live_release_serving(site: Deployed, files: dict[str, str], reason: str) -> None:
    before = live(site)
    push(site, {**heading("release three"), **files}, f"broken: {reason}")
    with steady_load(SERVER_IP, DOMAIN) as load:
        _, out, err, status = deploy(site)
    assert status != 0
    # ci-command sends the project's output through the secrets' mask, stderr with stdout.
    assert reason in out + err and "did not pass its check" in out + err, out + err
    assert live(site) == before
    assert_nothing_failed(load)
    assert "release three" in site.https("/").body


def test_rollback_goes_back_gracefully(site: Deployed) -> None:
    push(site, {**heading("release four"), "posts/migrations/0002_fail.py": HARMLESS_MIGRATION}, "release four")
    _, out, err, status = deploy(site)
    assert status == 0, out + err
    web.wait_for(SERVER_IP, DOMAIN, "/", "release four", cafile=site.cafile, timeout=10)
    with steady_load(SERVER_IP, DOMAIN) as load:
        _, out, err, status = deploy(site, "rollback")
    assert status == 0, out + err
    assert "rolled back" in out
    web.wait_for(SERVER_IP, DOMAIN, "/", "release three", cafile=site.cafile, timeout=10)
    assert_nothing_failed(load)


def test_concurrent_deploys_are_serialised(site: Deployed) -> None:
    """A second deploy waits for the lock the first holds. The first is held open on purpose (the
    lock taken as the app user, as deploy.sh takes it), so the overlap does not depend on timing."""
    push(site, heading("release five"), "release five")
    lock = f"{site.settings.shared_dir}/deploy.lock"
    site.server.run(
        f"runuser -u {site.settings.user} -- setsid flock {lock} sleep 8 >/dev/null 2>&1 < /dev/null &", check=True
    )
    deadline = time.monotonic() + 10
    while "sleep 8" not in site.sh("ps -eo args") and time.monotonic() < deadline:
        time.sleep(0.1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        seconds, out, err, status = pool.submit(deploy, site).result(timeout=120)
    assert status == 0, out + err
    assert "waiting for the deploy already running" in out
    assert seconds >= 4, f"the deploy did not wait for the held lock ({seconds:.1f} s)"
    web.wait_for(SERVER_IP, DOMAIN, "/", "release five", cafile=site.cafile, timeout=10)


def test_old_releases_are_pruned_and_unused_environments_removed(site: Deployed) -> None:
    releases = site.sh("ls /home/blog/blog/releases").split()
    assert len(releases) == KEEP
    assert live(site) == f"releases/{max(releases)}"
    linked = set(site.sh("readlink /home/blog/blog/releases/*/.venv").split())
    existing = {f"/home/blog/blog/shared/venvs/{v}" for v in site.sh("ls /home/blog/blog/shared/venvs").split()}
    assert existing == linked


def test_the_workflow_on_github_deploys_a_push(site: Deployed) -> None:
    """The workflow file GitHub holds (committed by `pulumi up`, after the site served) is what
    deploys: its steps run as the runner runs them, with the secrets GitHub holds."""
    workflow = site.workflow()
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as true
    push(site, heading("release six"), "release six")
    result = site.run_workflow()
    assert result.returncode == 0, result.stdout + result.stderr
    web.wait_for(SERVER_IP, DOMAIN, "/", "release six", cafile=site.cafile, timeout=10)
