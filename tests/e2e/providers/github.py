"""Stand-in for pulumi-resource-github 6.15.0 (terraform-provider-github v6.13, bridged): deploy keys,
Actions secrets, environments with their secrets and repository files, over HTTP to a GitHub API the
way the real provider talks to it.

It speaks GitHub's REST wire format (the same methods, paths, JSON bodies and headers as go-github),
so it runs against tests/e2e/testhost/github_api.py as the real plugin would. Contract read in
terraform-provider-github's source (`github/provider.go`, `config.go`, `transport.go`, `util.go`,
`resource_github_repository_deploy_key.go`, `resource_github_actions_secret.go` and its environment
and organization siblings, `resource_github_repository_file.go`) and pulumi-github's
`provider/resources.go`:

- configure: the owner is `organization`, else GITHUB_OWNER, else `owner` (that order is upstream's
  backwards compatibility); with no owner and a token, `GET /user` names it; then `GET /orgs/{owner}`,
  whose error is ignored (a 404 means a user). A base URL other than github.com's is GitHub
  Enterprise: REST under `<base>/api/v3/`. Requests go one at a time, each after the delay the
  previous one set (`writeDelayMs` after a write, default 1000; `readDelayMs`, default 0), unless
  `parallelRequests`; with `legacyClient: false` the new client has no delays.
- RepositoryDeployKey: every input is ForceNew and the bridge deletes before it replaces (a key is
  unique on GitHub); `readOnly` defaults to true; a read sends the recorded ETag (304: unchanged)
  and a 404 drops the key from the state. Id `<repo>:<key id>`.
- ActionsSecret: `secretName` is ForceNew, `repository` replaces when it names another repository
  (diffRepository compares repository ids; renames are not modelled); a value change is an update
  that seals the new value with the repository's public key (libsodium sealed box). Id
  `<repo>:<name>`; `createdAt`/`updatedAt`/`remoteUpdatedAt` in go-github's time format.
- RepositoryEnvironment (`resource_github_repository_environment.go`): `environment` is ForceNew,
  `repository` as for secrets; `canAdminsBypass` defaults to true, `preventSelfReview` to false,
  `waitTimer` is 0..43200. Create and update PUT `/repos/{o}/{r}/environments/{name}` with go-github's
  CreateUpdateEnvironment body (`wait_timer` 0 and `can_admins_bypass` true when unset, `reviewers`
  and `deployment_branch_policy` null to clear them); a 422 without reviewers or wait timer is retried
  with the branch policy alone (go-github's createNewEnvNoEnterprise, for plans without protection
  rules); create then reads the repository's id (and, here, the environment, so that the state is
  what a refresh reads). A read's 404 drops it; a delete's 404 is swallowed.
  Id `<repo>:<name>` (a ':' in the name escaped as '??').
- ActionsEnvironmentSecret (`resource_github_actions_environment_secret.go`): `environment` and
  `secretName` are ForceNew, `repository` as for secrets; the value rules of ActionsSecret. go-github
  addresses the repository by id here: `GET /repositories/{id}/environments/{name}/secrets/public-key`
  (the environment's own key), `PUT`, `GET` (timestamps, once, no retry) and `DELETE` of
  `.../secrets/{secret}`; update and delete use the recorded `repositoryId`; a delete's 404 is an
  error (upstream does not swallow it). Id `<repo>:<name>:<secret>`.
- RepositoryFile: `file` and `branch` are ForceNew, `repository` as for secrets; the branch defaults
  to the repository's default branch, the commit message to "Add <file>" ("Update"/"Delete" later),
  `overwriteOnCreate` to false. Id `<repo>:<file>:<branch>`.

Errors read as go-github's: `<METHOD> <url>: <status> <message> [<errors>]`. Not modelled: retries
on 5xx (max_retries), drift of a secret's value changed outside Pulumi (upstream's diffSecret plans
an update from `remoteUpdatedAt`), `autocreateBranch`, app authentication, the gh CLI token fallback.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import nacl.public

from tests.e2e.providers import Provider, ProviderError, Resource, has_unknown, serve

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
SECRET_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# go-github's defaults; the provider's transport appends the stone-crop preview to Accept.
HEADERS = {
    "Accept": "application/vnd.github.v3+json,application/vnd.github.stone-crop-preview+json",
    "User-Agent": "go-github/v82.0.0",
    "X-GitHub-Api-Version": "2022-11-28",
}


class ApiError(ProviderError):
    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.status = status


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


def _go_errors(errors: Any) -> str:
    """go-github prints ErrorResponse.Errors with %+v: [{Resource:X Field:y Code:z Message:m}]."""
    if not isinstance(errors, list):
        return "[]"
    items = []
    for item in errors:
        if isinstance(item, dict):
            fields = (f"{name}:{item.get(name.lower(), '')}" for name in ("Resource", "Field", "Code", "Message"))
            items.append("{" + " ".join(fields) + "}")
    return "[" + " ".join(items) + "]"


def _int(value: Any, default: int) -> int:
    # Provider inputs may arrive JSON-encoded as strings.
    return default if value in (None, "") else int(value)


def _bool(value: Any, default: bool) -> bool:
    if value in (None, ""):
        return default
    return value if isinstance(value, bool) else str(value).lower() == "true"


def go_time(iso: str) -> str:
    """GitHub's "2026-01-02T03:04:05Z" as go-github's Timestamp.String() prints it."""
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def _local_only(url: str) -> None:
    """Tests reach only 127.0.0.1 and the lab: refuse github.com and every other host."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or (address and (address.is_loopback or address in ipaddress.ip_network("198.51.100.0/24"))):
        return
    raise ProviderError(
        f"the github stand-in only talks to a local GitHub API stand-in, not {url}: set the provider's baseUrl "
        "(or GITHUB_BASE_URL) to tests/e2e/testhost/github_api.py's url"
    )


