from collections.abc import Iterator

import pytest

from tests.e2e.testhost import Lab
from tests.e2e.testhost.fixtures import lab  # noqa: F401  (the session's test network)


@pytest.fixture(scope="session", autouse=True)
def _in_the_lab(lab: Lab) -> Iterator[None]:  # noqa: F811
    """Every e2e test runs in the lab's network namespace, the first one too: the process joins it
    before anything starts a thread. A thread keeps the namespace it was started in, and gRPC's own
    threads (the Automation API's, which connect to the CLI) start at its first use: a test using
    the CLI against a stand-in on 127.0.0.1 before the lab started would leave them outside it."""
    yield
