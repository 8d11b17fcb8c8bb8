"""Real SSH key material for the unit tests (the cryptography package), generated once per session."""

from __future__ import annotations

from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.support.keys import new_ed25519

_OPENSSH = (serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def _public(key) -> str:
    return key.public_key().public_bytes(*_OPENSSH).decode()


@cache
def ed25519_pair(label: str = "default") -> tuple[str, str]:
    """(OpenSSH private key PEM, "ssh-ed25519 AAAA...") — a distinct key per label."""
    pair = new_ed25519()
    return pair.private_openssh, pair.public


def ed25519_public(label: str = "default", comment: str = "") -> str:
    public = ed25519_pair(label)[1]
    return f"{public} {comment}" if comment else public


@cache
def encrypted_ed25519_private() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()


@cache
def rsa_public(bits: int) -> str:
    return _public(rsa.generate_private_key(public_exponent=65537, key_size=bits))


@cache
def ecdsa_public() -> str:
    return _public(ec.generate_private_key(ec.SECP256R1()))