class Client:
    """go-github over the provider's transports: token, serial requests with delays, ETags."""

    def __init__(self, config: dict[str, Any]) -> None:
        base = config.get("baseUrl") or os.environ.get("GITHUB_BASE_URL") or "https://api.github.com/"
        parts = urlsplit(base)
        if not parts.scheme or not parts.netloc:
            raise ProviderError("base url must be absolute")
        _local_only(base)
        # getBaseURL: any host but github.com's is GitHub Enterprise Server, REST under api/v3/.
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self.rest = f"{parts.scheme}://{parts.netloc}{path.removesuffix('api/v3/')}api/v3/"
        self.token = config.get("token") or os.environ.get("GITHUB_TOKEN") or ""
        self.owner = config.get("organization") or os.environ.get("GITHUB_OWNER") or config.get("owner") or ""
        write_delay = _int(config.get("writeDelayMs"), 1000)
        read_delay = _int(config.get("readDelayMs"), 0)
        for name, value in (("write_delay_ms", write_delay), ("read_delay_ms", read_delay)):
            if value < 0:
                raise ProviderError(f"expected {name} to be at least (0), got {value}")
        legacy = _bool(config.get("legacyClient", os.environ.get("GITHUB_LEGACY_CLIENT")), True)
        self.write_delay = write_delay / 1000 if legacy else 0.0
        self.read_delay = read_delay / 1000 if legacy else 0.0
        self.serial = legacy and not _bool(config.get("parallelRequests"), False)
        self._lock = threading.Lock()
        self._next_delay = 0.0
        self.is_organization = False
        if not self.owner and self.token:
            self.owner = self.request("GET", "user").body["login"]
        try:
            org = self.request("GET", f"orgs/{self.owner}")
            self.is_organization = bool(org.body)
        except ApiError:
            pass  # upstream ignores it: the owner is a user (or the token is wrong, found out later)

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        ref: str | None = None,
        etag: str | None = None,
        allow: tuple[int, ...] = (),
    ) -> Reply:
        """One API call; a status outside 2xx raises ApiError unless listed in `allow`."""
        url = self.rest + path + (f"?ref={quote(ref, safe='')}" if ref else "")
        headers = dict(HEADERS)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if etag:
            headers["If-None-Match"] = etag
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.serial:
            with self._lock:
                return self._send(method, url, data, headers, allow)
        return self._send(method, url, data, headers, allow)

    def _send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str], allow: tuple[int, ...]
    ) -> Reply:
        # RateLimitTransport: sleep what the previous request asked for, then set the next delay.
        if self._next_delay:
            time.sleep(self._next_delay)
        self._next_delay = self.write_delay if method in WRITE_METHODS else self.read_delay
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw, status, got = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            raw, status, got = error.read(), error.code, dict(error.headers)
        except urllib.error.URLError as error:
            raise ProviderError(f"{method} {url}: {error.reason}") from None
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if 200 <= status < 300 or status in allow:
            return Reply(status, payload, got)
        message = payload.get("message", "") if isinstance(payload, dict) else ""
        errors = payload.get("errors") if isinstance(payload, dict) else None
        raise ApiError(f"{method} {url}: {status} {message} {_go_errors(errors)}", status)


