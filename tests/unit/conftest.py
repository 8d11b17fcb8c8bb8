"""Mocks that record every resource the program registers and answer like the providers would.

Besides each resource's inputs (MockResourceArgs), a RecordingMonitor keeps what the engine is told
in the RegisterResource request itself and the mocks never see: parent, dependencies (depends_on and
the resources its inputs come from), deleted_with, ignore_changes, additional_secret_outputs, provider.
Secret inputs stay wrapped as the engine receives them ({SIG: SECRET_SIG, "value": ...}), so tests can
tell a secret input from a plain one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings

from tests.support.keys import ed25519_outputs
from tests.support.program import ROOT, config_from_stack_file, run_program

PROD_CONFIG = config_from_stack_file(ROOT / "Pulumi.prod.yaml")
PROJECT = "django-vps"
STACK = "prod"
SERVER_IPV4 = "198.51.100.20"
SERVER_IPV6 = "2001:db8::1"
# What the mocked random.RandomPassword returns: recognisable, so tests can look for leaks.
GENERATED_SECRET_KEY_PREFIX = "GeNeRaTeD-sEcReT-kEy-"
# Hetzner's catalogue as getServerType answers it: architecture and disk (GB) by type.
SERVER_TYPES = {"cx23": ("x86", 40), "cx33": ("x86", 80), "cpx21": ("x86", 80), "cax11": ("arm", 40)}


# Secret inputs as the engine receives them.


def is_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    """The value with every secret marker removed (deeply)."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [unwrap(v) for v in value]
    return value


def plain_strings(value: Any) -> Iterator[str]:
    """Every string in value that is NOT inside a secret (what would sit in state in clear text)."""
    if is_secret(value):
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from plain_strings(v)
    elif isinstance(value, list | tuple | set):
        for v in value:
            yield from plain_strings(v)


def all_strings(value: Any) -> Iterator[str]:
    """Every string in value, secret or not."""
    yield from plain_strings(unwrap(value))


