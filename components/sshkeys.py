"""SSH public keys and known_hosts lines, parsed and written again by us.

Key material reaches a file only as the type and base64 of a key the cryptography package loaded,
with a comment we checked: never as the text someone pasted (a newline in a comment, options before
the key, a `*` host or a `@cert-authority` marker would otherwise travel into authorized_keys,
known_hosts or cloud-init as they are).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_ssh_public_key

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
MIN_RSA_BITS = 2048
# Printable ASCII without edge spaces: enough for "me@laptop" or "CI key 2025", and nothing any
# of the files a comment lands in (authorized_keys, YAML, the Hetzner API) would read as syntax.
_COMMENT = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,98}[\x21-\x7e])?$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_HASHED_HOST = re.compile(r"^\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}=$")
_BRACKETED = re.compile(r"^\[(?P<host>[^\]]+)\]:(?P<port>[0-9]{1,5})$")
# Any character that ends a line in some syntax, and every other control character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class KeyFormatError(ValueError):
    """Why a key or known_hosts line is refused, as the end of a one-line message."""


@dataclass(frozen=True)
class PublicKey:
    """A public key as loaded: its type, its base64 blob (re-encoded) and a checked comment."""

    kind: str
    blob: str
    comment: str = ""

    def line(self, *, comment: bool = True) -> str:
        """ "type base64 [comment]", the OpenSSH form."""
        return f"{self.kind} {self.blob} {self.comment}" if comment and self.comment else f"{self.kind} {self.blob}"


@dataclass(frozen=True)
class KnownHost:
    """A known_hosts entry: plain host patterns (no wildcard, negation or marker) and a key."""

    hosts: tuple[str, ...]
    key: PublicKey

    def line(self) -> str:
        return f"{','.join(self.hosts)} {self.key.line(comment=False)}"


def _no_controls(text: str) -> None:
    found = _CONTROL.search(text)
    if found:
        raise KeyFormatError(f"has a control character or line break (U+{ord(found.group()):04X})")


def public_key(text: str, *, keep_comment: bool = True) -> PublicKey:
    """Parses "type base64 [comment]"; raises KeyFormatError naming what is wrong."""
    _no_controls(text)
    tokens = text.split(" ")
    tokens = [token for token in tokens if token]
    if not tokens:
        raise KeyFormatError("is empty: give an OpenSSH public key line such as 'ssh-ed25519 AAAA... comment'")
    kind = tokens[0]
    if kind not in KEY_TYPES:
        if any(token in KEY_TYPES for token in tokens[1:]):
            raise KeyFormatError(
                "has options or a host before the key type: give only 'type base64 [comment]' "
                "(the program writes the options itself)"
            )
        raise KeyFormatError(
            f"starts with {kind[:30]!r}, not a key type: use an OpenSSH line such as 'ssh-ed25519 AAAA... comment' "
            f"({', '.join(KEY_TYPES)})"
        )
    if len(tokens) < 2:
        raise KeyFormatError(f"has no key after {kind}")
    try:
        loaded = load_ssh_public_key(f"{kind} {tokens[1]}".encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise KeyFormatError(
            f"is not a valid {kind} key ({error}): use an OpenSSH line such as 'ssh-ed25519 AAAA... comment'"
        ) from None
    if isinstance(loaded, rsa.RSAPublicKey) and loaded.key_size < MIN_RSA_BITS:
        raise KeyFormatError(f"is a {loaded.key_size}-bit RSA key: use ed25519 or an RSA key of 2048 bits or more")
    loaded_kind, blob = loaded.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode().split(" ")
    if loaded_kind != kind:
        raise KeyFormatError(f"says {kind} but holds an {loaded_kind} key")
    comment = " ".join(tokens[2:]) if keep_comment else ""
    if comment and not _COMMENT.match(comment):
        raise KeyFormatError(
            f"has the comment {comment[:40]!r}: a comment is up to 100 printable ASCII characters (e.g. me@laptop)"
        )
    return PublicKey(kind, blob, comment)


def _host_pattern(pattern: str) -> str:
    if _HASHED_HOST.match(pattern):
        return pattern
    bracketed = _BRACKETED.match(pattern)
    host = bracketed["host"] if bracketed else pattern
    if bracketed and not 0 < int(bracketed["port"]) < 65536:
        raise KeyFormatError(f"names the port of {pattern!r}, which is not 1-65535")
    try:
        ipaddress.ip_address(host)
        return pattern
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise KeyFormatError(
            f"names the host {pattern[:40]!r}: a host is a hostname, an IP address or [host]:port "
            "(no wildcards, negations or spaces)"
        )
    return pattern.lower()


def known_host(text: str) -> KnownHost:
    """Parses a known_hosts line "<hosts> <type> <base64> [comment]" (the comment is dropped)."""
    _no_controls(text)
    tokens = [token for token in text.split(" ") if token]
    if tokens and tokens[0].startswith("@"):
        raise KeyFormatError(
            f"is a {tokens[0][:20]} line: give plain '<host> <key-type> <base64-key>' lines (no markers)"
        )
    if len(tokens) < 3:
        raise KeyFormatError("is not a known_hosts line: '<host> <key-type> <base64-key>'")
    hosts = tuple(_host_pattern(pattern) for pattern in tokens[0].split(","))
    return KnownHost(hosts, public_key(" ".join(tokens[1:3]), keep_comment=False))
