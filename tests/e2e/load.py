"""A steady HTTPS load from the root namespace while something happens on the server: Debian's `hey`
at a fixed rate, stopped by SIGINT (by its PID) after the action; its summary parsed."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

RATE = 100  # requests per second: 20 workers at 5 each
WORKERS = 20
LIMIT = "120s"  # hey stops by itself if the test dies before signalling it


@dataclass
class LoadResult:
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    p99_seconds: float | None = None
    output: str = ""

    @property
    def non_2xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    @property
    def failed(self) -> int:
        return self.non_2xx + self.errors


def parse(output: str) -> LoadResult:
    result = LoadResult(output=output)
    for status, count in re.findall(r"^\s*\[(\d{3})\]\s+(\d+) responses", output, re.M):
        result.statuses[int(status)] = int(count)
    errors = output.split("Error distribution:", 1)
    if len(errors) == 2:
        result.errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", errors[1], re.M))
    p99 = re.search(r"99%+ in ([\d.]+) secs", output)
    result.p99_seconds = float(p99.group(1)) if p99 else None
    result.sent = sum(result.statuses.values()) + result.errors
    return result


@contextmanager
def steady_load(ip: str, domain: str, path: str = "/", *, settle: float = 1.0) -> Iterator[LoadResult]:
    """Load https://domain/path at RATE req/s (TLS to ip) for the duration of the with-block, plus
    `settle` seconds before and after; the yielded result is filled in on exit."""
    result = LoadResult()
    proc = subprocess.Popen(
        [
            "hey",
            "-z",
            LIMIT,
            "-c",
            str(WORKERS),
            "-q",
            str(RATE // WORKERS),
            "-t",
            "10",
            "-host",
            domain,
            f"https://{ip}{path}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(settle)
        yield result
        time.sleep(settle)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    parsed = parse(output)
    result.__dict__.update(parsed.__dict__)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.monotonic()
    value = action()
    return time.monotonic() - started, value
