"""Stand-in for pulumi-resource-hcloud: SshKey, Firewall, Server, Volume, VolumeAttachment, Zone and
ZoneRrset, and the functions getServers, getServerType, getVolumes and getVolume, over the Hetzner
Cloud API (`hcloud:endpoint`, the lab's stand-in), as terraform-provider-hcloud does through hcloud-go.

Contract read in terraform-provider-hcloud (bridged by pulumi-hcloud 1.43.3):
- `internal/sshkey/resource.go`: `public_key` is ForceNew; name and labels are updated with
  `PUT /ssh_keys/{id}`; the state takes name, fingerprint, public_key and labels from the API.
- `internal/firewall/resource.go`: nothing is ForceNew; name and labels by `PUT /firewalls/{id}`,
  rules by `POST .../actions/set_rules`, apply_to by `apply_to_resources`/`remove_from_resources`;
  a delete retries while the API answers `resource_in_use`.
- `internal/server/resource.go`: `image`, `location`, `datacenter`, `user_data` and `ssh_keys` are
  ForceNew; create looks the server type up (`GET /server_types?name=`), then the image for its
  architecture (`GET /images?architecture=&include_deprecated=true&name=`), each SSH key
  (`GET /ssh_keys/{id}`), then `POST /servers`, waits for its actions, turns backups and
  protection on; an update renames/relabels (`PUT`), changes the type powered off (`poweroff`, then
  `change_type` with `upgrade_disk = !keep_disk`, after which the API starts the server itself),
  toggles backups, moves firewalls and protection; `user_data` is kept in state as base64(SHA-1).
- `internal/server/data_source.go`: getServers (`hcloud_servers`) lists every page of
  `GET /servers?label_selector=` (hcloud-go's AllWithOpts) and answers each with
  getServerAttributes (location from the datacenter, image by name, else its id); its id is the
  SHA-1 of the servers' ids (`datasourceutil.ListID`).
- `internal/servertype/data_source.go`: getServerType looks a type up by id or name
  (`GET /server_types?name=`) and fails when there is none.
- `internal/volume/resource.go`: `location` is ForceNew; create posts name, size, location, labels,
  automount and format (`POST /volumes`) and waits for the action and next actions; an update
  renames (`PUT`), moves `server_id` by detach/attach, resizes (`actions/resize`) and relabels; a
  delete detaches an attached volume first, then `DELETE /volumes/{id}`; the state takes name,
  size, location, server_id (when attached), labels and linux_device from the API. Delete
  protection (`delete_protection`, in pulumi-hcloud 1.43.3's schema) is the `change_protection`
  action, after create and on change; Hetzner refuses to delete a protected volume.
- `internal/volume/resource_attachment.go`: `volume_id` and `server_id` are ForceNew; create is the
  `attach` action (with `automount` when set), the id is the volume's; read drops it when the volume
  is gone or attached nowhere; delete detaches when attached.
- `internal/volume/data_source.go`: getVolume by id (`GET /volumes/{id}`, "no volume found with id
  N" when there is none) and getVolumes (`hcloud_volumes`, every page of `GET /volumes?label_selector=`).
- `internal/zone/resource.go`: `name` and `mode` RequiresReplace, ttl defaults to 3600; the update
  changes the TTL and protection by actions and always ends with `PUT /zones/{id}`.
- `internal/zonerrset/resource.go`: `zone`, `name` and `type` RequiresReplace; the id is
  `name/type`; records change by `set_records`, the TTL by `change_ttl`, and the update ends with
  `PUT .../rrsets/{name}/{type}`.

Actions the API answers `running` are polled at `GET /actions/{id}` as hcloud-go's waiter does.
Only loopback endpoints are accepted: no test ever reaches the real Hetzner.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from tests.e2e.providers import Function, Provider, ProviderError, Resource, serve

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
POLL_SECONDS = 0.5
# A server boots inside the request: give it time.
TIMEOUT_SECONDS = 180


class ApiError(ProviderError):
    def __init__(self, status: int, code: str, message: str) -> None:
        # hcloud-go's Error() reads "<message> (<code>)"; the provider shows it as is.
        super().__init__(f"{message} ({code})")
        self.status = status
        self.code = code


def _ints(value: Any) -> Any:
    """Integral numbers as JSON integers: the engine's protobuf Structs carry every number as a double,
    hcloud-go sends Go ints (and the API rejects 300.0 for a TTL)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ints(item) for item in value]
    return value


