"""The suite guards itself: a test that skips fails the run, unless its reason is in ALLOWED_SKIPS.

A skip for a missing tool (nginx, shellcheck, nft, cloud-init, /run/sshd...) hides a feature that is
then never tested, on every run of a machine that lacks it; `tests/run` installs them all. So such a
skip is reported as a failure naming the reason. Deselecting (`-m "not e2e"`) is not a skip, and an
expected failure (xfail) is not one either.
"""

from __future__ import annotations

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
