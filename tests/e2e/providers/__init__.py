"""Stand-in provider plugins for the real Pulumi engine.

The Go module proxy that our machines reach refuses every provider module (pulumi-command,
pulumi-tls, pulumi-random, pulumi-github, pulumi-hcloud: "403 This module version is not
available", see tests/tools/README.md), so the real plugins cannot be built here. The real `pulumi`
CLI and engine can: these plugins let it run the program for real. Each speaks the engine's
ResourceProvider gRPC protocol for exactly the resource types the program uses, with the contract
read in the real provider's source (named in each module): which inputs replace, what Update runs,
what Delete runs. Everything the engine decides (diffs into update or replace, create-before-delete,
the old inputs a delete runs with, `deleted_with`, ordering and parallelism, secrets in state) is
the real engine's.

A provider module defines `Resource` subclasses (and `Function`s, its data sources) and calls
`serve(Provider(...))`; `install` writes the plugin executables into a PULUMI_HOME where the engine
finds them at the SDKs' versions.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from typing import Any, ClassVar

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import provider_pb2_grpc

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the engine spells a value not known yet (preview)."""
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_SIG_KEY = "4dabf18193072939515e22adb298388d"

PLUGINS = ("command", "tls", "random", "github", "hcloud")
"""The packages the program uses; each has a module here of the same name."""


class ProviderError(Exception):
    """A failure the engine reports on the resource, with this message."""


class Resource:
    """One resource type of a stand-in provider."""

    token: ClassVar[str]
    replace_on: ClassVar[frozenset[str]] = frozenset()
    """Input keys whose change replaces the resource (ForceNew / replaceOnChanges in the real one)."""
    delete_before_replace: ClassVar[bool] = False
    """A replacement deletes the old resource first (a bridged provider's DeleteBeforeReplace)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        """The inputs with the real provider's defaults applied."""
        return news

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        return {**olds, **news}

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        return None

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        """What `pulumi refresh` finds; by default the resource is as recorded. None: it is gone."""
        return outputs

    def import_inputs(self, outputs: dict[str, Any]) -> dict[str, Any] | None:
        """The inputs of a resource read for an import (the `import` option: nothing recorded yet), as a
        bridged provider extracts them from the state; None: the type cannot be imported."""
        return None


