"""pytest fixtures for end-to-end tests. Use from a conftest.py: `pytest_plugins = ["tests.e2e.testhost.fixtures"]`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .lab import Lab, leftovers


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The test network (proxy, DNS, pebble), started once per session; servers via lab.server()."""
    with Lab() as lab:  # per pytest-xdist worker: each worker its own lab, with its own id
        names = lab.names
        yield lab
    assert names is not None
    left = leftovers(names)
    assert not left, f"teardown left: {left}"