class GitHubProvider(Provider):
    def __init__(self) -> None:
        super().__init__(
            "github",
            [RepositoryDeployKey, ActionsSecret, RepositoryEnvironment, ActionsEnvironmentSecret, RepositoryFile],
        )
        self._client: Client | None = None

    def configure(self, config: dict[str, Any]) -> None:
        super().configure(config)
        # A preview may configure with values not known yet; the real provider skips then too.
        self._client = None if has_unknown(config) else Client(config)

    @property
    def client(self) -> Client:
        if self._client is None:
            raise ProviderError("the github provider is not configured (its configuration is not known yet)")
        return self._client


def _repo_path(client: Client, repo: str) -> str:
    return f"repos/{quote(client.owner, safe='')}/{quote(repo, safe='')}"


class GitHubResource(Resource):
    @property
    def api(self) -> Client:
        provider = self.provider
        assert isinstance(provider, GitHubProvider)
        return provider.client


class RepositoryDeployKey(GitHubResource):
    token = "github:index/repositoryDeployKey:RepositoryDeployKey"
    # "Deploy keys are defined immutable in the API. Updating results in force new."
    replace_on = frozenset({"key", "readOnly", "repository", "title"})
    delete_before_replace = True  # pulumi-github: a key may exist once, so the old one goes first

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        return {"readOnly": True, **news}

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        repo = inputs["repository"]
        body = {"key": inputs["key"], "title": inputs["title"], "read_only": inputs["readOnly"]}
        created = self.api.request("POST", f"{_repo_path(self.api, repo)}/keys", body)
        id_ = f"{repo}:{created.body['id']}"
        outputs = self._read(id_, inputs, new=True)
        if outputs is None:
            raise ProviderError(f"deploy key {id_} vanished right after its creation")
        return id_, outputs

    def _read(self, id_: str, state: dict[str, Any], *, new: bool) -> dict[str, Any] | None:
        repo, key_id = id_.split(":", 1)
        etag = None if new else state.get("etag")
        got = self.api.request("GET", f"{_repo_path(self.api, repo)}/keys/{key_id}", etag=etag, allow=(304, 404))
        if got.status == 304:
            return state
        if got.status == 404:
            return None
        key = got.body
        return {
            **state,
            "etag": got.headers.get("ETag", ""),
            "key": key["key"],
            "readOnly": key["read_only"],
            "repository": repo,
            "title": key["title"],
        }

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        return self._read(id_, outputs, new=False)

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        repo, key_id = id_.split(":", 1)
        self.api.request("DELETE", f"{_repo_path(self.api, repo)}/keys/{key_id}")


VALUE_KEYS = ("value", "valueEncrypted", "encryptedValue", "plaintextValue")


