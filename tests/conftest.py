"""The suite guards itself: a test that skips fails the run, unless its reason is in ALLOWED_SKIPS.

A skip for a missing tool (nginx, shellcheck, nft, cloud-init, /run/sshd...) hides a feature that is
then never tested, on every run of a machine that lacks it; `tests/run` installs them all. So such a
skip is reported as a failure naming the reason. Deselecting (`-m "not e2e"`) is not a skip, and an
expected failure (xfail) is not one either.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import figures

ROOT_NEEDED = "needs root: it acts as root against files of another uid (tests/run runs as root)"
# The only skips allowed, by their exact reason, each with why it is acceptable. Add one only for a
# condition the project's test command (`tests/run`, as root on Debian 12) never meets.
ALLOWED_SKIPS: dict[str, str] = {
    "nft needs CAP_NET_ADMIN, in a network namespace of its own: run as root": (
        "an unprivileged developer run cannot make a network namespace for the firewall checks; "
        "tests/run runs as root (as the README says), so the project's own runs never take it"
    ),
    ROOT_NEEDED: (
        "the privilege-boundary tests are about what root does to another user's files, so an unprivileged "
        "developer run cannot make them; tests/run runs as root, so the project's own runs never take it"
    ),
}

_PREFIX = "Skipped: "


def _reason(message: str) -> str:
    return message[len(_PREFIX) :] if message.startswith(_PREFIX) else message


def disallowed(reason: str) -> str:
    """What a report says about a skip whose reason is not allowed."""
    return (
        f"skipped for a reason not in ALLOWED_SKIPS (tests/conftest.py): {reason}\n"
        "Install what the test needs (tests/run does), or add the reason to ALLOWED_SKIPS with why it is acceptable."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and isinstance(report.longrepr, tuple):
        reason = _reason(report.longrepr[2])
        if reason not in ALLOWED_SKIPS:
            report.outcome = "failed"
            report.longrepr = f"{report.longrepr[0]}:{report.longrepr[1]}: {disallowed(reason)}"
    report.user_properties.extend(("figure", text) for text in figures.PENDING)
    figures.PENDING.clear()
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    shown = [
        (report.nodeid, value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(report, pytest.TestReport)
        for name, value in report.user_properties
        if name == "figure"
    ]
    if shown:
        terminalreporter.section("figures")
        for nodeid, text in shown:
            terminalreporter.write_line(f"{nodeid}:")
            for line in text.splitlines():
                terminalreporter.write_line(f"  {line}")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    """A whole module skipped (pytest.skip(allow_module_level=True), importorskip) counts too."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = _reason(report.longrepr[2])
        if reason not in ALLOWED_SKIPS:
            report.outcome = "failed"
            report.longrepr = f"{report.longrepr[0]}:{report.longrepr[1]}: {disallowed(reason)}"
    return report


# Seconds each e2e file (or xdist_group) took under pytest-xdist with 4 workers (setup + calls in
# `--durations`, a loaded machine, Dec 2026; the serial CI log agrees on the order of the long ones);
# absent ones count as 0. Under pytest-xdist (`tests/run`) whole files are handed out in collection
# order (WholeFilesLongestFirst below), so the longest go first and the short ones fill in at the
# end, instead of one long file starting last while the other workers idle. A file too long for
# that marks part of its tests `xdist_group(NAME)`: NAME goes to a worker of its own.
E2E_SECONDS: dict[str, float] = {
    "tests/e2e/test_postgresql.py": 620,
    "tests/e2e/test_two_stacks.py": 600,
    "tests/e2e/test_hetzner_settings.py": 600,
    "tests/e2e/test_real_projects.py": 590,
    "tests/e2e/test_real_projects.py-2": 535,
    "tests/e2e/test_boundary.py": 380,
    "tests/e2e/test_security.py": 380,
    "tests/e2e/test_site.py": 350,
    "tests/e2e/test_offsite.py": 520,  # sftp and s3 (414 s alone)
    "tests/e2e/test_data_volume.py": 420,  # 333 s alone (sqlite), plus postgresql
    "tests/e2e/test_sqlite_to_postgresql.py": 320,  # 250 s alone
    "tests/e2e/test_quick_start.py": 300,  # 240 s beside three labs
    "tests/e2e/test_existing_host.py": 260,
    "tests/e2e/test_metadata.py": 250,
    "tests/e2e/test_deploys.py": 230,
    "tests/e2e/test_debian13.py": 190,
    "tests/e2e/test_github_standin.py": 180,
    "tests/e2e/test_hetzner_standin.py": 100,
    "tests/e2e/test_testhost.py": 60,
}


def _scope(item: pytest.Item) -> str:
    """What goes to one worker: the item's xdist_group, else its file."""
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0]) if mark else item.nodeid.split("::", 1)[0].split("@", 1)[0]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker; a serial run keeps the collection order
        items.sort(key=lambda item: -E2E_SECONDS.get(_scope(item), 0.0))  # stable: a file's order stays


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """--dist loadgroup, where a test without an xdist_group goes with its file (xdist's own sends it
    alone), and a worker is handed its next file only when the last test of its current one starts
    (xdist's waits for two left): an e2e file's last tests can take minutes, and a file committed to
    a busy worker meanwhile is one another worker could have run."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class WholeFilesLongestFirst(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # xdist's suffix for an xdist_group
                return nodeid.rsplit("@", 1)[-1]
            return nodeid.split("::", 1)[0]

        def _reschedule(self, node: Any) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            # One left is the least: the worker runs a test only once it knows the next one.
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

    return WholeFilesLongestFirst(config, log)  # type: ignore[arg-type]
