"""The skip guard (tests/conftest.py) run on a small suite of its own, in a pytest of its own: a skip
whose reason is not in ALLOWED_SKIPS fails the run, wherever it is raised (test, fixture, marker,
module); an allowed one, an xfail and a deselected test do not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ALLOWED_SKIPS
from tests.support.program import ROOT

ALLOWED = next(iter(ALLOWED_SKIPS))

SUITE = f"""
import pytest

def test_passes():
    pass

def test_skips_for_a_missing_tool():
    pytest.skip("nginx is not installed: apt-get install -y nginx")

def test_skips_for_an_allowed_reason():
    pytest.skip({ALLOWED!r})

@pytest.fixture
def tool():
    pytest.skip("nft is not installed: apt-get install -y nftables")

def test_needs_a_fixture_that_skips(tool):
    pass

@pytest.mark.skipif(True, reason="no cloud-init here")
def test_skipped_by_a_marker():
    pass

@pytest.mark.xfail(strict=True, reason="a known bug")
def test_expected_to_fail():
    assert False

@pytest.mark.e2e
def test_deselected():
    pytest.skip("never reached: deselected")
"""


def _run(tmp_path: Path, files: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """pytest on the files with the guard as its only plugin: (exit code, outcome by test, output)."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    e2e: deselected here\n")
    log = tmp_path / "log.jsonl"
    plugin = tmp_path / "record_outcomes.py"
    plugin.write_text(
        "import json\n"
        "def pytest_runtest_logreport(report):\n"
        "    if report.when == 'call' or report.outcome != 'passed':\n"
        "        line = [report.nodeid, report.when, report.outcome, hasattr(report, 'wasxfail')]\n"
        f"        with open({str(log)!r}, 'a') as f:\n"
        "            f.write(json.dumps(line) + '\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "record_outcomes", "-q", "-rA", "-m", "not e2e"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{tmp_path}", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    outcomes: dict[str, str] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        nodeid, when, outcome, xfail = json.loads(line)
        name = nodeid.split("::")[-1]
        # The worst phase wins (a setup error is the test's outcome).
        if name not in outcomes or outcomes[name] == "passed":
            outcomes[name] = "xfailed" if xfail else outcome if when == "call" else f"{outcome} at {when}"
    return result.returncode, outcomes, result.stdout + result.stderr


def test_a_skip_for_a_reason_not_allowed_fails_the_run(tmp_path: Path) -> None:
    code, outcomes, output = _run(tmp_path, {"test_suite.py": SUITE})
    assert code == 1, output
    assert outcomes == {
        "test_passes": "passed",
        "test_skips_for_a_missing_tool": "failed",
        "test_skips_for_an_allowed_reason": "skipped",
        "test_needs_a_fixture_that_skips": "failed at setup",
        "test_skipped_by_a_marker": "failed at setup",
        "test_expected_to_fail": "xfailed",
    }, output
    assert "test_deselected" not in outcomes and "1 deselected" in output
    for reason in ("nginx is not installed", "nft is not installed", "no cloud-init here"):
        assert f"skipped for a reason not in ALLOWED_SKIPS (tests/conftest.py): {reason}" in output


def test_a_suite_with_only_allowed_skips_passes(tmp_path: Path) -> None:
    """Control: the same guard lets a run through when every skip is allowed."""
    suite = f"import pytest\n\ndef test_passes():\n    pass\n\ndef test_allowed():\n    pytest.skip({ALLOWED!r})\n"
    code, outcomes, output = _run(tmp_path, {"test_suite.py": suite})
    assert code == 0, output
    assert outcomes == {"test_passes": "passed", "test_allowed": "skipped"}


def test_a_module_skipped_whole_fails_the_run(tmp_path: Path) -> None:
    suite = 'import pytest\n\npytest.skip("supervisor is missing", allow_module_level=True)\n'
    code, _, output = _run(tmp_path, {"test_module.py": suite})
    assert code != 0, output
    assert "skipped for a reason not in ALLOWED_SKIPS (tests/conftest.py): supervisor is missing" in output


def test_figures_of_passing_tests_and_module_fixtures_reach_the_summary(tmp_path: Path) -> None:
    """A passing test keeps its output to itself; what it gives figure() is in the summary, once,
    and so is what a module fixture gives it at its teardown."""
    suite = (
        "import pytest\nfrom tests.support.figures import figure\n\n"
        "@pytest.fixture(scope='module')\ndef deployed():\n    yield\n    figure('converge 12.5 s')\n\n"
        "def test_one(deployed):\n    figure('deploy under load: 0 failed')\n\n"
        "def test_two(deployed):\n    print('not a figure')\n"
    )
    code, outcomes, output = _run(tmp_path, {"test_suite.py": suite})
    assert code == 0 and outcomes == {"test_one": "passed", "test_two": "passed"}, output
    section = output.split(" figures ", 1)[1]
    assert section.count("deploy under load: 0 failed") == 1 and section.count("converge 12.5 s") == 1, output
    assert "test_suite.py::test_one:" in section and "not a figure" not in section.split("short test summary")[0]