class Client:
    """The few hcloud-go calls the resources make, over the stand-in's HTTP."""

    def __init__(self, config: dict[str, Any]) -> None:
        token = str(config.get("token") or "")
        if len(token) != 64:
            # As terraform-provider-hcloud's Configure says before any request.
            raise ProviderError("entered token is invalid (must be exactly 64 characters long)")
        endpoint = str(config.get("endpoint") or DEFAULT_ENDPOINT).rstrip("/")
        if urlsplit(endpoint).hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ProviderError(f"the hcloud stand-in only talks to a loopback endpoint, not {endpoint}")
        self.endpoint = endpoint
        self.token = token
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.endpoint + path,
            data=None if body is None else json.dumps(_ints(body)).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "User-Agent": "hcloud-go/2 (django-vps stand-in)",
            },
        )
        try:
            with self._opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                detail = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(error.code, "server_error", raw.decode(errors="replace")[:500]) from None
            raise ApiError(error.code, detail.get("code", ""), detail.get("message", "")) from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def find(self, path: str) -> Any:
        """GET that answers None for `not_found`, as hcloud-go's Get* do."""
        try:
            return self.get(path)
        except ApiError as error:
            if error.code == "not_found":
                return None
            raise

    def wait(self, *actions: dict[str, Any] | None) -> None:
        """hcloud-go's WaitFor: finished actions are not polled; running ones until they end."""
        for action in actions:
            while action is not None:
                if action["status"] == "error":
                    error = action.get("error") or {}
                    raise ProviderError(
                        f"action {action['command']} failed: {error.get('message')} ({error.get('code')})"
                    )
                if action["status"] == "success":
                    break
                time.sleep(POLL_SECONDS)
                action = self.get(f"/actions/{action['id']}")["action"]


def client_of(provider: Provider) -> Client:
    """The provider's client, made again when its configuration changed."""
    with provider.lock:
        cached = getattr(provider, "_client", None)
        if cached is None or cached[0] != provider.config:
            cached = (dict(provider.config), Client(provider.config))
            provider._client = cached  # type: ignore[attr-defined]
        return cached[1]


class HcloudResource(Resource):
    def client(self) -> Client:
        return client_of(self.provider)


def _labels_changed(olds: dict[str, Any], news: dict[str, Any]) -> bool:
    return (olds.get("labels") or {}) != (news.get("labels") or {})


# --- SSH keys -----------------------------------------------------------------------------------


class SshKey(HcloudResource):
    token = "hcloud:index/sshKey:SshKey"
    replace_on = frozenset({"publicKey"})

    @staticmethod
    def _outputs(inputs: dict[str, Any], key: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, "name": key["name"], "publicKey": key["public_key"], "fingerprint": key["fingerprint"],
                "labels": key["labels"]}  # fmt: skip

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        body = {"name": inputs["name"], "public_key": inputs["publicKey"]}
        if inputs.get("labels"):
            body["labels"] = inputs["labels"]
        key = self.client().call("POST", "/ssh_keys", body)["ssh_key"]
        return str(key["id"]), self._outputs(inputs, self.client().get(f"/ssh_keys/{key['id']}")["ssh_key"])

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        if preview:
            return {**olds, **news}
        client = self.client()
        if olds.get("name") != news.get("name"):
            client.call("PUT", f"/ssh_keys/{id_}", {"name": news["name"]})
        if _labels_changed(olds, news):
            client.call("PUT", f"/ssh_keys/{id_}", {"labels": news.get("labels") or {}})
        return self._outputs(news, client.get(f"/ssh_keys/{id_}")["ssh_key"])

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        try:
            self.client().call("DELETE", f"/ssh_keys/{id_}")
        except ApiError as error:
            if error.code != "not_found":  # already gone
                raise

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        found = self.client().find(f"/ssh_keys/{id_}")
        if found is None:
            return None  # deleted outside Pulumi: refresh drops it, as the provider does
        return self._outputs(outputs, found["ssh_key"])


# --- firewalls ----------------------------------------------------------------------------------


def _rule_to_api(rule: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"direction": rule["direction"], "protocol": rule["protocol"]}
    for key, api_key in (("sourceIps", "source_ips"), ("destinationIps", "destination_ips")):
        if rule.get(key):
            body[api_key] = rule[key]
    for key in ("port", "description"):
        if rule.get(key):
            body[key] = rule[key]
    return body


def _rule_from_api(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "direction": rule["direction"],
        "protocol": rule["protocol"],
        "sourceIps": rule.get("source_ips") or [],
        "destinationIps": rule.get("destination_ips") or [],
    }
    for key in ("port", "description"):
        if rule.get(key) is not None:
            out[key] = rule[key]
    return out


def _apply_to_api(target: dict[str, Any]) -> dict[str, Any]:
    if target.get("server") is not None:
        return {"type": "server", "server": {"id": int(target["server"])}}
    return {"type": "label_selector", "label_selector": {"selector": target["labelSelector"]}}


