"""redact.py, the mask between a deploy's output and what pulumi and GitHub show, run for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from components import render

SECRET_KEY = "k3y-!@%^&*(-_=+)-that-is-long"
API_TOKEN = "tok_9f8e7d6c5b4a"


def redact(tmp_path: Path, text: str, *names: str) -> str:
    script = tmp_path / "redact.py"
    script.write_text(render.redact_py())
    env = tmp_path / ".env"
    env.write_text(f"SECRET_KEY={SECRET_KEY}\nDEBUG=False\nAPI_TOKEN={API_TOKEN}\nSHORT=abc\n")
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(env), *names], input=text, text=True, capture_output=True, check=True
    )
    return done.stdout


def test_secret_values_are_masked_wherever_they_appear(tmp_path: Path) -> None:
    output = redact(
        tmp_path,
        f"ValueError: invalid literal for int(): '{API_TOKEN}'\nkey={SECRET_KEY} and again {SECRET_KEY}\nDEBUG=False\n",
        "SECRET_KEY",
        "API_TOKEN",
    )
    assert API_TOKEN not in output and SECRET_KEY not in output
    assert output.count("[secret SECRET_KEY]") == 2 and "'[secret API_TOKEN]'" in output
    assert "DEBUG=False" in output  # not a secret: left alone


def test_only_the_named_values_are_masked(tmp_path: Path) -> None:
    # The control: a value whose name is not given passes, so the mask above is the names' doing.
    output = redact(tmp_path, f"{API_TOKEN} {SECRET_KEY}\n", "SECRET_KEY")
    assert API_TOKEN in output and SECRET_KEY not in output


def test_a_missing_env_file_says_so_and_passes_the_output_through(tmp_path: Path) -> None:
    script = tmp_path / "redact.py"
    script.write_text(render.redact_py())
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(tmp_path / "absent"), "SECRET_KEY"],
        input="hello\n", text=True, capture_output=True, check=True,
    )  # fmt: skip
    assert done.stdout == "hello\n" and "secrets are not masked" in done.stderr


def test_the_env_waiting_for_a_move_to_postgresql_is_masked_too(tmp_path: Path) -> None:
    """A deploy that moves the site to PostgreSQL runs with .env.pending (files/host-env.sh.j2): its
    secrets, such as one added with the move, are masked as the .env's are."""
    added = "pg-only-secret-value"
    (tmp_path / ".env.pending").write_text(f"SECRET_KEY={SECRET_KEY}\nMAIL_PASSWORD={added}\n")
    output = redact(tmp_path, f"{added} {SECRET_KEY} {API_TOKEN}\n", "SECRET_KEY", "MAIL_PASSWORD", "API_TOKEN")
    assert output == "[secret MAIL_PASSWORD] [secret SECRET_KEY] [secret API_TOKEN]\n"
