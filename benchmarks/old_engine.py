"""The old e2e engine, kept only so benchmarks/converge.py can show it beside the real CLI: the Pulumi
SDK's mock runtime, with mocks that PERFORM what the providers would do against the test lab. It
runs every step strictly in order and knows nothing of replacements or deletes; the e2e suite runs
the real CLI (tests/e2e/cli.py). Only Hetzner's and GitHub's APIs are stood in for:

- command:remote:Command   runs `create` (or `update`) over real SSH with paramiko: the pinned host
                           key is checked (RejectPolicy), stdin is sent, a non-zero exit fails the run.
- tls:…PrivateKey          real ed25519 keys (cryptography).
- random:…RandomPassword   a real random password.
- hcloud:…Server           a test server booted from the image with the program's cloud-init
                           user-data applied for real by cloud-init (NoCloud).
- hcloud:…ZoneRrset        recorded; A records go into the lab's DNS, which pebble validates with.
- hcloud:…SshKey/Firewall/Zone, github:*   recorded (a deploy key is also authorized on the forge,
                           read-only, so the server's clone really uses it).

State persists across runs of the same engine, like a stack: a resource whose inputs did not change
keeps its outputs, and a command whose inputs did not change does not run again ("same" in Pulumi's
terms). `force_commands=True` re-runs every command anyway, to prove the scripts idempotent.
"""

from __future__ import annotations

import itertools
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc

from tests.e2e.providers import command as command_plugin
from tests.e2e.testhost import Lab, Server
from tests.support.keys import ed25519_outputs

SERVER_IP = "198.51.100.2"
# Recorded only: the lab network has no IPv6, so no AAAA goes into the test DNS.
SERVER_IPV6 = "2001:db8::2"


@dataclass
class RunLog:
    """What one program run did."""

    executed: list[str] = field(default_factory=list)
    """Names of the commands that really ran, in order."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per executed command."""


class LabEngine(pulumi.runtime.Mocks):
    def __init__(
        self, lab: Lab, *, server_name: str = "vps", server_ip: str = SERVER_IP, image: Path | None = None
    ) -> None:
        self.lab = lab
        self.image = image
        self.server_name = server_name
        self.server_ip = server_ip
        self.server: Server | None = None
        self.state: dict[tuple[str, str], tuple[str, dict[str, Any], dict[str, Any]]] = {}
        self.github: dict[str, dict[str, Any]] = {}
        self.dns: dict[str, dict[str, Any]] = {}
        self.force_commands = False
        self.log = RunLog()
        self._lock = threading.Lock()
        self._ids = itertools.count(1000)

    def new_run(self, *, force_commands: bool = False) -> RunLog:
        self.force_commands = force_commands
        self.log = RunLog()
        return self.log

    def destroy(self) -> list[str]:
        """`pulumi destroy` for the commands: run each one's delete script, newest first, unless it is
        deleted with a server (then nothing runs: the server goes). Returns their outputs."""
        outputs = []
        for (typ, name), (_, inputs, _) in reversed(list(self.state.items())):
            revealed = reveal(inputs)
            if typ == "command:remote:Command" and revealed.get("delete"):
                stdout, _ = run_remote(revealed["connection"], revealed["delete"], None, f"{name} (delete)")
                outputs.append(stdout)
        self.state.clear()
        return outputs

    # --- the mock protocol -------------------------------------------------------------------

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        raise NotImplementedError(f"the program made a provider call the engine does not know: {args.token}")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        key = (args.typ, args.name)
        with self._lock:
            previous = self.state.get(key)
        is_command = args.typ == "command:remote:Command"
        if previous and previous[1] == args.inputs and not (is_command and self.force_commands):
            return previous[0], previous[2]
        # Numeric, as Hetzner's are: the program turns the firewall's id into an int.
        resource_id = previous[0] if previous else str(next(self._ids))
        outputs = self._perform(args, update=previous is not None)
        with self._lock:
            self.state[key] = (resource_id, args.inputs, outputs)
        return resource_id, outputs

    # --- what each type does -----------------------------------------------------------------

    def _perform(self, args: pulumi.runtime.MockResourceArgs, *, update: bool) -> dict[str, Any]:
        inputs = reveal(args.inputs)
        typ = args.typ
        if typ == "command:remote:Command":
            script = inputs["update"] if update and inputs.get("update") else inputs.get("create")
            if not script:  # a teardown-only command: nothing runs until it is deleted
                return {**inputs, "stdout": "", "stderr": ""}
            started = time.monotonic()
            stdout, stderr = run_remote(inputs["connection"], script, inputs.get("stdin"), args.name)
            with self._lock:
                self.log.executed.append(args.name)
                self.log.seconds[args.name] = time.monotonic() - started
            return {**inputs, "stdout": stdout, "stderr": stderr}
        if typ == "tls:index/privateKey:PrivateKey":
            return {**inputs, **ed25519_outputs()}
        if typ == "random:index/randomPassword:RandomPassword":
            alphabet = string.ascii_letters + string.digits + inputs.get("overrideSpecial", "")
            return {**inputs, "result": "".join(secrets.choice(alphabet) for _ in range(int(inputs["length"])))}
        if typ == "hcloud:index/server:Server":
            return {**inputs, **self._boot_server(inputs["userData"])}
        if typ == "hcloud:index/firewall:Firewall":
            return inputs  # the id must be numeric for firewall_ids
        if typ == "hcloud:index/zoneRrset:ZoneRrset":
            fqdn = inputs["zone"] if inputs["name"] == "@" else f"{inputs['name']}.{inputs['zone']}"
            values = [record["value"] for record in inputs["records"]]
            if inputs["type"] == "A":
                self.lab.set_a(fqdn, values[0])
            self.dns[f"{inputs['type']} {fqdn}"] = inputs
            return inputs
        if typ == "github:index/repositoryDeployKey:RepositoryDeployKey":
            assert inputs["readOnly"] is True, "the server's deploy key must be read-only"
            self.lab.forge().add_deploy_key(inputs["key"])
        if typ.startswith("github:"):
            name = inputs.get("secretName") or inputs.get("file") or typ.rsplit(":", 1)[1]
            self.github[name] = inputs
        return inputs

    def _boot_server(self, user_data: str) -> dict[str, Any]:
        # Hetzner would also add the SshKeys to root; we do not, so cloud-init's user-data alone
        # must authorize the provisioning key.
        self.server = self.lab.server(self.server_name, self.server_ip, user_data=user_data, image=self.image)
        return {"ipv4Address": self.server_ip, "ipv6Address": SERVER_IPV6, "status": "running"}


def reveal(value: Any) -> Any:
    """Inputs with secrets unwrapped: the mock monitor hands them over in their wire form."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return reveal(value["value"])
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


def run_remote(connection: dict[str, Any], command: str, stdin: str | None, name: str) -> tuple[str, str]:
    """As the command stand-in runs a remote.Command (tests/e2e/providers/command.py)."""
    del name  # the stand-in's error names the command itself
    return command_plugin.run_remote(connection, command, stdin)