class Firewall(HcloudResource):
    token = "hcloud:index/firewall:Firewall"

    @staticmethod
    def _outputs(inputs: dict[str, Any], fw: dict[str, Any]) -> dict[str, Any]:
        # applyTos: what this resource applied and the API still shows (a server's firewallIds are
        # the server's, not a change of the firewall).
        applied = {json.dumps({k: v for k, v in a.items() if k != "applied_to_resources"}, sort_keys=True)
                   for a in fw["applied_to"]}  # fmt: skip
        wanted = [a for a in inputs.get("applyTos") or [] if json.dumps(_apply_to_api(a), sort_keys=True) in applied]
        rules = [_rule_from_api(r) for r in fw["rules"]]
        outputs = {**inputs, "name": fw["name"], "labels": fw["labels"], "rules": rules}
        if "applyTos" in inputs:
            outputs["applyTos"] = wanted
        return outputs

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        client = self.client()
        body: dict[str, Any] = {"name": inputs["name"], "rules": [_rule_to_api(r) for r in inputs.get("rules") or []]}
        if inputs.get("labels"):
            body["labels"] = inputs["labels"]
        if inputs.get("applyTos"):
            body["apply_to"] = [_apply_to_api(a) for a in inputs["applyTos"]]
        answer = client.call("POST", "/firewalls", body)
        client.wait(*answer.get("actions") or [])
        fw_id = answer["firewall"]["id"]
        return str(fw_id), self._outputs(inputs, client.get(f"/firewalls/{fw_id}")["firewall"])

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        if preview:
            return {**olds, **news}
        client = self.client()
        if olds.get("name") != news.get("name"):
            client.call("PUT", f"/firewalls/{id_}", {"name": news["name"]})
        # olds are the recorded outputs: compare in the API's terms (no empty lists).
        if [_rule_to_api(r) for r in olds.get("rules") or []] != [_rule_to_api(r) for r in news.get("rules") or []]:
            answer = client.call("POST", f"/firewalls/{id_}/actions/set_rules",
                                 {"rules": [_rule_to_api(r) for r in news.get("rules") or []]})  # fmt: skip
            client.wait(*answer["actions"])
        if _labels_changed(olds, news):
            client.call("PUT", f"/firewalls/{id_}", {"labels": news.get("labels") or {}})
        old_targets = [_apply_to_api(a) for a in olds.get("applyTos") or []]
        new_targets = [_apply_to_api(a) for a in news.get("applyTos") or []]
        removed = [t for t in old_targets if t not in new_targets]
        added = [t for t in new_targets if t not in old_targets]
        if removed:
            client.wait(*client.call("POST", f"/firewalls/{id_}/actions/remove_from_resources",
                                     {"remove_from": removed})["actions"])  # fmt: skip
        if added:
            client.wait(*client.call("POST", f"/firewalls/{id_}/actions/apply_to_resources",
                                     {"apply_to": added})["actions"])  # fmt: skip
        return self._outputs(news, client.get(f"/firewalls/{id_}")["firewall"])

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        client = self.client()
        for attempt in range(20):
            try:
                client.call("DELETE", f"/firewalls/{id_}")
                return
            except ApiError as error:
                if error.code == "not_found":
                    return
                if error.code not in ("resource_in_use", "conflict") or attempt == 19:
                    raise
                time.sleep(1)

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        found = self.client().find(f"/firewalls/{id_}")
        if found is None:
            return None  # deleted outside Pulumi: refresh drops it, as the provider does
        return self._outputs(outputs, found["firewall"])


# --- servers ------------------------------------------------------------------------------------

# Inputs the real provider handles that the program does not use: loud, never silently ignored.
SERVER_UNSUPPORTED = ("networks", "placementGroupId", "iso", "rescue")
SERVER_DEFAULTS = {
    "allowDeprecatedImages": False,
    "backups": False,
    "deleteProtection": False,
    "ignoreRemoteFirewallIds": False,
    "keepDisk": False,
    "rebuildProtection": False,
    "shutdownBeforeDeletion": False,
}


def user_data_hash(user_data: str) -> str:
    """What terraform-provider-hcloud keeps in state for user_data (its StateFunc)."""
    return base64.b64encode(hashlib.sha1(user_data.encode()).digest()).decode()


def _nets(values: dict[str, Any]) -> list[tuple[bool, bool]]:
    """publicNets as what was asked (the state adds the primary IPs' ids)."""
    return [
        (bool(n.get("ipv4Enabled", True)), bool(n.get("ipv6Enabled", True))) for n in values.get("publicNets") or []
    ]


