"""Real SSH keys, as pulumi-tls's PrivateKey would return them (its output names)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def ed25519_outputs() -> dict[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private_openssh = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_openssh = (
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        + "\n"
    )
    blob = base64.b64decode(public_openssh.split()[1])
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return {
        "algorithm": "ED25519",
        "privateKeyOpenssh": private_openssh,
        "privateKeyPem": private_pem,
        "privateKeyPemPkcs8": private_pem,
        "publicKeyOpenssh": public_openssh,
        "publicKeyFingerprintSha256": fingerprint,
    }