@dataclass(frozen=True)
class Registration:
    """The RegisterResource request's options (what MockResourceArgs leaves out)."""

    urn: str
    parent: str
    dependencies: frozenset[str]
    property_dependencies: dict[str, frozenset[str]]
    deleted_with: str
    ignore_changes: tuple[str, ...]
    additional_secret_outputs: tuple[str, ...]
    delete_before_replace: bool
    provider: str
    custom: bool
    retain_on_delete: bool = False
    import_id: str = ""


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str = ""
    registration: Registration | None = None

    @property
    def urn(self) -> str:
        assert self.registration is not None
        return self.registration.urn

    @property
    def parent(self) -> str:
        assert self.registration is not None
        return self.registration.parent

    @property
    def dependencies(self) -> frozenset[str]:
        assert self.registration is not None
        return self.registration.dependencies

    def plain(self, key: str) -> Any:
        """An input with secret markers removed."""
        return unwrap(self.inputs.get(key))


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[Recorded] = field(default_factory=list)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    pending: dict[tuple[str, str], Registration] = field(default_factory=dict)
    servers: list[dict[str, Any]] = field(default_factory=list)
    """What getServers lists: the Hetzner servers that exist before the run (camelCase)."""
    volumes: list[dict[str, Any]] = field(default_factory=list)
    """What getVolumes and getVolume find: the Hetzner Volumes that exist before the run (camelCase)."""
    calls: list[pulumi.runtime.MockCallArgs] = field(default_factory=list)

    # Provider answers, keyed by type token; values camelCase as the engine returns them.
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        if args.typ == "tls:index/privateKey:PrivateKey":
            outputs.update(ed25519_outputs(f"{STACK}/{args.name}"))
        elif args.typ == "hcloud:index/server:Server":
            outputs.update(ipv4Address=SERVER_IPV4, ipv6Address=SERVER_IPV6, status="running")
        elif args.typ == "random:index/randomPassword:RandomPassword":
            length = int(args.inputs["length"])
            outputs["result"] = (GENERATED_SECRET_KEY_PREFIX + args.name + "-" + "x" * length)[:length]
        elif args.typ == "command:remote:Command":
            outputs.update(stdout="", stderr="")
        resource_id = str(next(self.ids))
        if args.typ == "hcloud:index/volume:Volume":
            resource_id = args.resource_id or resource_id  # an import keeps the volume's id
            outputs.update(linuxDevice=f"/dev/disk/by-id/scsi-0HC_Volume_{resource_id}")
        registration = self.pending.pop((args.typ, args.name), None)
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), outputs, resource_id, registration))
        # As the engine does: outputs named in additional_secret_outputs come back secret (pulumi-tls
        # declares its private keys so; without this the program would see them as plain values).
        answer = dict(outputs)
        for key in registration.additional_secret_outputs if registration else ():
            if key in answer and not is_secret(answer[key]):
                answer[key] = rpc.wrap_rpc_secret(answer[key])
        return resource_id, answer

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        # A bare dict: the SDK's mock monitor cannot take (outputs, None).
        self.calls.append(args)
        if args.token == "hcloud:index/getServers:getServers":
            selector = dict(term.split("=", 1) for term in args.args["withSelector"].split(","))
            listed = [s for s in self.servers if selector.items() <= s["labels"].items()]
            return {"id": "list", "servers": listed}
        if args.token == "hcloud:index/getVolumes:getVolumes":
            selector = dict(term.split("=", 1) for term in args.args["withSelector"].split(","))
            listed = [v for v in self.volumes if selector.items() <= v["labels"].items()]
            return {"id": "list", "volumes": listed}
        if args.token == "hcloud:index/getVolume:getVolume":
            found = [v for v in self.volumes if v["id"] == args.args["id"]]
            if not found:
                raise Exception(f"no volume found with id {args.args['id']}")
            return found[0]
        if args.token == "hcloud:index/getServerType:getServerType":
            architecture, disk = SERVER_TYPES[args.args["name"]]
            return {"id": 1, "name": args.args["name"], "architecture": architecture, "disk": disk}
        raise NotImplementedError(f"the program called {args.token}, which the mocks do not answer")

    def of_type(self, suffix: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ.endswith(suffix)]

    def named(self, name: str, typ: str | None = None) -> Recorded:
        """The resource called name (give typ when two types share it, as the deploy keys do)."""
        found = [r for r in self.resources if r.name == name and (typ is None or r.typ == typ)]
        assert len(found) == 1, f"{len(found)} resources named {name!r}: {[r.typ for r in found]}"
        return found[0]

    def tls_key(self, name: str) -> dict[str, Any]:
        """A tls PrivateKey's outputs (the mocked provider's answer)."""
        return self.named(name, "tls:index/privateKey:PrivateKey").outputs

    def by_urn(self, urn: str) -> Recorded:
        (found,) = [r for r in self.resources if r.registration and r.registration.urn == urn]
        return found

    def commands(self) -> list[Recorded]:
        return self.of_type("command:remote:Command")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """MockMonitor that hands each request's options to RecordingMocks before it builds the resource."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request):  # the gRPC method's name
        if request.type != "pulumi:pulumi:Stack":
            self.recording.pending[(request.type, request.name)] = Registration(
                urn=self.make_urn(request.parent, request.type, request.name),
                parent=request.parent,
                dependencies=frozenset(request.dependencies),
                property_dependencies={key: frozenset(deps.urns) for key, deps in request.propertyDependencies.items()},
                deleted_with=request.deletedWith,
                ignore_changes=tuple(request.ignoreChanges),
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                delete_before_replace=request.deleteBeforeReplace,
                provider=request.provider,
                custom=request.custom,
                retain_on_delete=request.retainOnDelete,
                import_id=request.importId,
            )
        return super().RegisterResource(request)


@dataclass
class StackRun:
    mocks: RecordingMocks
    exports: dict[str, Any]
    config: dict[str, str]

    @property
    def resources(self) -> list[Recorded]:
        return self.mocks.resources


def full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def _install_monitor(monkeypatch: pytest.MonkeyPatch, mocks: RecordingMocks) -> None:
    """run_program calls pulumi.runtime.mocks.set_mocks(mocks, ...): give it our monitor."""
    original = pulumi_mocks.set_mocks

    def set_mocks(m: pulumi.runtime.Mocks, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("monitor", RecordingMonitor(mocks))
        original(m, *args, **kwargs)

    monkeypatch.setattr(pulumi_mocks, "set_mocks", set_mocks)


@pytest.fixture
def run_stack(monkeypatch: pytest.MonkeyPatch):
    """run_stack(**overrides) runs __main__.py with Pulumi.prod.yaml's values plus overrides
    (keys without the django-vps: prefix; None removes a key). Pass secret_keys=("github:token",)
    and a "github:token" override via **{...} for namespaced keys; hetzner_servers are what
    getServers finds on Hetzner before the run; `stack` names the stack (default prod)."""

    def run(
        secret_keys: tuple[str, ...] = (),
        hetzner_servers: tuple[dict[str, Any], ...] = (),
        hetzner_volumes: tuple[dict[str, Any], ...] = (),
        stack: str = STACK,
        **overrides: str | None,
    ) -> StackRun:
        config = dict(PROD_CONFIG)
        for key, value in overrides.items():
            if value is None:
                config.pop(full_key(key), None)
            else:
                config[full_key(key)] = value
        mocks = RecordingMocks(servers=list(hetzner_servers), volumes=list(hetzner_volumes))
        with monkeypatch.context() as patch:
            _install_monitor(patch, mocks)
            exports = run_program(mocks, config, stack=stack, secret_keys=tuple(full_key(k) for k in secret_keys))
        missing = [r.name for r in mocks.resources if r.registration is None]
        assert not missing, f"no RegisterResource request recorded for {missing}"
        return StackRun(mocks, exports, config)

    return run


@pytest.fixture
def direct_mocks():
    """Mocks for building components directly in a @pulumi.runtime.test test; returns the recorder."""
    mocks = RecordingMocks()
    pulumi_settings.reset_options()
    pulumi_mocks.set_mocks(mocks, project=PROJECT, stack=STACK, preview=False, monitor=RecordingMonitor(mocks))
    yield mocks
    pulumi_settings.reset_options()