class Server(HcloudResource):
    token = "hcloud:index/server:Server"
    replace_on = frozenset({"image", "location", "datacenter", "userData", "sshKeys"})

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        checked = {**SERVER_DEFAULTS, **news}
        if "publicNets" in news:
            checked["publicNets"] = [{"ipv4Enabled": True, "ipv6Enabled": True, **net} for net in news["publicNets"]]
        return checked

    @staticmethod
    def _outputs(inputs: dict[str, Any], server: dict[str, Any], hashed: bool = False) -> dict[str, Any]:
        """The state as setServerSchema writes it; `hashed`: inputs["userData"] is the state's hash."""
        net = server["public_net"]
        ipv4 = (net.get("ipv4") or {}).get("ip") or ""
        ipv6_network = (net.get("ipv6") or {}).get("ip") or ""
        outputs = {
            **inputs,
            "name": server["name"],
            "serverType": server["server_type"]["name"],
            "image": server["image"]["name"] or str(server["image"]["id"]),
            "location": server["location"]["name"],
            "datacenter": server["datacenter"]["name"],
            "status": server["status"],
            "ipv4Address": ipv4,
            "ipv6Network": ipv6_network,
            # Hetzner gives the /64; the provider names its first address.
            "ipv6Address": ipv6_network.split("/")[0] + "1" if ipv6_network else "",
            "backupWindow": server["backup_window"] or "",
            "backups": bool(server["backup_window"]),
            "labels": server["labels"],
            "firewallIds": [f["id"] for f in net["firewalls"]],
            "deleteProtection": server["protection"]["delete"],
            "rebuildProtection": server["protection"]["rebuild"],
            "primaryDiskSize": server["primary_disk_size"],
        }
        if inputs.get("userData") is not None and not hashed:
            outputs["userData"] = user_data_hash(inputs["userData"])
        if "publicNets" in inputs:
            outputs["publicNets"] = [
                {"ipv4Enabled": net.get("ipv4") is not None, "ipv4": (net.get("ipv4") or {}).get("id", 0),
                 "ipv6Enabled": net.get("ipv6") is not None, "ipv6": (net.get("ipv6") or {}).get("id", 0)}
            ]  # fmt: skip
        return outputs

    def _ssh_key_ids(self, refs: list[str]) -> list[int]:
        ids = []
        for ref in refs:
            found = self.client().find(
                f"/ssh_keys/{ref}" if str(ref).isdigit() else f"/ssh_keys?{urlencode({'name': ref})}"
            )
            key = (found or {}).get("ssh_key") or ((found or {}).get("ssh_keys") or [None])[0]
            if key is None:
                raise ProviderError(f"SSH key not found: {ref}")
            ids.append(key["id"])
        return ids

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        unsupported = [key for key in SERVER_UNSUPPORTED if inputs.get(key)]
        if unsupported:
            raise ProviderError(f"the hcloud stand-in does not implement Server {', '.join(unsupported)}")
        client = self.client()
        type_name = inputs["serverType"]
        types = client.get(f"/server_types?{urlencode({'name': type_name})}")["server_types"]
        if not types:
            raise ProviderError(f"server type {type_name} not found")
        arch = types[0]["architecture"]
        image_ref = inputs["image"]
        if str(image_ref).isdigit():
            image = (client.find(f"/images/{image_ref}") or {}).get("image")
        else:
            query = urlencode({"architecture": arch, "include_deprecated": "true", "name": image_ref})
            image = (client.get(f"/images?{query}")["images"] or [None])[0]
        if image is None:
            raise ProviderError(f"image {image_ref} for architecture {arch} not found")
        if image.get("deprecated") and not inputs.get("allowDeprecatedImages"):
            raise ProviderError(f"image {image['name']} is deprecated; set allowDeprecatedImages to use it")
        body: dict[str, Any] = {"name": inputs["name"], "server_type": type_name, "image": image["id"]}
        if inputs.get("userData") is not None:
            body["user_data"] = inputs["userData"]
        if inputs.get("sshKeys"):
            body["ssh_keys"] = self._ssh_key_ids(inputs["sshKeys"])
        for key in ("location", "datacenter"):
            if inputs.get(key):
                body[key] = inputs[key]
        if inputs.get("labels"):
            body["labels"] = inputs["labels"]
        if inputs.get("firewallIds"):
            body["firewalls"] = [{"firewall": int(f)} for f in inputs["firewallIds"]]
        if inputs.get("publicNets"):
            net = inputs["publicNets"][0]
            body["public_net"] = {
                "enable_ipv4": net.get("ipv4Enabled", True),
                "enable_ipv6": net.get("ipv6Enabled", True),
            }
            if not (body["public_net"]["enable_ipv4"] or body["public_net"]["enable_ipv6"]):
                body["start_after_create"] = False
        answer = client.call("POST", "/servers", body)
        server_id = answer["server"]["id"]
        client.wait(answer["action"], *answer.get("next_actions") or [])
        if inputs.get("backups"):
            client.wait(client.call("POST", f"/servers/{server_id}/actions/enable_backup", {})["action"])
        if inputs.get("deleteProtection") or inputs.get("rebuildProtection"):
            self._protect(server_id, inputs)
        return str(server_id), self._outputs(inputs, client.get(f"/servers/{server_id}")["server"])

    def _protect(self, server_id: int | str, inputs: dict[str, Any]) -> None:
        body = {"delete": bool(inputs.get("deleteProtection")), "rebuild": bool(inputs.get("rebuildProtection"))}
        self.client().wait(
            self.client().call("POST", f"/servers/{server_id}/actions/change_protection", body)["action"]
        )

    def _action(self, server_id: str, command: str, body: dict[str, Any] | None = None) -> None:
        client = self.client()
        client.wait(client.call("POST", f"/servers/{server_id}/actions/{command}", body or {})["action"])

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        if preview:
            return {**olds, **news}
        client = self.client()
        changed = [key for key in SERVER_UNSUPPORTED if olds.get(key) != news.get(key)]
        if _nets(olds) != _nets(news):
            changed.append("publicNets")
        if changed:
            raise ProviderError(f"the hcloud stand-in does not implement changing Server {', '.join(changed)}")
        server = client.get(f"/servers/{id_}")["server"]
        if olds.get("name") != news.get("name"):
            client.call("PUT", f"/servers/{id_}", {"name": news["name"]})
        if _labels_changed(olds, news):
            client.call("PUT", f"/servers/{id_}", {"labels": news.get("labels") or {}})
        if olds.get("serverType") != news.get("serverType"):
            if server["status"] == "running":
                self._action(id_, "poweroff")
            # The API starts the server again after the change: the provider does not power it on.
            change = {"server_type": news["serverType"], "upgrade_disk": not news.get("keepDisk")}
            self._action(id_, "change_type", change)
        if bool(olds.get("backups")) != bool(news.get("backups")):
            self._action(id_, "enable_backup" if news.get("backups") else "disable_backup")
        old_fws = {int(f) for f in olds.get("firewallIds") or []}
        new_fws = {int(f) for f in news.get("firewallIds") or []}
        if old_fws != new_fws and not news.get("ignoreRemoteFirewallIds"):
            attached = {f["id"] for f in server["public_net"]["firewalls"]}
            target = [{"type": "server", "server": {"id": int(id_)}}]
            for fw in sorted(attached - new_fws):
                client.wait(*client.call("POST", f"/firewalls/{fw}/actions/remove_from_resources",
                                         {"remove_from": target})["actions"])  # fmt: skip
            for fw in sorted(new_fws - attached):
                client.wait(*client.call("POST", f"/firewalls/{fw}/actions/apply_to_resources",
                                         {"apply_to": target})["actions"])  # fmt: skip
        protection = ("deleteProtection", "rebuildProtection")
        if any(bool(olds.get(k)) != bool(news.get(k)) for k in protection):
            self._protect(id_, news)
        return self._outputs(news, client.get(f"/servers/{id_}")["server"])

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        client = self.client()
        try:
            if outputs.get("shutdownBeforeDeletion"):
                self._action(id_, "shutdown")
                deadline = time.monotonic() + 30
                while client.get(f"/servers/{id_}")["server"]["status"] != "off" and time.monotonic() < deadline:
                    time.sleep(POLL_SECONDS)
            client.wait(client.call("DELETE", f"/servers/{id_}")["action"])
        except ApiError as error:
            if error.code != "not_found":
                raise

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        found = self.client().find(f"/servers/{id_}")
        if found is None:
            return None  # deleted outside Pulumi: refresh drops it, as the provider does
        # The API never shows user_data: the recorded hash stays.
        return self._outputs(outputs, found["server"], hashed=True)


