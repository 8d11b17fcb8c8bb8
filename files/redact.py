"""Copies stdin to stdout with the stack's secret values masked: a deploy runs the project's code,
and Django's errors can quote a setting's value, while `pulumi up` shows a failed step's output and
GitHub keeps the workflow's log. Installed by django-vps; run as the app user:

    deploy.sh 2>&1 | python3 -I redact.py ENV_FILE NAME...

Each NAME=VALUE line of ENV_FILE (and of ENV_FILE.pending, the .env waiting for a move to PostgreSQL,
when there is one) whose NAME is given, with a value of 6 characters or more, makes VALUE print as
[secret NAME].
"""

import sys


def read(env_file: str, names: set[str], masks: dict[str, str]) -> None:
    with open(env_file, encoding="utf-8", errors="replace") as env:
        for line in env:
            name, sep, value = line.strip().partition("=")
            value = value.strip()
            # As python-decouple reads it: one pair of surrounding quotes is the encoding's.
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            if sep and name.strip() in names and len(value) >= 6:
                masks[value] = f"[secret {name.strip()}]"


def main() -> None:
    env_file, names = sys.argv[1], set(sys.argv[2:])
    masks: dict[str, str] = {}
    try:
        read(env_file, names, masks)
    except OSError as error:
        print(f"redact.py: {env_file}: {error.strerror}; secrets are not masked", file=sys.stderr)
    try:
        read(f"{env_file}.pending", names, masks)
    except FileNotFoundError:
        pass
    except OSError as error:
        print(f"redact.py: {env_file}.pending: {error.strerror}; its secrets are not masked", file=sys.stderr)
    longest_first = sorted(masks, key=len, reverse=True)
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    for line in stdin:
        for value in longest_first:
            line = line.replace(value, masks[value])
        sys.stdout.write(line)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
