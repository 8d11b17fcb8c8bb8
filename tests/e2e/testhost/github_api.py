"""A stand-in for GitHub's REST API, as GitHub Enterprise Server serves it (under /api/v3/).

It answers exactly what the real github provider (terraform-provider-github v6.13, bridged by
pulumi-github 6.15.0) calls for the program's resources, in GitHub's wire format:

    GET    /user                                      configure, when no owner is set
    GET    /orgs/{owner}                              configure (404 JSON: the owner is a user)
    GET    /repos/{owner}/{repo}                      repository id, default branch
    POST   /repos/{owner}/{repo}/keys                 deploy keys
    GET    /repos/{owner}/{repo}/keys/{id}              (ETag; If-None-Match answers 304)
    DELETE /repos/{owner}/{repo}/keys/{id}
    GET    /repos/{owner}/{repo}/actions/secrets/public-key
    GET    /repos/{owner}/{repo}/actions/secrets/{name}
    PUT    /repos/{owner}/{repo}/actions/secrets/{name}   a libsodium sealed box, opened here
    DELETE /repos/{owner}/{repo}/actions/secrets/{name}
    GET    /repos/{owner}/{repo}/branches/{branch}
    GET    /repos/{owner}/{repo}/contents/{path}?ref=   the read's `url` carries ?ref=
    PUT    /repos/{owner}/{repo}/contents/{path}        create or update (sha of the blob)
    DELETE /repos/{owner}/{repo}/contents/{path}
    GET    /repos/{owner}/{repo}/commits/{sha}
    PUT    /repos/{owner}/{repo}/environments/{name}     create or update an environment
    GET    /repos/{owner}/{repo}/environments/{name}
    DELETE /repos/{owner}/{repo}/environments/{name}     with its secrets
    GET    /repositories/{repository_id}/environments/{name}/secrets/public-key
    GET    /repositories/{repository_id}/environments/{name}/secrets/{secret_name}
    PUT    /repositories/{repository_id}/environments/{name}/secrets/{secret_name}
    DELETE /repositories/{repository_id}/environments/{name}/secrets/{secret_name}
           (go-github's Get/CreateOrUpdate/DeleteEnvSecret and GetEnvPublicKey address the
           repository by id; GitHub also serves the same under /repos/{owner}/{repo}/environments/...,
           as its REST docs now give them, and so does this stand-in)

Every request needs the model's token (`Authorization: Bearer|token <t>`): none answers 401
"Requires authentication", a wrong one 401 "Bad credentials", as GitHub does. Anything else answers
GitHub's 404 JSON and is recorded in `model.unknown_requests`, so a call the provider starts making
shows up in the tests; a failure inside the stand-in answers 500 and lands in `model.server_errors`.

State lives in `GitHubModel` (thread-safe, no HTTP); `GitHubAPI` serves it from a thread on
127.0.0.1. Each repository owns an X25519 key pair for its Actions secrets, so a test reads the
plaintext a workflow would get (`secret_plaintext`). `on_deploy_key` is told when a deploy key is
added or removed (the lab authorizes it on its git forge).

Environments are named case-insensitively (GitHub's rule) and each holds its own X25519 key pair and
secrets, which a workflow job sees only when it names the environment (`secret_plaintext(...,
environment=)`). Branches besides the default one come from `create_branch` (a test's `git push`).

Limitations: one owner (a user or an organization) and its token; no pagination, directories,
renames, branch creation through the API, rate limits or secondary rate limits; environments
without reviewers (a PUT naming reviewers answers 422, as a plan without them does) and without
deployment branch policies beyond echoing them; every plan is one that has environments (GitHub
Free refuses them on private repositories with a 404).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

import nacl.exceptions
import nacl.public

DOCS = "https://docs.github.com/rest"
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


class GitHubError(Exception):
    """An API error answered as GitHub does: {"message", "errors"?, "documentation_url", "status"}."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.errors = errors