class ActionsSecret(GitHubResource):
    token = "github:index/actionsSecret:ActionsSecret"
    replace_on = frozenset({"secretName", "repository"})

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        name = news.get("secretName", "")
        if isinstance(name, str) and name and not has_unknown(name):
            if not SECRET_NAME_RE.match(name):
                raise ProviderError(
                    "secret names can only contain alphanumeric characters or underscores "
                    "and must not start with a number"
                )
            if name.upper().startswith("GITHUB_"):
                raise ProviderError("secret names must not start with the GITHUB_ prefix")
        given = [key for key in VALUE_KEYS if news.get(key) not in (None, "")]
        if len(given) != 1 and not has_unknown(news):
            raise ProviderError(
                '"value": only one of `encrypted_value,plaintext_value,value,value_encrypted` can be specified'
                if given
                else '"value": one of `encrypted_value,plaintext_value,value,value_encrypted` must be specified'
            )
        if news.get("valueEncrypted") and not news.get("keyId"):
            raise ProviderError('"value_encrypted": all of `key_id,value_encrypted` must be specified')
        return news

    def _seal(self, repo: str, inputs: dict[str, Any]) -> dict[str, str]:
        key_id = inputs.get("keyId") or ""
        encrypted = inputs.get("valueEncrypted") or inputs.get("encryptedValue") or ""
        public_key = ""
        if not key_id or not encrypted:
            got = self.api.request("GET", f"{_repo_path(self.api, repo)}/actions/secrets/public-key")
            key_id, public_key = got.body["key_id"], got.body["key"]
        if not encrypted:
            plaintext = inputs.get("value") or inputs.get("plaintextValue") or ""
            box = nacl.public.SealedBox(nacl.public.PublicKey(base64.b64decode(public_key)))
            encrypted = base64.b64encode(box.encrypt(plaintext.encode())).decode()
        return {"encrypted_value": encrypted, "key_id": key_id}

    def _put(self, repo: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """PUT the sealed value, then GET the secret for its timestamps (the PUT returns none)."""
        sealed = self._seal(repo, inputs)
        path = f"{_repo_path(self.api, repo)}/actions/secrets/{quote(name, safe='')}"
        self.api.request("PUT", path, sealed)
        got = None
        for attempt in range(5):  # retryUntilResourceFound: the API is eventually consistent
            got = self.api.request("GET", path, allow=(404,))
            if got.status != 404:
                break
            time.sleep(0.2 * (attempt + 1))
        stamps: dict[str, str] = {}
        if got is not None and got.status == 200:
            updated = go_time(got.body["updated_at"])
            stamps = {"createdAt": go_time(got.body["created_at"]), "updatedAt": updated, "remoteUpdatedAt": updated}
        return {"keyId": sealed["key_id"], **stamps}

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        repo, name = inputs["repository"], inputs["secretName"]
        repository = self.api.request("GET", _repo_path(self.api, repo)).body
        outputs = {**inputs, "repositoryId": repository["id"], **self._put(repo, name, inputs)}
        return f"{repo}:{name}", outputs

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        outputs = {**olds, **news}
        for key in VALUE_KEYS:  # a value no longer given is gone from the state too
            if key not in news:
                outputs.pop(key, None)
        if preview:
            return outputs
        # key_id is computed: the state's, unless given; a plaintext value fetches the public key anyway.
        sealing = {**news, "keyId": news.get("keyId") or olds.get("keyId")}
        return {**outputs, **self._put(news["repository"], news["secretName"], sealing)}

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        repo, name = outputs.get("repository", ""), outputs.get("secretName", "")
        path = f"{_repo_path(self.api, repo)}/actions/secrets/{quote(name, safe='')}"
        got = self.api.request("GET", path, allow=(404,))
        if got.status == 404:
            return None
        updated = go_time(got.body["updated_at"])
        return {
            **outputs,
            "createdAt": outputs.get("createdAt") or go_time(got.body["created_at"]),
            "updatedAt": outputs.get("updatedAt") or updated,
            "remoteUpdatedAt": updated,
        }

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        repo, name = outputs["repository"], outputs["secretName"]
        self.api.request("DELETE", f"{_repo_path(self.api, repo)}/actions/secrets/{quote(name, safe='')}")


def escape_id_part(part: str) -> str:
    """Upstream's escapeIDPart: ':' separates an id's parts, so one inside a name becomes '??'."""
    return part.replace(":", "??")


ENVIRONMENT_DEFAULTS = {"canAdminsBypass": True, "preventSelfReview": False}


class RepositoryEnvironment(GitHubResource):
    token = "github:index/repositoryEnvironment:RepositoryEnvironment"
    replace_on = frozenset({"environment", "repository"})

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        wait = news.get("waitTimer")
        if wait not in (None, "") and not has_unknown(wait) and not 0 <= _int(wait, 0) <= 43200:
            raise ProviderError(f'"wait_timer": expected wait_timer to be in the range (0 - 43200), got {wait}')
        if news.get("reviewers"):
            raise ProviderError("the github stand-in does not implement environment reviewers")
        return {**ENVIRONMENT_DEFAULTS, **news}

    def _path(self, repo: str, env: str) -> str:
        return f"{_repo_path(self.api, repo)}/environments/{quote(env, safe='')}"

    def _put(self, inputs: dict[str, Any]) -> None:
        """createUpdateEnvironmentData, marshalled as go-github's CreateUpdateEnvironment."""
        policy = inputs.get("deploymentBranchPolicy")
        branch_policy = (
            {
                "protected_branches": bool(policy["protectedBranches"]),
                "custom_branch_policies": bool(policy["customBranchPolicies"]),
            }
            if policy
            else None
        )
        wait = _int(inputs.get("waitTimer"), 0)
        body = {
            "wait_timer": wait,
            "reviewers": None,
            "can_admins_bypass": _bool(inputs.get("canAdminsBypass"), True),
            "deployment_branch_policy": branch_policy,
            "prevent_self_review": _bool(inputs.get("preventSelfReview"), False),
        }
        path = self._path(inputs["repository"], inputs["environment"])
        try:
            self.api.request("PUT", path, body)
        except ApiError as error:
            if error.status != 422 or wait:
                raise
            self.api.request("PUT", path, {"deployment_branch_policy": branch_policy})

    def _read(self, state: dict[str, Any]) -> dict[str, Any] | None:
        got = self.api.request("GET", self._path(state["repository"], state["environment"]), allow=(404,))
        if got.status == 404:
            return None
        env = got.body
        wait, prevent, reviewers = 0, False, []
        for rule in env.get("protection_rules") or []:
            if rule.get("type") == "wait_timer":
                wait = rule.get("wait_timer", 0)
            elif rule.get("type") == "required_reviewers":
                prevent = bool(rule.get("prevent_self_review"))
                reviewers = [{"teams": [], "users": []}]
        outputs = {
            **state,
            "waitTimer": wait,
            "reviewers": reviewers,
            "preventSelfReview": prevent,
            "canAdminsBypass": bool(env.get("can_admins_bypass")),
        }
        policy = env.get("deployment_branch_policy")
        if policy:
            outputs["deploymentBranchPolicy"] = {
                "protectedBranches": bool(policy.get("protected_branches")),
                "customBranchPolicies": bool(policy.get("custom_branch_policies")),
            }
        else:
            outputs.pop("deploymentBranchPolicy", None)
        return outputs

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        repo, env = inputs["repository"], inputs["environment"]
        self._put(inputs)
        repository = self.api.request("GET", _repo_path(self.api, repo)).body
        outputs = self._read({**inputs, "repositoryId": repository["id"]})
        if outputs is None:
            raise ProviderError(f"environment {env} vanished from {repo} right after its creation")
        return f"{repo}:{escape_id_part(env)}", outputs

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        return self._read(outputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        state = {**olds, **news}
        if preview:
            return state
        self._put(state)
        outputs = self._read(state)
        if outputs is None:
            raise ProviderError(f"environment {state['environment']} vanished right after its update")
        return outputs

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        # deleteResourceOn404AndSwallow304OtherwiseReturnError: one already gone is deleted.
        self.api.request("DELETE", self._path(outputs["repository"], outputs["environment"]), allow=(404,))


class ActionsEnvironmentSecret(ActionsSecret):
    token = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
    replace_on = frozenset({"environment", "secretName", "repository"})

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        if news.get("keyId") and (news.get("value") or news.get("plaintextValue")):
            raise ProviderError('"key_id": conflicts with value')
        return super().check(news)

    def _secrets(self, repository_id: Any, env: str) -> str:
        # repository_id is a TypeInt: the engine hands numbers over as doubles (1001007.0).
        return f"repositories/{int(float(repository_id))}/environments/{quote(env, safe='')}/secrets"

    def _put_env(self, repository_id: Any, inputs: dict[str, Any], key_id: str) -> dict[str, Any]:
        base = self._secrets(repository_id, inputs["environment"])
        encrypted = inputs.get("valueEncrypted") or inputs.get("encryptedValue") or ""
        public_key = ""
        if not key_id or not encrypted:
            got = self.api.request("GET", f"{base}/public-key")
            key_id, public_key = got.body["key_id"], got.body["key"]
        if not encrypted:
            plaintext = inputs.get("value") or inputs.get("plaintextValue") or ""
            box = nacl.public.SealedBox(nacl.public.PublicKey(base64.b64decode(public_key)))
            encrypted = base64.b64encode(box.encrypt(plaintext.encode())).decode()
        path = f"{base}/{quote(inputs['secretName'], safe='')}"
        self.api.request("PUT", path, {"key_id": key_id, "encrypted_value": encrypted})
        # "GitHub API does not return on create so we have to lookup the secret to get timestamps"
        got = self.api.request("GET", path, allow=(404,))
        if got.status != 200:
            return {"keyId": key_id, "updatedAt": None, "remoteUpdatedAt": None}
        updated = go_time(got.body["updated_at"])
        return {
            "keyId": key_id,
            "createdAt": go_time(got.body["created_at"]),
            "updatedAt": updated,
            "remoteUpdatedAt": updated,
        }

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        repo, env, name = inputs["repository"], inputs["environment"], inputs["secretName"]
        repository_id = self.api.request("GET", _repo_path(self.api, repo)).body["id"]
        stamps = self._put_env(repository_id, inputs, inputs.get("keyId") or "")
        outputs = {**inputs, "repositoryId": repository_id, **stamps}
        return f"{repo}:{escape_id_part(env)}:{name}", outputs

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        outputs = {**olds, **news}
        for key in VALUE_KEYS:
            if key not in news:
                outputs.pop(key, None)
        if preview:
            return outputs
        # d.Get("key_id"): given, else the state's (computed); a plaintext value seals anew anyway.
        key_id = news.get("keyId") or olds.get("keyId") or ""
        return {**outputs, **self._put_env(olds["repositoryId"], news, key_id)}

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        path = f"{self._secrets(outputs.get('repositoryId'), outputs.get('environment', ''))}/"
        got = self.api.request("GET", path + quote(outputs.get("secretName", ""), safe=""), allow=(404,))
        if got.status == 404:
            return None
        updated = go_time(got.body["updated_at"])
        return {
            **outputs,
            "createdAt": outputs.get("createdAt") or go_time(got.body["created_at"]),
            "updatedAt": outputs.get("updatedAt") or updated,
            "remoteUpdatedAt": updated,
        }

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        path = self._secrets(outputs["repositoryId"], outputs["environment"])
        self.api.request("DELETE", f"{path}/{quote(outputs['secretName'], safe='')}")


FILE_DEFAULTS = {"overwriteOnCreate": False, "autocreateBranch": False, "autocreateBranchSourceBranch": "main"}


class RepositoryFile(GitHubResource):
    token = "github:index/repositoryFile:RepositoryFile"
    replace_on = frozenset({"file", "branch", "repository"})

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        if bool(news.get("commitAuthor")) != bool(news.get("commitEmail")):
            missing = "commit_email" if news.get("commitAuthor") else "commit_author"
            raise ProviderError(f'"{missing}": all of `commit_author,commit_email` must be specified')
        if news.get("autocreateBranch") is True:
            raise ProviderError("the github stand-in does not implement autocreateBranch (deprecated upstream)")
        return {**FILE_DEFAULTS, **news}

    def _options(self, state: dict[str, Any]) -> dict[str, Any]:
        """resourceGithubRepositoryFileOptions: content, branch, message, sha, author = committer."""
        body: dict[str, Any] = {"content": base64.b64encode(state.get("content", "").encode()).decode()}
        for key, field in (("branch", "branch"), ("commitMessage", "message"), ("sha", "sha")):
            if state.get(key):
                body[field] = state[key]
        if state.get("commitAuthor") and state.get("commitEmail"):
            who = {"name": state["commitAuthor"], "email": state["commitEmail"]}
            body["author"] = body["committer"] = who
        return body

    def _contents(self, repo: str, file: str) -> str:
        return f"{_repo_path(self.api, repo)}/contents/{quote(file)}"

    def create(self, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", inputs
        repo, file = inputs["repository"], inputs["file"]
        info = self.api.request("GET", _repo_path(self.api, repo)).body
        branch = inputs.get("branch") or ""
        if branch:
            got = self.api.request("GET", f"{_repo_path(self.api, repo)}/branches/{quote(branch)}", allow=(404,))
            if got.status == 404:
                raise ProviderError(
                    f"branch {branch} not found in repository {self.api.owner}/{repo} or repository is not readable"
                )
        body = self._options(inputs)
        body.setdefault("message", f"Add {file}")
        existing = self.api.request("GET", self._contents(repo, file), ref=branch or None, allow=(404,))
        if existing.status != 404 and existing.body:
            if not inputs.get("overwriteOnCreate"):
                raise ProviderError(
                    "refusing to overwrite existing file: configure `overwrite_on_create` to `true` to override"
                )
            body["sha"] = existing.body["sha"]
        created = self.api.request("PUT", self._contents(repo, file), body).body
        branch = branch or info["default_branch"]
        state = {**inputs, "commitSha": created["commit"]["sha"], "branch": branch, "repositoryId": info["id"]}
        outputs = self._read(state)
        if outputs is None:
            raise ProviderError(f"{file} vanished from {repo} right after its commit")
        return f"{repo}:{file}:{branch}", outputs

    def _read(self, state: dict[str, Any]) -> dict[str, Any] | None:
        repo, file = state["repository"], state["file"]
        got = self.api.request("GET", self._contents(repo, file), ref=state.get("branch") or None, allow=(304, 404))
        if got.status == 304:
            return state
        if got.status == 404 or not got.body:
            return None
        refs = parse_qs(urlsplit(got.body.get("url", "")).query).get("ref")
        if not refs:  # upstream indexes the query's ref unchecked: a panic there
            raise ProviderError(f"the contents API's url has no ?ref=: {got.body.get('url')!r}")
        outputs = {
            **state,
            "content": base64.b64decode(got.body["content"]).decode(),
            "sha": got.body["sha"],
            "ref": refs[0],
        }
        if not state.get("commitSha"):
            raise ProviderError("the github stand-in does not look a file's commit up by listing commits")
        commit = self.api.request("GET", f"{_repo_path(self.api, repo)}/commits/{state['commitSha']}").body
        outputs["commitSha"] = commit["sha"]
        committer = commit["commit"]["committer"]
        # The commit's author is recorded only when one was given, and not GitHub's own signature.
        given = state.get("commitAuthor") and state.get("commitEmail")
        if given and committer["name"] != "GitHub" and committer["email"] != "noreply@github.com":
            outputs["commitAuthor"], outputs["commitEmail"] = committer["name"], committer["email"]
        outputs["commitMessage"] = commit["commit"]["message"]
        return outputs

    def read(self, id_: str, outputs: dict[str, Any]) -> dict[str, Any] | None:
        return self._read(outputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any], preview: bool) -> dict[str, Any]:
        # Computed values (branch, commit message, sha, commit) carry over from the state.
        state = {**olds, **news, "branch": news.get("branch") or olds.get("branch")}
        state["commitMessage"] = news.get("commitMessage") or olds.get("commitMessage")
        if preview:
            return state
        body = self._options(state)
        if body.get("message") == f"Add {state['file']}":
            body["message"] = f"Update {state['file']}"
        updated = self.api.request("PUT", self._contents(state["repository"], state["file"]), body).body
        outputs = self._read({**state, "commitSha": updated["commit"]["sha"]})
        if outputs is None:
            raise ProviderError(f"{state['file']} vanished from {state['repository']} right after its commit")
        return outputs

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        body = self._options(outputs)
        if body.get("message", f"Add {outputs['file']}") == f"Add {outputs['file']}":
            body["message"] = f"Delete {outputs['file']}"
        body["branch"] = outputs.get("branch", "")
        self.api.request("DELETE", self._contents(outputs["repository"], outputs["file"]), body)


if __name__ == "__main__":
    serve(GitHubProvider())
