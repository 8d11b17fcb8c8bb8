"""Figures the tests measure (times, counts, ratios), shown together at the end of the run.

pytest keeps a passing test's output to itself, so a figure printed by a test never reached a CI log.
`figure(text)` prints it (for -s runs) and queues it; tests/conftest.py attaches the queue to the
report of the test phase that made it (which reaches the controller under xdist, too) and prints
every figure, with its test, in a "figures" section of the terminal summary.
"""

from __future__ import annotations

PENDING: list[str] = []


def figure(text: str) -> None:
    text = text.strip("\n")
    print(f"\n{text}")
    PENDING.append(text)
