from tests.e2e.testhost.fixtures import lab  # noqa: F401  (the session's test network)