# --- volumes ------------------------------------------------------------------------------------


def _volume_outputs(inputs: dict[str, Any], volume: dict[str, Any]) -> dict[str, Any]:
    """The state as setVolumeSchema writes it (server_id only when attached)."""
    outputs = {**inputs, "name": volume["name"], "size": volume["size"], "location": volume["location"]["name"],
               "labels": volume["labels"], "linuxDevice": volume["linux_device"],
               "deleteProtection": volume["protection"]["delete"]}  # fmt: skip
    outputs.pop("serverId", None)
    if volume["server"] is not None:
        outputs["serverId"] = volume["server"]
    return outputs


class Volume(HcloudResource):
    token = "hcloud:index/volume:Volume"
    replace_on = frozenset({"location"})

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        return {"deleteProtection": False, **news}

    def _protect(self, id_: str | int, protect: bool) -> None:
        client = self.client()
        client.wait(client.call("POST", f"/volumes/{id_}/actions/change_protection", {"delete": protect})["action"])

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        if inputs.get("serverId"):
            raise ProviderError("the hcloud stand-in does not implement Volume serverId (use VolumeAttachment)")
        client = self.client()
        body: dict[str, Any] = {"name": inputs["name"], "size": inputs["size"]}
        for key, api_key in (("location", "location"), ("labels", "labels"), ("automount", "automount"),
                             ("format", "format")):  # fmt: skip
            if inputs.get(key) not in (None, "", {}):
                body[api_key] = inputs[key]
        answer = client.call("POST", "/volumes", body)
        volume_id = answer["volume"]["id"]
        client.wait(answer["action"], *answer.get("next_actions") or [])
        if inputs.get("deleteProtection"):
            self._protect(volume_id, True)
        return str(volume_id), _volume_outputs(inputs, client.get(f"/volumes/{volume_id}")["volume"])

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        if preview:
            return {**olds, **news}
        client = self.client()
        if olds.get("name") != news.get("name"):
            client.call("PUT", f"/volumes/{id_}", {"name": news["name"]})
        if olds.get("size") != news.get("size"):
            client.wait(client.call("POST", f"/volumes/{id_}/actions/resize", {"size": news["size"]})["action"])
        if _labels_changed(olds, news):
            client.call("PUT", f"/volumes/{id_}", {"labels": news.get("labels") or {}})
        if bool(olds.get("deleteProtection")) != bool(news.get("deleteProtection")):
            self._protect(id_, bool(news.get("deleteProtection")))
        return _volume_outputs(news, client.get(f"/volumes/{id_}")["volume"])

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        client = self.client()
        found = client.find(f"/volumes/{id_}")
        if found is None:
            return
        if found["volume"]["server"] is not None:
            client.wait(client.call("POST", f"/volumes/{id_}/actions/detach", {})["action"])
        try:
            client.call("DELETE", f"/volumes/{id_}")
        except ApiError as error:
            if error.code != "not_found":
                raise

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        found = self.client().find(f"/volumes/{id_}")
        if found is None:
            return None  # deleted outside Pulumi: refresh drops it, as the provider does
        return _volume_outputs(outputs, found["volume"])

    def import_inputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        # Not server_id: Optional+Computed, so a program that does not set it changes nothing.
        return {key: outputs[key] for key in ("name", "size", "location", "labels", "deleteProtection")
                if key in outputs}  # fmt: skip


