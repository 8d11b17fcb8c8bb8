"""Stand-in for pulumi-resource-command: `command:remote:Command` over real SSH (paramiko).

Contract read in pulumi-command v1.2.1's source (`provider/pkg/provider/common/inputs.go`,
`remote/commandController.go`, `remote/commandOutputs.go`, `remote/connection.go`):
- `triggers` is replaceOnChanges; any other input change is an update;
- Create runs `create`; Update runs `update`, or `create` when `update` is unset; Delete runs
  `delete` with the inputs recorded in state;
- stdin is sent when non-empty; stdout/stderr are kept without their last newline;
- a non-zero exit fails with `Process exited with status N: running "<command>":\\n<output>`
  (the command and its output, whatever `logging` says);
- the connection defaults to user root, port 22, 10 dial attempts of 15 s each, and the host key,
  when given, must match.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from base64 import b64decode
from typing import Any

import paramiko

from tests.e2e.providers import Provider, ProviderError, Resource, serve

CONNECTION_DEFAULTS = {"port": 22, "user": "root", "dialErrorLimit": 10, "perDialTimeout": 15}


class CommandFailed(ProviderError):
    pass


class Command(Resource):
    token = "command:remote:Command"
    replace_on = frozenset({"triggers"})

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        connection = news.get("connection")
        if isinstance(connection, dict):
            news = {**news, "connection": {**CONNECTION_DEFAULTS, **connection}}
        return {"addPreviousOutputInEnv": True, **news}

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        id_ = f"cmd-{uuid.uuid4().hex[:8]}"
        if preview or not inputs.get("create"):
            return id_, inputs
        stdout, stderr = run_remote(inputs["connection"], inputs["create"], inputs.get("stdin"))
        return id_, {**inputs, "stdout": stdout, "stderr": stderr}

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        outputs = {**news, "stdout": olds.get("stdout", ""), "stderr": olds.get("stderr", "")}
        script = news.get("update") or news.get("create")
        if preview or not script:
            return outputs
        stdout, stderr = run_remote(news["connection"], script, news.get("stdin"))
        return {**outputs, "stdout": stdout, "stderr": stderr}

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        if outputs.get("delete"):
            run_remote(outputs["connection"], outputs["delete"], outputs.get("stdin"))


def _private_key(text: str) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except paramiko.SSHException:
            continue
    raise ProviderError("the connection's privateKey is not an ed25519, ecdsa or rsa key")


def _drain(channel: paramiko.Channel) -> tuple[bytes, bytes, bytes]:
    """Read stdout and stderr as they come, so neither fills its window and stalls the other."""
    out, err, both = bytearray(), bytearray(), bytearray()
    while True:
        if channel.recv_ready():
            chunk = channel.recv(65536)
            out += chunk
            both += chunk
        elif channel.recv_stderr_ready():
            chunk = channel.recv_stderr(65536)
            err += chunk
            both += chunk
        elif channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            return bytes(out), bytes(err), bytes(both)
        else:
            time.sleep(0.02)


def connect(connection: dict[str, Any]) -> paramiko.SSHClient:
    host = connection["host"]
    port = int(connection.get("port") or 22)
    client = paramiko.SSHClient()
    if connection.get("hostKey"):
        key_type, key_base64 = connection["hostKey"].split()[:2]
        client.get_host_keys().add(
            host if port == 22 else f"[{host}]:{port}",
            key_type,
            paramiko.PKey.from_type_string(key_type, b64decode(key_base64)),
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    attempts = int(connection.get("dialErrorLimit") or 10)
    for attempt in range(1, attempts + 1):
        try:
            client.connect(
                host,
                port=port,
                username=connection.get("user") or "root",
                pkey=_private_key(connection["privateKey"]),
                allow_agent=False,
                look_for_keys=False,
                timeout=float(connection.get("perDialTimeout") or 15),
            )
            return client
        except paramiko.BadHostKeyException as error:
            # The real provider retries a mismatch too, then fails: same outcome, sooner here.
            raise ProviderError(f"ssh: handshake failed: knownhosts: key mismatch ({error})") from None
        except paramiko.AuthenticationException as error:
            raise ProviderError(f"ssh: handshake failed: ssh: unable to authenticate ({error})") from None
        except (OSError, paramiko.SSHException) as error:
            if attempt == attempts:
                raise ProviderError(f"dial tcp {host}:{port}: {error}") from None
            time.sleep(min(attempt, 5))
    raise AssertionError("unreachable")


def run_remote(connection: dict[str, Any], command: str, stdin: str | None) -> tuple[str, str]:
    """Run `command` as the real remote.Command does; raise CommandFailed on a non-zero exit."""
    client = connect(connection)
    try:
        channel = client.get_transport().open_session()  # type: ignore[union-attr]
        channel.exec_command(command)
        if stdin:
            channel.sendall(stdin.encode())
        channel.shutdown_write()
        out, err, both = _drain(channel)
        status = channel.recv_exit_status()
    finally:
        client.close()
    if status != 0:
        raise CommandFailed(
            f"Process exited with status {status}: running {json.dumps(command)}:\n{both.decode(errors='replace')}"
        )
    return out.decode(errors="replace").removesuffix("\n"), err.decode(errors="replace").removesuffix("\n")


if __name__ == "__main__":
    serve(Provider("command", [Command]))