def _not_found() -> GitHubError:
    return GitHubError(404, "Not Found")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def blob_sha(content: bytes) -> str:
    """git's object id of a blob, as GitHub reports a file's `sha`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class DeployKeyEvent:
    """What `on_deploy_key` is told."""

    added: bool
    """True when the key was added, False when removed."""
    repository: str
    key: str
    """"type base64", as GitHub keeps it (no comment)."""
    title: str
    read_only: bool


@dataclass
class DeployKey:
    id: int
    key: str
    title: str
    read_only: bool
    created_at: datetime


@dataclass
class Secret:
    name: str
    plaintext: str
    """What the sealed box held: what a workflow run would see."""
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Identity:
    name: str
    email: str
    date: datetime


@dataclass
class Commit:
    sha: str
    message: str
    author: Identity
    committer: Identity
    parents: list[str]
    tree: dict[str, bytes]
    """Every file of the commit: path -> content."""
    changes: list[tuple[str, str]]
    """(path, "added" | "modified" | "removed") against the first parent."""

    @property
    def tree_sha(self) -> str:
        listing = "".join(f"{path}\0{blob_sha(data)}\n" for path, data in sorted(self.tree.items()))
        return hashlib.sha1(listing.encode()).hexdigest()


@dataclass
class Environment:
    """A GitHub Environment: its protection settings, its own key pair and its own secrets."""

    id: int
    name: str
    """As created (names compare case-insensitively)."""
    created_at: datetime
    updated_at: datetime
    can_admins_bypass: bool = True
    prevent_self_review: bool = False
    wait_timer: int = 0
    deployment_branch_policy: dict[str, bool] | None = None
    secrets: dict[str, Secret] = field(default_factory=dict)
    secrets_key: nacl.public.PrivateKey = field(default_factory=nacl.public.PrivateKey.generate)
    secrets_key_id: str = ""


@dataclass
class Repository:
    id: int
    name: str
    default_branch: str
    branches: dict[str, str] = field(default_factory=dict)
    """Branch name -> head commit sha."""
    commits: dict[str, Commit] = field(default_factory=dict)
    keys: dict[int, DeployKey] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    secrets_key: nacl.public.PrivateKey = field(default_factory=nacl.public.PrivateKey.generate)
    secrets_key_id: str = ""
    environments: dict[str, Environment] = field(default_factory=dict)
    """Lower-cased name -> environment."""

    def head(self, branch: str) -> Commit:
        return self.commits[self.branches[branch]]


class GitHubModel:
    """GitHub's state for one owner: repositories with deploy keys, Actions secrets and files."""

    def __init__(
        self,
        owner: str,
        token: str,
        *,
        organization: bool = False,
        user_name: str = "Test User",
        user_email: str = "user@example.invalid",
        on_deploy_key: Callable[[DeployKeyEvent], None] | None = None,
    ) -> None:
        self.owner = owner
        self.token = token
        self.organization = organization
        self.user_login = f"{owner}-admin" if organization else owner
        self.user_name = user_name
        self.user_email = user_email
        self.on_deploy_key = on_deploy_key
        self.repositories: dict[str, Repository] = {}
        self.unknown_requests: list[str] = []
        """"METHOD /path?query" of every request no endpoint here answers."""
        self.server_errors: list[str] = []
        self.requests: list[tuple[str, str, int]] = []
        """(method, path, status) of every request, in order."""
        self.lock = threading.RLock()
        self._ids = count(1001)
        self._commit_serial = count(1)

    # --- set-up and inspection (tests) ---------------------------------------------------------

    def create_repository(
        self, name: str, *, default_branch: str = "main", files: dict[str, str] | None = None
    ) -> Repository:
        """A repository whose default branch has one commit holding `files` (path -> text)."""
        with self.lock:
            if name.lower() in self.repositories:
                raise ValueError(f"repository {name!r} exists")
            repo = Repository(id=next(self._ids) * 1000 + 7, name=name, default_branch=default_branch)
            repo.secrets_key_id = str(3380204578043523366 + repo.id)
            tree = {path: text.encode() for path, text in (files or {"README.md": f"# {name}\n"}).items()}
            me = self._me(_now())
            commit = self._commit(repo, "Initial commit", me, me, [], tree)
            repo.branches[default_branch] = commit.sha
            self.repositories[name.lower()] = repo
            return repo

    def secret_plaintext(self, repo: str, name: str, environment: str | None = None) -> str:
        """What a workflow job would get for `secrets.<name>`: the environment's secret when the job
        names an environment that has one, else the repository's."""
        with self.lock:
            r = self._repo(repo)
            env = r.environments.get(environment.lower()) if environment else None
            if env is not None and name in env.secrets:
                return env.secrets[name].plaintext
            return r.secrets[name].plaintext

    def create_branch(self, repo: str, name: str, source: str | None = None) -> str:
        """A new branch at `source`'s head (the default branch's), as a `git push` of it makes."""
        with self.lock:
            r = self._repo(repo)
            if name in r.branches:
                raise ValueError(f"branch {name!r} exists")
            r.branches[name] = r.branches[source or r.default_branch]
            return r.branches[name]

    def branch_files(self, repo: str, branch: str) -> dict[str, str]:
        """Every file at the head of `branch`: path -> text."""
        with self.lock:
            return {path: data.decode() for path, data in self._repo(repo).head(branch).tree.items()}

    def environment_secrets(self, repo: str) -> dict[str, list[str]]:
        """Environment name (as created) -> its secrets' names."""
        with self.lock:
            return {e.name: sorted(e.secrets) for e in self._repo(repo).environments.values()}

    def file_text(self, repo: str, path: str, branch: str | None = None) -> str | None:
        """The file's text at the head of `branch` (default branch), None when absent."""
        with self.lock:
            r = self._repo(repo)
            data = r.head(branch or r.default_branch).tree.get(path)
            return None if data is None else data.decode()

    def deploy_keys(self, repo: str) -> list[DeployKey]:
        with self.lock:
            return list(self._repo(repo).keys.values())

    def secret_names(self, repo: str) -> list[str]:
        with self.lock:
            return sorted(self._repo(repo).secrets)

    def managed(self, repo: str) -> dict[str, Any]:
        """Keys, repository secrets, environments (with their secrets) and files besides the initial
        commit's (a branch's other than the default one as "<branch>:<path>"): what a destroy must
        leave empty."""
        with self.lock:
            r = self._repo(repo)
            initial = next(c for c in r.commits.values() if not c.parents).tree
            files = []
            for branch in r.branches:
                prefix = "" if branch == r.default_branch else f"{branch}:"
                files += [prefix + p for p, d in r.head(branch).tree.items() if initial.get(p) != d]
            return {
                "keys": [k.title for k in r.keys.values()],
                "secrets": sorted(r.secrets),
                "environments": {e.name: sorted(e.secrets) for e in r.environments.values()},
                "files": sorted(files),
            }

    # --- lookups --------------------------------------------------------------------------------

    def _repo(self, name: str) -> Repository:
        try:
            return self.repositories[name.lower()]
        except KeyError:
            raise _not_found() from None

    def repository(self, owner: str, name: str) -> Repository:
        with self.lock:
            if owner.lower() != self.owner.lower():
                raise _not_found()
            return self._repo(name)

    def authorized(self, header: str | None) -> None:
        """Raise GitHub's 401 unless the Authorization header carries the token."""
        if not header:
            raise GitHubError(401, "Requires authentication")
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or value.strip() != self.token:
            raise GitHubError(401, "Bad credentials")

    def _me(self, moment: datetime) -> Identity:
        return Identity(self.user_name, self.user_email, moment)

    # --- deploy keys -----------------------------------------------------------------------------

    def add_deploy_key(self, repo: Repository, key: str, title: str, read_only: bool) -> DeployKey:
        parts = key.split()
        if len(parts) < 2 or parts[0] not in KEY_TYPES or not _is_base64(parts[1]):
            raise GitHubError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "PublicKey",
                        "code": "custom",
                        "field": "key",
                        "message": "key is invalid. You must supply a key in OpenSSH public key format",
                    }
                ],
            )
        stored = f"{parts[0]} {parts[1]}"
        with self.lock:
            # GitHub allows a key once, as one repository's deploy key.
            if any(k.key == stored for r in self.repositories.values() for k in r.keys.values()):
                raise GitHubError(
                    422,
                    "Validation Failed",
                    [{"resource": "PublicKey", "code": "custom", "field": "key", "message": "key is already in use"}],
                )
            deploy_key = DeployKey(next(self._ids), stored, title or "", read_only, _now())
            repo.keys[deploy_key.id] = deploy_key
            self._tell(True, repo, deploy_key)
            return deploy_key

    def deploy_key(self, repo: Repository, key_id: int) -> DeployKey:
        with self.lock:
            try:
                return repo.keys[key_id]
            except KeyError:
                raise _not_found() from None

    def remove_deploy_key(self, repo: Repository | str, key_id: int) -> None:
        """Also what a test calls to delete a key behind Pulumi's back."""
        with self.lock:
            r = self._repo(repo) if isinstance(repo, str) else repo
            deploy_key = r.keys.pop(key_id, None)
            if deploy_key is None:
                raise _not_found()
            self._tell(False, r, deploy_key)

    def _tell(self, added: bool, repo: Repository, key: DeployKey) -> None:
        if self.on_deploy_key:
            self.on_deploy_key(DeployKeyEvent(added, repo.name, key.key, key.title, key.read_only))

    # --- Actions secrets ---------------------------------------------------------------------

    def put_secret(self, repo: Repository, name: str, encrypted_value: str, key_id: str) -> bool:
        """Store a secret from its sealed box; True when it is new (GitHub's 201, else 204)."""
        if not SECRET_NAME_RE.match(name) or name.upper().startswith("GITHUB_"):
            raise GitHubError(422, "Secret names can only contain alphanumeric characters or underscores")
        with self.lock:
            if key_id != repo.secrets_key_id:
                raise GitHubError(422, f"Invalid request.\n\nkey_id {key_id!r} is not the repository's public key")
            try:
                sealed = base64.b64decode(encrypted_value, validate=True)
                plaintext = nacl.public.SealedBox(repo.secrets_key).decrypt(sealed).decode()
            except (binascii.Error, nacl.exceptions.CryptoError, UnicodeDecodeError):
                raise GitHubError(422, "Bad request - encrypted_value could not be decrypted") from None
            moment = _now()
            old = repo.secrets.get(name)
            repo.secrets[name] = Secret(name, plaintext, old.created_at if old else moment, moment)
            return old is None

    def secret(self, repo: Repository, name: str) -> Secret:
        with self.lock:
            try:
                return repo.secrets[name]
            except KeyError:
                raise _not_found() from None

    def delete_secret(self, repo: Repository, name: str) -> None:
        with self.lock:
            if repo.secrets.pop(name, None) is None:
                raise _not_found()

    # --- environments and their secrets -----------------------------------------------------

    def repository_by_id(self, repository_id: str) -> Repository:
        with self.lock:
            for r in self.repositories.values():
                if str(r.id) == repository_id:
                    return r
            raise _not_found()

    def put_environment(self, repo: Repository, name: str, body: dict[str, Any]) -> Environment:
        """Create or update; GitHub's rules: at most 255 characters, case-insensitive, wait_timer
        0..43200 minutes."""
        if not name or len(name) > 255:
            raise GitHubError(
                422, "Validation Failed", [{"resource": "Environment", "code": "invalid", "field": "name"}]
            )
        wait = body.get("wait_timer") or 0
        if not isinstance(wait, int) or not 0 <= wait <= 43200:
            raise GitHubError(422, "Invalid request.\n\nwait_timer must be between 0 and 43200.")
        if body.get("reviewers"):
            raise GitHubError(422, "Invalid request.\n\nthe stand-in does not model required reviewers.")
        policy = body.get("deployment_branch_policy")
        with self.lock:
            moment = _now()
            env = repo.environments.get(name.lower())
            if env is None:
                env = Environment(next(self._ids), name, moment, moment)
                env.secrets_key_id = str(3380204578043523366 + env.id)
                repo.environments[name.lower()] = env
            env.updated_at = moment
            if "can_admins_bypass" in body:
                env.can_admins_bypass = bool(body["can_admins_bypass"])
            if "prevent_self_review" in body:
                env.prevent_self_review = bool(body["prevent_self_review"])
            env.wait_timer = wait
            env.deployment_branch_policy = dict(policy) if isinstance(policy, dict) else None
            return env

    def environment(self, repo: Repository, name: str) -> Environment:
        with self.lock:
            try:
                return repo.environments[name.lower()]
            except KeyError:
                raise _not_found() from None

    def delete_environment(self, repo: Repository, name: str) -> None:
        """Also what a test calls to delete one behind Pulumi's back; its secrets go with it."""
        with self.lock:
            if repo.environments.pop(name.lower(), None) is None:
                raise _not_found()

    def put_environment_secret(self, env: Environment, name: str, encrypted_value: str, key_id: str) -> bool:
        if not SECRET_NAME_RE.match(name) or name.upper().startswith("GITHUB_"):
            raise GitHubError(422, "Secret names can only contain alphanumeric characters or underscores")
        with self.lock:
            if key_id != env.secrets_key_id:
                raise GitHubError(422, f"Invalid request.\n\nkey_id {key_id!r} is not the environment's public key")
            try:
                sealed = base64.b64decode(encrypted_value, validate=True)
                plaintext = nacl.public.SealedBox(env.secrets_key).decrypt(sealed).decode()
            except (binascii.Error, nacl.exceptions.CryptoError, UnicodeDecodeError):
                raise GitHubError(422, "Bad request - encrypted_value could not be decrypted") from None
            moment = _now()
            old = env.secrets.get(name)
            env.secrets[name] = Secret(name, plaintext, old.created_at if old else moment, moment)
            return old is None

    # --- branches, contents and commits ---------------------------------------------------------

    def branch(self, repo: Repository, name: str) -> Commit:
        with self.lock:
            if name not in repo.branches:
                raise GitHubError(404, "Branch not found")
            return repo.head(name)

    def commit(self, repo: Repository, sha: str) -> Commit:
        with self.lock:
            if sha in repo.branches:
                return repo.head(sha)
            try:
                return repo.commits[sha]
            except KeyError:
                raise GitHubError(422, f"No commit found for SHA: {sha}") from None

    def ref_commit(self, repo: Repository, ref: str | None) -> tuple[str, Commit]:
        """The ref's name (default branch when None) and its commit."""
        with self.lock:
            name = ref or repo.default_branch
            if name in repo.branches:
                return name, repo.head(name)
            if name in repo.commits:
                return name, repo.commits[name]
            raise GitHubError(404, f"No commit found for the ref {name}")

    def put_file(
        self,
        repo: Repository,
        path: str,
        content: bytes,
        message: str,
        *,
        branch: str | None,
        sha: str | None,
        author: Identity | None,
        committer: Identity | None,
    ) -> tuple[Commit, bool]:
        """Commit `content` at `path`; the commit and whether the file is new (201, else 200)."""
        with self.lock:
            name = branch or repo.default_branch
            if name not in repo.branches:
                raise GitHubError(404, f"Branch {name} not found")
            head = repo.head(name)
            old = head.tree.get(path)
            if old is not None:
                if not sha:
                    raise GitHubError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
                if sha != blob_sha(old):
                    raise GitHubError(409, f"{path} does not match {sha}")
            moment = _now()
            who = committer or author or self._me(moment)
            tree = {**head.tree, path: content}
            change = "added" if old is None else "modified"
            commit = self._commit(repo, message, author or who, who, [head.sha], tree, [(path, change)])
            repo.branches[name] = commit.sha
            return commit, old is None

    def delete_file(
        self,
        repo: Repository,
        path: str,
        message: str,
        *,
        branch: str | None,
        sha: str | None,
        author: Identity | None,
        committer: Identity | None,
    ) -> Commit:
        with self.lock:
            name = branch or repo.default_branch
            if name not in repo.branches:
                raise GitHubError(404, f"Branch {name} not found")
            head = repo.head(name)
            if path not in head.tree:
                raise _not_found()
            if not sha:
                raise GitHubError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
            if sha != blob_sha(head.tree[path]):
                raise GitHubError(409, f"{path} does not match {sha}")
            who = committer or author or self._me(_now())
            tree = {p: d for p, d in head.tree.items() if p != path}
            commit = self._commit(repo, message, author or who, who, [head.sha], tree, [(path, "removed")])
            repo.branches[name] = commit.sha
            return commit

    def _commit(
        self,
        repo: Repository,
        message: str,
        author: Identity,
        committer: Identity,
        parents: list[str],
        tree: dict[str, bytes],
        changes: list[tuple[str, str]] | None = None,
    ) -> Commit:
        commit = Commit("", message, author, committer, parents, tree, changes or [(p, "added") for p in tree])
        text = (
            f"tree {commit.tree_sha}\n"
            + "".join(f"parent {p}\n" for p in parents)
            + f"author {author.name} <{author.email}> {int(author.date.timestamp())} +0000\n"
            + f"committer {committer.name} <{committer.email}> {int(committer.date.timestamp())} +0000\n"
            + f"serial {next(self._commit_serial)}\n\n{message}"
        )
        commit.sha = hashlib.sha1(text.encode()).hexdigest()
        repo.commits[commit.sha] = commit
        return commit


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
        return True
    except binascii.Error:
        return False


