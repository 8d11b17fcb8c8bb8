"""Real SSH keys (the cryptography package): key pairs for test logins, and the outputs pulumi-tls's
PrivateKey would return for a key (its output names)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

_NO_ENCRYPTION = serialization.NoEncryption()


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str
    """-----BEGIN OPENSSH PRIVATE KEY-----…"""
    public: str
    """ssh-ed25519 AAAA…"""


def new_ed25519() -> KeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    return KeyPair(_private_openssh(key), _public_openssh(key))


def ed25519_outputs(seed: str | None = None) -> dict[str, str]:
    """pulumi-tls PrivateKey outputs for a real ed25519 key: a new one, or for a seed always the same
    text (as the provider keeps it in state), so two runs render the same scripts and triggers."""
    return _outputs(ed25519.Ed25519PrivateKey.generate()) if seed is None else _seeded_outputs(seed)


@cache
def _seeded_outputs(seed: str) -> dict[str, str]:
    # Cached: OpenSSH's private key format carries a random check number.
    return _outputs(ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest()))


def _private_openssh(key: ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, _NO_ENCRYPTION).decode()


def _public_openssh(key: ed25519.Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _outputs(key: ed25519.Ed25519PrivateKey) -> dict[str, str]:
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _NO_ENCRYPTION)
    public_openssh = _public_openssh(key) + "\n"
    blob = base64.b64decode(public_openssh.split()[1])
    return {
        "algorithm": "ED25519",
        "privateKeyOpenssh": _private_openssh(key),
        "privateKeyPem": private_pem.decode(),
        "privateKeyPemPkcs8": private_pem.decode(),
        "publicKeyOpenssh": public_openssh,
        "publicKeyFingerprintSha256": "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="),
    }