class Function:
    """One function (data source) of a stand-in provider: what an invoke of `token` answers."""

    token: ClassVar[str]

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def invoke(self, args: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class Provider:
    def __init__(
        self, name: str, resources: list[type[Resource]], functions: list[type[Function]] | None = None
    ) -> None:
        self.name = name
        self.version = plugin_version(name)
        self.config: dict[str, Any] = {}
        self.resources = {cls.token: cls(self) for cls in resources}
        self.functions = {cls.token: cls(self) for cls in functions or []}
        self.lock = threading.Lock()

    def configure(self, config: dict[str, Any]) -> None:
        """The provider's configuration from the engine; a provider that checks it overrides this."""
        self.config = config

    def resource(self, urn: str) -> Resource:
        token = urn.split("::")[2].split("$")[-1]
        try:
            return self.resources[token]
        except KeyError:
            raise ProviderError(f"the {self.name} stand-in does not implement {token}") from None

    def function(self, token: str) -> Function:
        try:
            return self.functions[token]
        except KeyError:
            raise ProviderError(f"the {self.name} stand-in does not implement the function {token}") from None


def plugin_version(name: str) -> str:
    """The version the Python SDK asks the engine for (its pulumi-plugin.json)."""
    module = __import__(f"pulumi_{name}")
    return json.loads((Path(module.__file__).parent / "pulumi-plugin.json").read_text())["version"]


def to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return _unwrap(json_format.MessageToDict(struct))


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _unwrap(value.get("value"))
        return {key: _unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    return value


def to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(values))
    return struct


def has_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(has_unknown(item) for item in value)
    return value == UNKNOWN


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: _Servicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except ProviderError as error:
            context.abort(grpc.StatusCode.UNKNOWN, str(error))
        except Exception:
            context.abort(grpc.StatusCode.UNKNOWN, traceback.format_exc())

    return wrapper


class _Servicer(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, provider: Provider) -> None:
        self.p = provider

    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return proto.PluginInfo(version=self.p.version)

    def GetSchema(self, request: Any, context: Any) -> Any:
        return proto.GetSchemaResponse(schema=json.dumps({"name": self.p.name, "version": self.p.version}))

    @_guarded
    def CheckConfig(self, request: Any, context: Any) -> Any:
        return proto.CheckResponse(inputs=request.news)

    @_guarded
    def DiffConfig(self, request: Any, context: Any) -> Any:
        changed = to_dict(request.olds) != to_dict(request.news)
        return proto.DiffResponse(changes=proto.DiffResponse.DIFF_SOME if changed else proto.DiffResponse.DIFF_NONE)

    @_guarded
    def Configure(self, request: Any, context: Any) -> Any:
        config = to_dict(request.args) if request.HasField("args") else {}
        # Older engines send `variables` ("pkg:config:key" -> JSON or plain text).
        for key, raw in request.variables.items():
            config.setdefault(key.rsplit(":", 1)[-1], raw)
        self.p.configure(config)
        # The engine then sends plain values and marks as secret the outputs whose inputs were.
        return proto.ConfigureResponse(acceptSecrets=False, supportsPreview=True)

    @_guarded
    def Check(self, request: Any, context: Any) -> Any:
        news = to_dict(request.news)
        return proto.CheckResponse(inputs=to_struct(self.p.resource(request.urn).check(news)))

    @_guarded
    def Diff(self, request: Any, context: Any) -> Any:
        resource = self.p.resource(request.urn)
        news = to_dict(request.news)
        olds = to_dict(request.old_inputs) if request.HasField("old_inputs") else to_dict(request.olds)
        changed = sorted(key for key in set(news) | set(olds) if news.get(key) != olds.get(key))
        replaces = [key for key in changed if key in resource.replace_on]
        return proto.DiffResponse(
            changes=proto.DiffResponse.DIFF_SOME if changed else proto.DiffResponse.DIFF_NONE,
            replaces=replaces,
            diffs=changed,
            deleteBeforeReplace=bool(replaces) and resource.delete_before_replace,
        )

    @_guarded
    def Create(self, request: Any, context: Any) -> Any:
        inputs = to_dict(request.properties)
        id_, outputs = self.p.resource(request.urn).create(inputs, request.preview)
        return proto.CreateResponse(id=id_, properties=to_struct(outputs))

    @_guarded
    def Update(self, request: Any, context: Any) -> Any:
        outputs = self.p.resource(request.urn).update(
            request.id, to_dict(request.olds), to_dict(request.news), request.preview
        )
        return proto.UpdateResponse(properties=to_struct(outputs))

    @_guarded
    def Read(self, request: Any, context: Any) -> Any:
        recorded = to_dict(request.properties)
        outputs = self.p.resource(request.urn).read(request.id, recorded)
        if outputs is None:  # an empty id: the engine drops the resource from the state
            return proto.ReadResponse()
        inputs = request.inputs if request.HasField("inputs") else None
        if not recorded and not (inputs is not None and to_dict(inputs)):
            # An import: nothing of it is recorded, the inputs come from what the provider found.
            imported = self.p.resource(request.urn).import_inputs(outputs)
            if imported is None:
                raise ProviderError(f"the {self.p.name} stand-in cannot import {request.urn.split('::')[2]}")
            inputs = to_struct(imported)
        return proto.ReadResponse(id=request.id, properties=to_struct(outputs), inputs=inputs)

    @_guarded
    def Invoke(self, request: Any, context: Any) -> Any:
        result = self.p.function(request.tok).invoke(to_dict(request.args))
        return proto.InvokeResponse(**{"return": to_struct(result)})

    @_guarded
    def Delete(self, request: Any, context: Any) -> Any:
        self.p.resource(request.urn).delete(request.id, to_dict(request.properties))
        return empty_pb2.Empty()

    def Cancel(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()


def serve(provider: Provider) -> None:
    """Serve until the engine kills the plugin; the port goes to stdout, as plugins announce it."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(_Servicer(provider), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    server.wait_for_termination()


def install(pulumi_home: Path, python: str = sys.executable) -> dict[str, str]:
    """Write each stand-in plugin where the engine looks for `resource-<name>` at the SDK's version
    ($PULUMI_HOME/plugins/resource-<name>-v<version>/pulumi-resource-<name>). Returns name: version."""
    root = Path(__file__).resolve().parents[3]
    installed = {}
    for name in PLUGINS:
        version = plugin_version(name)
        directory = pulumi_home / "plugins" / f"resource-{name}-v{version}"
        directory.mkdir(parents=True, exist_ok=True)
        executable = directory / f"pulumi-resource-{name}"
        executable.write_text(
            "#!/bin/sh\n"
            f"# django-vps stand-in for pulumi-resource-{name} v{version} (tests/e2e/providers/{name}.py)\n"
            f"PYTHONPATH='{root}' exec '{python}' -m tests.e2e.providers.{name} \"$@\"\n"
        )
        executable.chmod(0o755)
        installed[name] = version
    return installed
