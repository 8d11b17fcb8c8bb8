"""Deploy benchmark on the e2e test server, under a steady 100 req/s HTTPS load from the root
namespace: (a) the seed's deploy as written (pull in place, dependencies, migrate, npm,
collectstatic, `supervisorctl restart`) beside (b) django-vps's deploy.sh (new release, check,
switch, HUP), alternating, several rounds; then the time of a deploy that changes nothing.

Run as root:  uv run python -m benchmarks.deploys [rounds]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.load import LoadResult, steady_load
from tests.e2e.site import DOMAIN, FIXTURES, SERVER_IP, Deployed, deploy_site
from tests.e2e.testhost import Lab

REPO = "bench"
VIEWS = (FIXTURES / "blog-uv/posts/views.py").read_text()
# The seed's uv deploy.sh, on the live code in place (as root only for the restart, which the
# seed's user does through its own supervisor rights).
SEED_DEPLOY = """set -e
cd /home/blog/blog/current
sudo -u blog -H git --git-dir=/home/blog/blog/repo.git fetch -q origin +refs/heads/main:refs/heads/main
sudo -u blog -H sh -c 'git --git-dir=/home/blog/blog/repo.git archive main | tar -x -C .'
sudo -u blog -H uv sync --quiet --no-dev --group prod --python /usr/bin/python3
sudo -u blog -H .venv/bin/python manage.py migrate --no-input >/dev/null
sudo -u blog -H npm install --no-audit --no-fund >/dev/null
sudo -u blog -H .venv/bin/python manage.py collectstatic --no-input >/dev/null
supervisorctl restart blog >/dev/null
"""


def seed_deploy(site: Deployed) -> float:
    started = time.monotonic()
    site.server.run(SEED_DEPLOY, check=True)
    return time.monotonic() - started


def our_deploy(site: Deployed, script: str) -> float:
    started = time.monotonic()
    result = site.ci_ssh(script)
    assert result.returncode == 0, result.stdout + result.stderr
    return time.monotonic() - started


def row(name: str, seconds: list[float], loads: list[LoadResult]) -> str:
    sent = sum(load.sent for load in loads)
    non_2xx = sum(load.non_2xx for load in loads)
    errors = sum(load.errors for load in loads)
    p99 = max(load.p99_seconds or 0 for load in loads) * 1000
    return f"| {name:<28} | {statistics.median(seconds):6.2f} | {sent:8d} | {non_2xx:7d} | {errors:13d} | {p99:8.0f} |"


def main(rounds: int) -> None:
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        site = deploy_site(lab, Path(tmp) / "root.pem", repo=REPO)
        script = site.settings.deploy_script
        results: dict[str, tuple[list[float], list[LoadResult]]] = {"seed": ([], []), "ours": ([], [])}
        for number in range(rounds):
            for variant in ("seed", "ours"):
                heading = f"{variant} round {number}"
                lab.forge().push_commit(
                    REPO, {"posts/views.py": VIEWS.replace("<h1>blog</h1>", f"<h1>{heading}</h1>")}, heading
                )
                with steady_load(SERVER_IP, DOMAIN) as load:
                    seconds = seed_deploy(site) if variant == "seed" else our_deploy(site, script)
                results[variant][0].append(seconds)
                results[variant][1].append(load)
                assert heading in site.https("/").body, f"{variant} did not serve its commit"
        no_change = [our_deploy(site, script) for _ in range(3)]

    print(f"\ndeploys under 100 req/s of HTTPS for the deploy +1 s before and after, {rounds} rounds each")
    print("| deploy                       | wall s | requests | non-2xx | socket errors | p99 ms   |")
    print("|------------------------------|--------|----------|---------|---------------|----------|")
    print(row("seed (in place + restart)", *results["seed"]))
    print(row("django-vps (release + HUP)", *results["ours"]))
    seed_failed = sum(load.failed for load in results["seed"][1])
    ours_failed = sum(load.failed for load in results["ours"][1])
    print(f"failed requests per deploy: seed {seed_failed / rounds:.1f}, django-vps {ours_failed / rounds:.1f}")
    print(f"no-change deploy (django-vps): median {statistics.median(no_change):.2f} s of {len(no_change)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
