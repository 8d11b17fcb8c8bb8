"""tests/lab: rehearse a production deploy on this machine, with the real Pulumi CLI.

  tests/lab tools                       build (or find) the CLI; print each binary and version
  tests/lab up | down                   start or remove the lab (forge, pebble, DNS, proxy, stand-ins)
  tests/lab deploy DIR [--existing-host] [-c KEY=VALUE]...
                                        push DIR to the lab's forge, then `pulumi up` of this program
  tests/lab pulumi ARGS...              the CLI on that stack (preview, up, refresh, destroy, stack ...)
  tests/lab curl PATH                   GET https://<domain>PATH with the lab's CA

Needs root (namespaces) on a Debian machine; the lab only talks to itself and the package mirrors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

from tests.e2e import labd, web
from tests.e2e.cli import CliStack, pulumi_version, tools_bin
from tests.e2e.providers import PLUGINS, plugin_version

STACK_DIR = labd.LAB_DIR / "stack"
EXISTING_HOST_IP = "198.51.100.10"
DEFAULT_DOMAIN = "blog.test"


def _stack() -> CliStack:
    return CliStack(STACK_DIR)


def tools() -> None:
    print(f"pulumi                  {tools_bin() / 'pulumi'}  {pulumi_version()}  (built from its Go module)")
    for name in PLUGINS:
        print(f"pulumi-resource-{name:<8} v{plugin_version(name)}  stand-in: tests/e2e/providers/{name}.py")
    print("language host           the SDK's own runtime through `pulumi up --client` (see tests/tools/README.md)")


def up() -> None:
    started = time.monotonic()
    labd.start()
    print(f"the lab is up ({time.monotonic() - started:.0f} s); `tests/lab deploy DIR` next, `tests/lab down` to end")


def down() -> None:
    labd.stop()
    if STACK_DIR.exists():
        shutil.rmtree(STACK_DIR)
    print("the lab is down and its stack removed")


def deploy(directory: Path, existing_host: bool, overrides: list[str]) -> int:
    if not (directory / "manage.py").exists() and not any(directory.glob("*/manage.py")):
        sys.exit(f"tests/lab deploy: {directory} holds no manage.py: give the Django project's work tree")
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-") or "site"
    info = labd.call("info")
    labd.call("repository", name)
    config: dict[str, str | None] = {
        "domain": DEFAULT_DOMAIN,
        "repository": f"{info['github_owner']}/{name}",
        "cloneUrl": labd.call("push", name, str(directory.resolve())),
        "cloneHostKeys": json.dumps([f"{info['forge_ip']} {info['forge_host_key']}"]),
        "letsencryptEmail": f"admin@{DEFAULT_DOMAIN}",
        "acmeServer": info["acme_directory"],
        "github:token": info["github_token"],
        "github:baseUrl": info["github_url"],
    }
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            sys.exit(f"tests/lab deploy: -c {override!r}: give KEY=VALUE")
        config[key] = value
    domain = str(config["domain"])
    if existing_host:
        host = labd.call("existing_host", "existing", EXISTING_HOST_IP)
        config.update(
            existingHost=host["ip"],
            existingHostUser=host["user"],
            existingHostKey=host["host_key"],
            existingHostPrivateKey=host["private_key"],
            manageDns="false",  # the user's own DNS: the lab's A record stands for it
        )
        labd.call("set_a", domain, host["ip"])
    else:
        config.update({"hcloud:endpoint": info["hcloud_endpoint"], "hcloud:token": info["hcloud_token"]})
        labd.call("zone", domain.split(".", 1)[-1] if domain.count(".") > 1 else domain)
    stack = CliStack(STACK_DIR)
    stack.configure(config)
    started = time.monotonic()
    try:
        result = stack.up()
    except Exception as error:  # the CLI's own output was printed above
        print(f"\npulumi up failed after {time.monotonic() - started:.0f} s: {str(error).splitlines()[0]}")
        return 1
    print("\nstack outputs:")
    for key, value in sorted(result.outputs.items()):
        print(f"  {key}: {json.dumps(value)}")
    print(f"\npulumi up: {time.monotonic() - started:.1f} s wall; changes: {result.changes}")
    return 0


def pulumi(args: list[str]) -> int:
    stack = _stack()
    operations = {"preview": stack.preview, "up": stack.up, "refresh": stack.refresh, "destroy": stack.destroy}
    if args and args[0] in operations:
        # These run the program (or need the stand-ins' env): through the Automation API.
        result = operations[args[0]]()
        print(f"changes: {result.changes}")
        return 0
    completed = stack.cli(*args, check=False)
    sys.stdout.write(completed.stdout)
    sys.stderr.write(completed.stderr)
    return completed.returncode


def curl(path: str) -> int:
    stack = _stack()
    outputs = {key: value.value for key, value in stack.stack.outputs().items()}
    if not outputs:
        sys.exit("tests/lab curl: the stack has no outputs: run `tests/lab deploy DIR` first")
    cafile = labd.LAB_DIR / "acme-root.pem"
    cafile.write_text(labd.call("info")["acme_ca_pem"])
    response = web.get(outputs["ipv4"], outputs["domain"], path, cafile=str(cafile))
    print(f"HTTP {response.status}")
    for key, value in response.headers.items():
        print(f"{key}: {value}")
    print()
    print("\n".join(response.body.splitlines()[:20]))
    return 0 if response.status < 400 else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="tests/lab", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tools")
    sub.add_parser("up")
    sub.add_parser("down")
    d = sub.add_parser("deploy")
    d.add_argument("directory", type=Path)
    d.add_argument("--existing-host", action="store_true")
    d.add_argument("-c", dest="config", action="append", default=[], metavar="KEY=VALUE")
    p = sub.add_parser("pulumi")
    p.add_argument("args", nargs=argparse.REMAINDER)
    c = sub.add_parser("curl")
    c.add_argument("path", nargs="?", default="/")
    a = parser.parse_args()
    try:
        if a.command in ("deploy", "curl"):
            labd.join()
        elif a.command == "pulumi":
            # The stack's files are readable with no lab up (stack export, config); preview, up and
            # refresh need the lab's network, where the stand-ins and the servers are.
            with contextlib.suppress(labd.LabDown):
                labd.join()
        if a.command == "tools":
            tools()
        elif a.command == "up":
            up()
        elif a.command == "down":
            down()
        elif a.command == "deploy":
            return deploy(a.directory, a.existing_host, a.config)
        elif a.command == "pulumi":
            return pulumi(a.args)
        else:
            return curl(a.path)
    except labd.LabDown as error:
        sys.exit(f"tests/lab {a.command}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
