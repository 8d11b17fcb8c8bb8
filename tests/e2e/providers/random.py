"""Stand-in for pulumi-resource-random: `random:index/randomPassword:RandomPassword`.

Contract from terraform-provider-random `internal/provider/resource_password.go` (bridged by
pulumi-random): every argument forces a new password (RequiresReplace); the result is kept in state.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from tests.e2e.providers import Provider, Resource, serve

DEFAULTS = {"special": True, "upper": True, "lower": True, "numeric": True}
SPECIALS = "!@#$%&*()-_=+[]{}<>:?"


class RandomPassword(Resource):
    token = "random:index/randomPassword:RandomPassword"
    replace_on = frozenset(
        [
            "length",
            "special",
            "upper",
            "lower",
            "numeric",
            "overrideSpecial",
            "keepers",
            "minLower",
            "minUpper",
            "minNumeric",
            "minSpecial",
        ]
    )

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        return {**DEFAULTS, **news}

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        alphabet = ""
        letter_sets = {"lower": string.ascii_lowercase, "upper": string.ascii_uppercase, "numeric": string.digits}
        for flag, letters in letter_sets.items():
            if inputs.get(flag):
                alphabet += letters
        if inputs.get("special"):
            alphabet += inputs.get("overrideSpecial") or SPECIALS
        result = "".join(secrets.choice(alphabet) for _ in range(int(inputs["length"])))
        return "none", {**inputs, "result": result}


if __name__ == "__main__":
    serve(Provider("random", [RandomPassword]))
