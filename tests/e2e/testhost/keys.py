"""SSH key pairs for tests (root keys, deploy keys, pinned host keys): the project's one key helper."""

from tests.support.keys import KeyPair, new_ed25519

__all__ = ["KeyPair", "new_ed25519"]
