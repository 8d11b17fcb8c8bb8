"""Mocks that record every resource the program registers and answer like the providers would."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest

from tests.support.keys import ed25519_outputs
from tests.support.program import ROOT, config_from_stack_file, run_program

PROD_CONFIG = config_from_stack_file(ROOT / "Pulumi.prod.yaml")


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[Recorded] = field(default_factory=list)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1000))

    # Provider answers, keyed by type token; values camelCase as the engine returns them.
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        if args.typ == "tls:index/privateKey:PrivateKey":
            outputs.update(ed25519_outputs())
        elif args.typ == "hcloud:index/server:Server":
            outputs.update(ipv4Address="198.51.100.20", ipv6Address="2001:db8::1", status="running")
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = "k" * int(args.inputs["length"])
        elif args.typ == "command:remote:Command":
            outputs.update(stdout="", stderr="")
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), outputs))
        return str(next(self.ids)), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None

    def of_type(self, suffix: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ.endswith(suffix)]

    def named(self, name: str) -> Recorded:
        (found,) = [r for r in self.resources if r.name == name]
        return found


@dataclass
class StackRun:
    mocks: RecordingMocks
    exports: dict[str, Any]


@pytest.fixture
def run_stack():
    """run_stack(**overrides) runs __main__.py with Pulumi.prod.yaml's values plus overrides
    (keys without the django-vps: prefix; None removes a key)."""

    def run(secret_keys: tuple[str, ...] = (), **overrides: str | None) -> StackRun:
        config = dict(PROD_CONFIG)
        for key, value in overrides.items():
            full = key if ":" in key else f"django-vps:{key}"
            if value is None:
                config.pop(full, None)
            else:
                config[full] = value
        mocks = RecordingMocks()
        exports = run_program(mocks, config, secret_keys=secret_keys)
        return StackRun(mocks, exports)

    return run