class VolumeAttachment(HcloudResource):
    token = "hcloud:index/volumeAttachment:VolumeAttachment"
    replace_on = frozenset({"volumeId", "serverId"})

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        client = self.client()
        volume_id = int(inputs["volumeId"])
        body: dict[str, Any] = {"server": int(inputs["serverId"])}
        if inputs.get("automount") is not None:
            body["automount"] = bool(inputs["automount"])
        client.wait(client.call("POST", f"/volumes/{volume_id}/actions/attach", body)["action"])
        return str(volume_id), {**inputs, "automount": bool(inputs.get("automount"))}

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        client = self.client()
        found = client.find(f"/volumes/{id_}")
        if found is not None and found["volume"]["server"] is not None:
            client.wait(client.call("POST", f"/volumes/{id_}/actions/detach", {})["action"])

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        found = self.client().find(f"/volumes/{id_}")
        if found is None or found["volume"]["server"] is None:
            return None
        return {**outputs, "volumeId": found["volume"]["id"], "serverId": found["volume"]["server"]}


def _volume_attributes(volume: dict[str, Any]) -> dict[str, Any]:
    """getVolumeAttributes, in the SDK's property names."""
    attributes = {"id": volume["id"], "name": volume["name"], "size": volume["size"], "labels": volume["labels"],
                  "location": volume["location"]["name"], "linuxDevice": volume["linux_device"],
                  "deleteProtection": volume["protection"]["delete"]}  # fmt: skip
    if volume["server"] is not None:
        attributes["serverId"] = volume["server"]
    return attributes


class GetVolumes(Function):
    token = "hcloud:index/getVolumes:getVolumes"

    def invoke(self, args: dict[str, Any]) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if args.get("withSelector"):
            query["label_selector"] = args["withSelector"]
        volumes = _all(client_of(self.provider), "/volumes", "volumes", query)
        return {
            **{k: v for k, v in args.items() if v is not None},
            "id": _list_id([str(volume["id"]) for volume in volumes]),
            "volumes": [_volume_attributes(volume) for volume in volumes],
        }