# --- HTTP ------------------------------------------------------------------------------------------

Response = tuple[int, Any]
"""(status, JSON body or None)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Go's client expects
    server: _Server
    ROUTES: ClassVar[list[tuple[str, re.Pattern[str], str]]] = [
        (method, re.compile(f"^/api/v3{pattern}$"), name)
        for method, pattern, name in [
            ("GET", r"/user", "get_user"),
            ("GET", r"/orgs/(?P<org>[^/]+)", "get_org"),
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)", "get_repo"),
            ("POST", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/keys", "post_key"),
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/keys/(?P<id>\d+)", "get_key"),
            ("DELETE", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/keys/(?P<id>\d+)", "delete_key"),
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/secrets/public-key", "get_public_key"),
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/secrets/(?P<name>[^/]+)", "get_secret"),
            ("PUT", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/secrets/(?P<name>[^/]+)", "put_secret"),
            ("DELETE", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/secrets/(?P<name>[^/]+)", "delete_secret"),
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/branches/(?P<branch>.+)", "get_branch"),
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/contents/(?P<path>.+)", "get_contents"),
            ("PUT", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/contents/(?P<path>.+)", "put_contents"),
            ("DELETE", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/contents/(?P<path>.+)", "delete_contents"),
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/commits/(?P<sha>[^/]+)", "get_commit"),
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/environments/(?P<env>[^/]+)", "get_environment"),
            ("PUT", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/environments/(?P<env>[^/]+)", "put_environment"),
            ("DELETE", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/environments/(?P<env>[^/]+)", "delete_environment"),
            *[
                (method, prefix + suffix, name)
                for prefix in (
                    r"/repositories/(?P<repo_id>\d+)/environments/(?P<env>[^/]+)/secrets",
                    r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/environments/(?P<env>[^/]+)/secrets",
                )
                for method, suffix, name in (
                    ("GET", "/public-key", "get_env_public_key"),
                    ("GET", r"/(?!public-key$)(?P<name>[^/]+)", "get_env_secret"),
                    ("PUT", r"/(?!public-key$)(?P<name>[^/]+)", "put_env_secret"),
                    ("DELETE", r"/(?!public-key$)(?P<name>[^/]+)", "delete_env_secret"),
                )
            ],
        ]
    ]

    @property
    def model(self) -> GitHubModel:
        return self.server.model

    def log_message(self, format: str, *args: Any) -> None:
        return None  # the model keeps the request log

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.query = {k: v[0] for k, v in parse_qs(split.query).items()}
        self.base = f"http://{self.headers.get('Host', 'localhost')}/api/v3"
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, body = self._answer(split.path, raw)
        data = b"" if body is None else json.dumps(body).encode()
        etag = f'W/"{hashlib.sha256(data).hexdigest()}"'
        if status == 200 and self.command == "GET" and self.headers.get("If-None-Match") == etag:
            status, data = 304, b""  # GitHub's conditional requests
        with self.model.lock:
            self.model.requests.append((self.command, split.path, status))
        self._send(status, data, etag)

    def _route(self, path: str) -> tuple[str, re.Match[str]] | None:
        for method, pattern, name in self.ROUTES:
            match = pattern.match(path)
            if match and method == self.command:
                return name, match
        return None

    def _answer(self, path: str, raw: bytes) -> Response:
        route = self._route(path)
        if route is None:
            with self.model.lock:
                self.model.unknown_requests.append(f"{self.command} {self.path}")
            return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}
        name, match = route
        try:
            self.model.authorized(self.headers.get("Authorization"))
            self.body = json.loads(raw) if raw else {}
            args = {key: unquote(value) for key, value in match.groupdict().items()}
            return getattr(self, name)(**args)
        except GitHubError as error:
            body: dict[str, Any] = {"message": error.message}
            if error.errors:
                body["errors"] = error.errors
            return error.status, {**body, "documentation_url": DOCS, "status": str(error.status)}
        except Exception as error:
            with self.model.lock:
                self.model.server_errors.append(f"{self.command} {self.path}: {error!r}")
            return 500, {"message": "Server Error", "documentation_url": DOCS, "status": "500"}

    def version_string(self) -> str:
        return "GitHub.com"

    def _send(self, status: int, data: bytes, etag: str) -> None:
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        if self.command == "GET" and status in (200, 304):
            self.send_header("ETag", etag)
        self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # --- representations ----------------------------------------------------------------------

    def _owner(self) -> dict[str, Any]:
        kind = "Organization" if self.model.organization else "User"
        return {"login": self.model.owner, "id": 583231, "type": kind, "url": f"{self.base}/users/{self.model.owner}"}

    def _repo_url(self, repo: Repository) -> str:
        return f"{self.base}/repos/{self.model.owner}/{repo.name}"

    def _key_json(self, repo: Repository, key: DeployKey) -> dict[str, Any]:
        return {
            "id": key.id,
            "key": key.key,
            "url": f"{self._repo_url(repo)}/keys/{key.id}",
            "title": key.title,
            "verified": True,
            "created_at": _iso(key.created_at),
            "read_only": key.read_only,
            "added_by": self.model.user_login,
            "last_used": None,
            "enabled": True,
        }

    def _content_json(self, repo: Repository, path: str, data: bytes, ref: str) -> dict[str, Any]:
        url = f"{self._repo_url(repo)}/contents/{quote(path)}?ref={quote(ref)}"
        html = self.base.removesuffix("/api/v3")
        return {
            "type": "file",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": blob_sha(data),
            "size": len(data),
            "url": url,
            "html_url": f"{html}/{self.model.owner}/{repo.name}/blob/{ref}/{path}",
            "git_url": f"{self._repo_url(repo)}/git/blobs/{blob_sha(data)}",
            "download_url": f"{html}/{self.model.owner}/{repo.name}/raw/{ref}/{path}",
            "_links": {"self": url, "git": f"{self._repo_url(repo)}/git/blobs/{blob_sha(data)}"},
        }

    def _git_commit_json(self, repo: Repository, commit: Commit) -> dict[str, Any]:
        def person(who: Identity) -> dict[str, str]:
            return {"name": who.name, "email": who.email, "date": _iso(who.date)}

        return {
            "sha": commit.sha,
            "url": f"{self._repo_url(repo)}/git/commits/{commit.sha}",
            "author": person(commit.author),
            "committer": person(commit.committer),
            "message": commit.message,
            "tree": {"sha": commit.tree_sha, "url": f"{self._repo_url(repo)}/git/trees/{commit.tree_sha}"},
            "parents": [{"sha": p, "url": f"{self._repo_url(repo)}/git/commits/{p}"} for p in commit.parents],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
        }

    # --- endpoints -------------------------------------------------------------------------------

    def get_user(self) -> Response:
        m = self.model
        return 200, {"login": m.user_login, "id": 583230, "type": "User", "name": m.user_name, "email": m.user_email}

    def get_org(self, org: str) -> Response:
        if not self.model.organization or org.lower() != self.model.owner.lower():
            raise _not_found()
        return 200, {**self._owner(), "name": self.model.owner, "description": None}

    def get_repo(self, owner: str, repo: str) -> Response:
        r = self.model.repository(owner, repo)
        return 200, {
            "id": r.id,
            "node_id": base64.b64encode(f"010:Repository{r.id}".encode()).decode(),
            "name": r.name,
            "full_name": f"{self.model.owner}/{r.name}",
            "owner": self._owner(),
            "private": True,
            "visibility": "private",
            "archived": False,
            "disabled": False,
            "default_branch": r.default_branch,
            "url": self._repo_url(r),
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
        }

    def post_key(self, owner: str, repo: str) -> Response:
        r = self.model.repository(owner, repo)
        if not isinstance(self.body.get("key"), str):
            raise GitHubError(422, 'Invalid request.\n\n"key" wasn\'t supplied.')
        read_only = self.body.get("read_only", False)
        key = self.model.add_deploy_key(r, self.body["key"], str(self.body.get("title") or ""), bool(read_only))
        return 201, self._key_json(r, key)

    def get_key(self, owner: str, repo: str, id: str) -> Response:
        r = self.model.repository(owner, repo)
        return 200, self._key_json(r, self.model.deploy_key(r, int(id)))

    def delete_key(self, owner: str, repo: str, id: str) -> Response:
        self.model.remove_deploy_key(self.model.repository(owner, repo), int(id))
        return 204, None

    def get_public_key(self, owner: str, repo: str) -> Response:
        r = self.model.repository(owner, repo)
        key = base64.b64encode(bytes(r.secrets_key.public_key)).decode()
        return 200, {"key_id": r.secrets_key_id, "key": key}

    def get_secret(self, owner: str, repo: str, name: str) -> Response:
        secret = self.model.secret(self.model.repository(owner, repo), name)
        return 200, {"name": secret.name, "created_at": _iso(secret.created_at), "updated_at": _iso(secret.updated_at)}

    def put_secret(self, owner: str, repo: str, name: str) -> Response:
        r = self.model.repository(owner, repo)
        for required in ("encrypted_value", "key_id"):
            if not isinstance(self.body.get(required), str):
                raise GitHubError(422, f'Invalid request.\n\n"{required}" wasn\'t supplied.')
        created = self.model.put_secret(r, name, self.body["encrypted_value"], self.body["key_id"])
        return (201, {}) if created else (204, None)

    def delete_secret(self, owner: str, repo: str, name: str) -> Response:
        self.model.delete_secret(self.model.repository(owner, repo), name)
        return 204, None

    def get_branch(self, owner: str, repo: str, branch: str) -> Response:
        r = self.model.repository(owner, repo)
        head = self.model.branch(r, branch)
        return 200, {
            "name": branch,
            "commit": {"sha": head.sha, "url": f"{self._repo_url(r)}/commits/{head.sha}"},
            "protected": False,
            "_links": {"self": f"{self._repo_url(r)}/branches/{branch}"},
        }

    def get_contents(self, owner: str, repo: str, path: str) -> Response:
        r = self.model.repository(owner, repo)
        ref, commit = self.model.ref_commit(r, self.query.get("ref"))
        data = commit.tree.get(path)
        if data is None:
            raise _not_found()
        encoded = base64.encodebytes(data).decode()  # GitHub wraps the base64 at 60-76 columns too
        return 200, {**self._content_json(r, path, data, ref), "encoding": "base64", "content": encoded}

    def _identities(self) -> tuple[Identity | None, Identity | None]:
        moment = _now()

        def who(key: str) -> Identity | None:
            value = self.body.get(key)
            if not isinstance(value, dict):
                return None
            if not value.get("name") or not value.get("email"):
                raise GitHubError(422, f"Invalid request.\n\n{key} needs a name and an email.")
            return Identity(value["name"], value["email"], moment)

        return who("author"), who("committer")

    def put_contents(self, owner: str, repo: str, path: str) -> Response:
        r = self.model.repository(owner, repo)
        for required in ("message", "content"):
            if not isinstance(self.body.get(required), str):
                raise GitHubError(422, f'Invalid request.\n\n"{required}" wasn\'t supplied.')
        try:
            content = base64.b64decode(self.body["content"], validate=True)
        except binascii.Error:
            raise GitHubError(422, "Invalid request.\n\ncontent is not valid Base64") from None
        author, committer = self._identities()
        commit, created = self.model.put_file(
            r,
            path,
            content,
            self.body["message"],
            branch=self.body.get("branch"),
            sha=self.body.get("sha"),
            author=author,
            committer=committer,
        )
        branch = self.body.get("branch") or r.default_branch
        return (201 if created else 200), {
            "content": self._content_json(r, path, content, branch),
            "commit": {**self._git_commit_json(r, commit), "html_url": f"{self._repo_url(r)}/commit/{commit.sha}"},
        }

    def delete_contents(self, owner: str, repo: str, path: str) -> Response:
        r = self.model.repository(owner, repo)
        if not isinstance(self.body.get("message"), str):
            raise GitHubError(422, 'Invalid request.\n\n"message" wasn\'t supplied.')
        author, committer = self._identities()
        commit = self.model.delete_file(
            r,
            path,
            self.body["message"],
            branch=self.body.get("branch"),
            sha=self.body.get("sha"),
            author=author,
            committer=committer,
        )
        return 200, {"content": None, "commit": self._git_commit_json(r, commit)}

    def get_commit(self, owner: str, repo: str, sha: str) -> Response:
        r = self.model.repository(owner, repo)
        commit = self.model.commit(r, sha)
        files = [
            {"sha": blob_sha(commit.tree.get(path, b"")), "filename": path, "status": status}
            for path, status in commit.changes
        ]
        return 200, {
            "sha": commit.sha,
            "commit": self._git_commit_json(r, commit),
            "url": f"{self._repo_url(r)}/commits/{commit.sha}",
            "author": {"login": self.model.user_login},
            "committer": {"login": self.model.user_login},
            "parents": [{"sha": p, "url": f"{self._repo_url(r)}/commits/{p}"} for p in commit.parents],
            "files": files,
        }

    def _env_json(self, repo: Repository, env: Environment) -> dict[str, Any]:
        url = f"{self._repo_url(repo)}/environments/{quote(env.name, safe='')}"
        html, name = self.base.removesuffix("/api/v3"), quote(env.name)
        rules: list[dict[str, Any]] = []
        if env.wait_timer:
            rules.append(
                {"id": env.id * 10 + 1, "node_id": "GA_wait", "type": "wait_timer", "wait_timer": env.wait_timer}
            )
        if env.deployment_branch_policy is not None:
            rules.append({"id": env.id * 10 + 3, "node_id": "GA_branch", "type": "branch_policy"})
        return {
            "id": env.id,
            "node_id": base64.b64encode(f"010:Environment{env.id}".encode()).decode(),
            "name": env.name,
            "url": url,
            "html_url": f"{html}/{self.model.owner}/{repo.name}/deployments/activity_log?environments_filter={name}",
            "created_at": _iso(env.created_at),
            "updated_at": _iso(env.updated_at),
            "can_admins_bypass": env.can_admins_bypass,
            "protection_rules": rules,
            "deployment_branch_policy": env.deployment_branch_policy,
        }

    def get_environment(self, owner: str, repo: str, env: str) -> Response:
        r = self.model.repository(owner, repo)
        return 200, self._env_json(r, self.model.environment(r, env))

    def put_environment(self, owner: str, repo: str, env: str) -> Response:
        r = self.model.repository(owner, repo)
        return 200, self._env_json(r, self.model.put_environment(r, env, self.body))

    def delete_environment(self, owner: str, repo: str, env: str) -> Response:
        self.model.delete_environment(self.model.repository(owner, repo), env)
        return 204, None

    def _env(
        self, env: str, repo_id: str | None = None, owner: str | None = None, repo: str | None = None
    ) -> Environment:
        r = self.model.repository_by_id(repo_id) if repo_id else self.model.repository(owner or "", repo or "")
        return self.model.environment(r, env)

    def get_env_public_key(self, env: str, **where: str) -> Response:
        e = self._env(env, **where)
        return 200, {"key_id": e.secrets_key_id, "key": base64.b64encode(bytes(e.secrets_key.public_key)).decode()}

    def get_env_secret(self, env: str, name: str, **where: str) -> Response:
        e = self._env(env, **where)
        with self.model.lock:
            secret = e.secrets.get(name)
        if secret is None:
            raise _not_found()
        return 200, {"name": secret.name, "created_at": _iso(secret.created_at), "updated_at": _iso(secret.updated_at)}

    def put_env_secret(self, env: str, name: str, **where: str) -> Response:
        e = self._env(env, **where)
        for required in ("encrypted_value", "key_id"):
            if not isinstance(self.body.get(required), str):
                raise GitHubError(422, f'Invalid request.\n\n"{required}" wasn\'t supplied.')
        created = self.model.put_environment_secret(e, name, self.body["encrypted_value"], self.body["key_id"])
        return (201, {}) if created else (204, None)

    def delete_env_secret(self, env: str, name: str, **where: str) -> Response:
        e = self._env(env, **where)
        with self.model.lock:
            if e.secrets.pop(name, None) is None:
                raise _not_found()
        return 204, None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: GitHubModel) -> None:
        self.model = model
        super().__init__(address, _Handler)


class GitHubAPI:
    """Serves a `GitHubModel` on 127.0.0.1 from a thread: `start()`, `stop()`, or `with`."""

    def __init__(self, model: GitHubModel, host: str = "127.0.0.1", port: int = 0) -> None:
        self.model = model
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> GitHubAPI:
        self._server = _Server(self._address, self.model)
        self._thread = threading.Thread(target=self._server.serve_forever, name="github-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def url(self) -> str:
        """The provider's `baseUrl`: a GitHub Enterprise URL, so REST lives under /api/v3/."""
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> GitHubAPI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
