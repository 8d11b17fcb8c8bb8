"""deploy.sh's choice of Python (choose_python), run for real with uv: the distribution's when the
project asks for none or it satisfies the project's .python-version / requires-python, else one uv
installs, said in one line; when uv cannot install it (no downloads here, as in the lab), one line
naming the request. uv's install is a recording stub (it fails, or links an interpreter that is
here); everything else is real."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import render
from tests.render.conftest import make_settings


def _functions() -> str:
    text = render.deploy_sh(make_settings())
    start, end = text.index("python=/usr/bin/python3\n"), text.index("dependencies() {")
    helpers = "step() { printf '==> %s\\n' \"$*\"; }\nfail() { printf 'deploy failed: %s\\n' \"$*\" >&2; exit 1; }\n"
    return helpers + text[start:end]


def _choose(tmp_path: Path, files: dict[str, str], installs_as: str = "") -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "bin").mkdir()
    for name, content in files.items():
        (project / name).write_text(content)
    real_uv = shutil.which("uv")
    assert real_uv, "uv is not installed"
    if "/shims/" in real_uv:  # pyenv's: the shim needs pyenv itself on PATH
        real_uv = subprocess.run(["pyenv", "which", "uv"], capture_output=True, text=True, check=True).stdout.strip()
    stub = tmp_path / "bin" / "uv"
    # `uv python install` records its arguments; it fails (no downloads), or with `installs_as` it
    # "installs" that interpreter by putting it on PATH, where `uv python find` looks.
    install = f"ln -s {installs_as} {stub.parent}/; exit 0" if installs_as else "exit 1"
    stub.write_text(
        f'#!/bin/bash\nif [ "$1 $2" = "python install" ]; then echo "$*" >>{tmp_path}/installs; {install}; fi\n'
        f'exec {real_uv} "$@"\n'
    )
    stub.chmod(0o755)
    script = _functions() + 'choose_python\necho "chosen: $python"\n'
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=project, capture_output=True, text=True, timeout=60,
        env={"PATH": f"{stub.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "UV_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip


def _pyproject(requires: str) -> dict[str, str]:
    return {"pyproject.toml": f'[project]\nname = "site"\nversion = "1"\nrequires-python = "{requires}"\n'}


def test_no_request_is_the_distributions_python(tmp_path: Path) -> None:
    result = _choose(tmp_path, {"requirements.txt": "django\n"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("==> Python: Python 3.")
    assert "(the distribution's; the project asks for none)" in result.stdout
    assert result.stdout.splitlines()[-1] == "chosen: /usr/bin/python3"


@pytest.mark.parametrize("files", [_pyproject(">=3.10"), {".python-version": "3\n"}], ids=["requires", "version-file"])
def test_a_request_the_distribution_meets_uses_it_and_says_so(tmp_path: Path, files: dict[str, str]) -> None:
    result = _choose(tmp_path, files)
    assert result.returncode == 0, result.stderr
    request = ">=3.10" if "pyproject.toml" in files else "3"
    assert f", for the project's {request}" in result.stdout
    assert not (tmp_path / "installs").exists()


def test_a_newer_request_installs_with_uv_and_fails_in_one_line_without_downloads(tmp_path: Path) -> None:
    """Django 6 needs 3.12: on Debian 12 (3.11) uv installs one; here (as in the lab) it cannot."""
    result = _choose(tmp_path, _pyproject(">=3.99"))
    assert result.returncode == 1
    assert "==> the project asks for Python >=3.99 and the distribution's is 3." in result.stdout
    assert result.stderr.strip().startswith("deploy failed: uv could not install a Python for >=3.99")
    assert (tmp_path / "installs").read_text().split()[:2] == ["python", "install"]


def test_a_newer_request_uv_installs_is_used_and_said(tmp_path: Path) -> None:
    """The distribution's Python does not satisfy the request, uv installs one that does: the deploy
    uses it, says "(uv-managed)", and asked uv for exactly the project's request (requires-python,
    which a bare `uv python install` ignores)."""
    distribution = subprocess.run(["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"],
                                  capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    other = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    wanted = platform.python_version()
    assert wanted != distribution and other.exists(), f"needs a Python other than the distribution's {distribution}"
    result = _choose(tmp_path, _pyproject(f"=={wanted}"), installs_as=str(other))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"==> the project asks for Python =={wanted} and the distribution's is {distribution}" in result.stdout
    assert f"==> Python: Python {wanted} at {tmp_path}/bin/{other.name} (uv-managed), for the project's =={wanted}" in (
        result.stdout
    )
    assert result.stdout.splitlines()[-1] == f"chosen: {tmp_path}/bin/{other.name}"
    assert (tmp_path / "installs").read_text().split() == ["python", "install", "--quiet", f"=={wanted}"]
