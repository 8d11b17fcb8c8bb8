"""Stand-in for pulumi-resource-tls: `tls:index/privateKey:PrivateKey`, real keys (cryptography).

Contract from terraform-provider-tls `internal/provider/resource_private_key.go` (bridged by
pulumi-tls): every input forces a new key (RequiresReplace); the key is made once and kept in state.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.providers import Provider, ProviderError, Resource, serve
from tests.support.keys import ed25519_outputs


class PrivateKey(Resource):
    token = "tls:index/privateKey:PrivateKey"
    replace_on = frozenset({"algorithm", "ecdsaCurve", "rsaBits"})

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if inputs.get("algorithm") != "ED25519":
            raise ProviderError(f"the tls stand-in makes ED25519 keys only, not {inputs.get('algorithm')}")
        if preview:
            return "", inputs
        outputs = ed25519_outputs()
        # The real provider's id is the SHA-1 of the public key PEM; any stable unique value serves.
        return outputs["publicKeyFingerprintSha256"], {**inputs, **outputs}


if __name__ == "__main__":
    serve(Provider("tls", [PrivateKey]))