class GetVolume(Function):
    token = "hcloud:index/getVolume:getVolume"

    def invoke(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("id") is None:
            raise ProviderError("the hcloud stand-in looks volumes up by id only")
        volume_id = int(args["id"])
        found = client_of(self.provider).find(f"/volumes/{volume_id}")
        if found is None:
            raise ProviderError(f"no volume found with id {volume_id}")
        return {**{k: v for k, v in args.items() if v is not None}, **_volume_attributes(found["volume"])}


# --- data sources -------------------------------------------------------------------------------


def _all(client: Client, path: str, key: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    """hcloud-go's AllWithOpts: every page of a list, 50 a page."""
    found: list[dict[str, Any]] = []
    page: int | None = 1
    while page:
        answer = client.get(f"{path}?{urlencode({**query, 'page': page, 'per_page': 50}, doseq=True)}")
        found += answer[key]
        page = ((answer.get("meta") or {}).get("pagination") or {}).get("next_page")
    return found


def _list_id(ids: list[str]) -> str:
    """datasourceutil.ListID: a list data source's id is the SHA-1 of its members' ids."""
    return hashlib.sha1("".join(ids).encode()).hexdigest()


class GetServers(Function):
    token = "hcloud:index/getServers:getServers"

    def invoke(self, args: dict[str, Any]) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if args.get("withSelector"):
            query["label_selector"] = args["withSelector"]
        if args.get("withStatuses"):
            query["status"] = list(args["withStatuses"])
        servers = _all(client_of(self.provider), "/servers", "servers", query)
        return {
            **{k: v for k, v in args.items() if v is not None},
            "id": _list_id([str(server["id"]) for server in servers]),
            "servers": [_server_attributes(server) for server in servers],
        }


def _server_attributes(server: dict[str, Any]) -> dict[str, Any]:
    """getServerAttributes (internal/server/resource.go), in the SDK's property names."""
    net = server["public_net"]
    ipv6_network = (net.get("ipv6") or {}).get("ip") or ""
    image = server.get("image") or {}
    return {
        "id": server["id"],
        "name": server["name"],
        "datacenter": server["datacenter"]["name"],
        "location": server["datacenter"]["location"]["name"],
        "status": server["status"],
        "serverType": server["server_type"]["name"],
        "ipv4Address": (net.get("ipv4") or {}).get("ip") or "",
        "ipv6Address": ipv6_network.split("/")[0] + "1" if ipv6_network else "",
        "ipv6Network": ipv6_network,
        "backupWindow": server["backup_window"] or "",
        "backups": bool(server["backup_window"]),
        "labels": server["labels"],
        "deleteProtection": server["protection"]["delete"],
        "rebuildProtection": server["protection"]["rebuild"],
        "firewallIds": [f["id"] for f in net["firewalls"]],
        "primaryDiskSize": server["primary_disk_size"],
        "image": image.get("name") or str(image.get("id") or ""),
        "iso": "",
        "rescue": "",
    }


class GetServerType(Function):
    token = "hcloud:index/getServerType:getServerType"

    def invoke(self, args: dict[str, Any]) -> dict[str, Any]:
        client = client_of(self.provider)
        if args.get("id") is not None:
            found = (client.find(f"/server_types/{int(args['id'])}") or {}).get("server_type")
            if found is None:
                raise ProviderError(f"no server type found with id {int(args['id'])}")
        elif args.get("name"):
            found = (client.get(f"/server_types?{urlencode({'name': args['name']})}")["server_types"] or [None])[0]
            if found is None:
                raise ProviderError(f"no server type found with name {args['name']}")
        else:
            raise ProviderError("please specify an id, or a name to lookup for a server type")
        deprecation = found.get("deprecation") or {}
        return {
            "id": found["id"],
            "name": found["name"],
            "description": found["description"],
            "category": found.get("category", ""),
            "cores": found["cores"],
            "memory": found["memory"],
            "disk": found["disk"],
            "storageType": found["storage_type"],
            "cpuType": found["cpu_type"],
            "architecture": found["architecture"],
            "includedTraffic": found.get("included_traffic", 0),
            "isDeprecated": bool(found.get("deprecated")),
            "deprecationAnnounced": deprecation.get("announced", ""),
            "unavailableAfter": deprecation.get("unavailable_after", ""),
            "locations": [{"id": loc["id"], "name": loc["name"]} for loc in found.get("locations") or []],
        }


# --- zones --------------------------------------------------------------------------------------


class Zone(HcloudResource):
    token = "hcloud:index/zone:Zone"
    replace_on = frozenset({"name", "mode"})

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        return {"ttl": 3600, **news}

    @staticmethod
    def _outputs(inputs: dict[str, Any], zone: dict[str, Any]) -> dict[str, Any]:
        primaries = [
            {"address": p["address"], "port": p.get("port", 53),
             **({"tsigAlgorithm": p["tsig_algorithm"]} if p.get("tsig_algorithm") else {}),
             **({"tsigKey": p["tsig_key"]} if p.get("tsig_key") else {})}
            for p in zone["primary_nameservers"]
        ]  # fmt: skip
        return {**inputs, "name": zone["name"], "mode": zone["mode"], "ttl": zone["ttl"], "labels": zone["labels"],
                "deleteProtection": zone["protection"]["delete"], "primaryNameservers": primaries,
                "authoritativeNameservers": {"assigneds": zone["authoritative_nameservers"]["assigned"]},
                "registrar": zone["registrar"]}  # fmt: skip

    @staticmethod
    def _primaries(inputs: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"address": p["address"], "port": p.get("port", 53),
             **({"tsig_algorithm": p["tsigAlgorithm"]} if p.get("tsigAlgorithm") else {}),
             **({"tsig_key": p["tsigKey"]} if p.get("tsigKey") else {})}
            for p in inputs.get("primaryNameservers") or []
        ]  # fmt: skip

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        client = self.client()
        body: dict[str, Any] = {"name": inputs["name"], "mode": inputs["mode"], "ttl": inputs.get("ttl", 3600)}
        if inputs.get("labels"):
            body["labels"] = inputs["labels"]
        if inputs.get("primaryNameservers"):
            body["primary_nameservers"] = self._primaries(inputs)
        answer = client.call("POST", "/zones", body)
        zone_id = answer["zone"]["id"]
        actions = [answer["action"]]
        if inputs.get("deleteProtection") is not None:
            actions.append(client.call("POST", f"/zones/{zone_id}/actions/change_protection",
                                       {"delete": bool(inputs["deleteProtection"])})["action"])  # fmt: skip
        client.wait(*actions)
        return str(zone_id), self._outputs(inputs, client.get(f"/zones/{zone_id}")["zone"])

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        if preview:
            return {**olds, **news}
        client = self.client()
        actions = []
        if olds.get("ttl") != news.get("ttl"):
            actions.append(client.call("POST", f"/zones/{id_}/actions/change_ttl", {"ttl": news["ttl"]})["action"])
        if news.get("primaryNameservers") is not None and olds.get("primaryNameservers") != news["primaryNameservers"]:
            actions.append(client.call("POST", f"/zones/{id_}/actions/change_primary_nameservers",
                                       {"primary_nameservers": self._primaries(news)})["action"])  # fmt: skip
        if news.get("deleteProtection") is not None and olds.get("deleteProtection") != news["deleteProtection"]:
            actions.append(client.call("POST", f"/zones/{id_}/actions/change_protection",
                                       {"delete": bool(news["deleteProtection"])})["action"])  # fmt: skip
        client.wait(*actions)
        body = {"labels": news.get("labels") or {}} if _labels_changed(olds, news) else {}
        # Always last, even empty: the provider takes the fresh state from its answer.
        return self._outputs(news, client.call("PUT", f"/zones/{id_}", body)["zone"])

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        try:
            self.client().wait(self.client().call("DELETE", f"/zones/{id_}")["action"])
        except ApiError as error:
            if error.code != "not_found":
                raise

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        found = self.client().find(f"/zones/{id_}")
        if found is None:
            return None  # deleted outside Pulumi: refresh drops it, as the provider does
        return self._outputs(outputs, found["zone"])


class ZoneRrset(HcloudResource):
    token = "hcloud:index/zoneRrset:ZoneRrset"
    replace_on = frozenset({"zone", "name", "type"})

    @staticmethod
    def _path(zone: str, id_: str) -> str:
        name, _, rtype = id_.partition("/")
        return f"/zones/{quote(zone, safe='')}/rrsets/{quote(name, safe='')}/{rtype}"

    @staticmethod
    def _outputs(inputs: dict[str, Any], rrset: dict[str, Any]) -> dict[str, Any]:
        records = [{"value": r["value"], **({"comment": r["comment"]} if r.get("comment") else {})}
                   for r in rrset["records"]]  # fmt: skip
        outputs = {**inputs, "name": rrset["name"], "type": rrset["type"], "labels": rrset["labels"],
                   "changeProtection": rrset["protection"]["change"], "records": records}  # fmt: skip
        if rrset["ttl"] is not None:
            outputs["ttl"] = rrset["ttl"]
        else:
            outputs.pop("ttl", None)
        return outputs

    @staticmethod
    def _records(inputs: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"value": r["value"], **({"comment": r["comment"]} if r.get("comment") else {})}
                for r in inputs.get("records") or []]  # fmt: skip

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        client = self.client()
        zone = inputs["zone"]
        body: dict[str, Any] = {"name": inputs["name"], "type": inputs["type"], "records": self._records(inputs)}
        if inputs.get("ttl") is not None:
            body["ttl"] = inputs["ttl"]
        if inputs.get("labels"):
            body["labels"] = inputs["labels"]
        answer = client.call("POST", f"/zones/{quote(zone, safe='')}/rrsets", body)
        id_ = answer["rrset"]["id"]
        actions = [answer["action"]]
        if inputs.get("changeProtection") is not None:
            actions.append(client.call("POST", f"{self._path(zone, id_)}/actions/change_protection",
                                       {"change": bool(inputs["changeProtection"])})["action"])  # fmt: skip
        client.wait(*actions)
        return id_, self._outputs(inputs, client.get(self._path(zone, id_))["rrset"])

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        if preview:
            return {**olds, **news}
        client = self.client()
        path = self._path(news["zone"], id_)
        protect = news.get("changeProtection")
        if protect is not None and olds.get("changeProtection") != protect and not protect:
            client.wait(client.call("POST", f"{path}/actions/change_protection", {"change": False})["action"])
        actions = []
        if olds.get("ttl") != news.get("ttl"):
            actions.append(client.call("POST", f"{path}/actions/change_ttl", {"ttl": news.get("ttl")})["action"])
        if self._records(olds) != self._records(news):
            actions.append(
                client.call("POST", f"{path}/actions/set_records", {"records": self._records(news)})["action"]
            )
        client.wait(*actions)
        body = {"labels": news.get("labels") or {}} if _labels_changed(olds, news) else {}
        rrset = client.call("PUT", path, body)["rrset"]
        if protect and olds.get("changeProtection") != protect:
            client.wait(client.call("POST", f"{path}/actions/change_protection", {"change": True})["action"])
            rrset["protection"]["change"] = True
        return self._outputs(news, rrset)

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        try:
            self.client().wait(self.client().call("DELETE", self._path(outputs["zone"], id_))["action"])
        except ApiError as error:
            if error.code != "not_found":
                raise

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        found = self.client().find(self._path(outputs["zone"], id_))
        if found is None:
            return None  # deleted outside Pulumi: refresh drops it, as the provider does
        return self._outputs(outputs, found["rrset"])


if __name__ == "__main__":
    serve(
        Provider(
            "hcloud",
            [SshKey, Firewall, Server, Volume, VolumeAttachment, Zone, ZoneRrset],
            [GetServers, GetServerType, GetVolumes, GetVolume],
        )
    )
