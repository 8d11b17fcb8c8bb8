"""A Hetzner setting changed after the server exists: what the program decides before it declares
anything (components/server.py's plan_replacement, from what getServers finds), the graph it then
declares, and Hetzner's naming rules in settings. Mocks only: what the engine does with the graph
(update, replace, nothing) is shown on the real CLI in tests/e2e/test_hetzner_settings.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from components import server as server_module
from components.server import CurrentServer, ServerType, plan_replacement
from components.settings import HetznerServer, SettingError, hetzner_server_name, load_settings
from tests.unit.conftest import SERVER_TYPES, StackRun
from tests.unit.keys import ed25519_pair, ed25519_public

SERVER = "hcloud:index/server:Server"
LABELS = {"managed-by": "django-vps", "app": "blog", "stack": "prod"}
NAME = "blog-prod-fsn1-debian-12"
MINIMAL = {"domain": "blog.com", "repository": "sdelquin/blog", "letsencryptEmail": "admin@blog.com"}


def on_hetzner(**changed: Any) -> dict[str, Any]:
    """The prod example's server as getServers lists it (camelCase), with `changed` fields."""
    return {"id": 4711, "name": NAME, "location": "fsn1", "image": "debian-12", "serverType": "cx23",
            "primaryDiskSize": 40, "labels": LABELS, **changed}  # fmt: skip


def current(**changed: Any) -> CurrentServer:
    fields = {"id": 4711, "name": NAME, "location": "fsn1", "image": "debian-12", "server_type": "cx23",
              "disk_gb": 40, **changed}  # fmt: skip
    return CurrentServer(**fields)


def spec(**changed: Any) -> HetznerServer:
    fields = {"server_type": "cx23", "image": "debian-12", "location": "fsn1", "backups": False,
              "admin_ssh_keys": (), **changed}  # fmt: skip
    return HetznerServer(**fields)


def type_of(name: str) -> ServerType:
    return ServerType(*SERVER_TYPES[name])


def refusal(current_server: CurrentServer, wanted: HetznerServer) -> str:
    with pytest.raises(SettingError) as caught:
        plan_replacement(current_server, wanted, type_of)
    message = str(caught.value)
    assert "\n" not in message
    return message


def only_custom(run_or_mocks: Any) -> list[str]:
    return [r.name for r in run_or_mocks.resources if not r.typ.startswith("django-vps:")]


# --- the decision, as a plain function ------------------------------------------------------------


def test_no_server_yet_or_the_same_one_replaces_nothing() -> None:
    assert plan_replacement(None, spec(), type_of) is False
    assert plan_replacement(None, spec(replace_server=True), type_of) is False  # nothing to replace
    assert plan_replacement(current(), spec(), type_of) is False
    assert plan_replacement(current(), spec(backups=True), type_of) is False


@pytest.mark.parametrize(
    ("wanted", "key", "change"),
    [
        (spec(location="nbg1"), "location", "location fsn1 -> nbg1"),
        (spec(image="debian-13"), "image", "image debian-12 -> debian-13"),
        (spec(location="hel1", image="debian-13"), "location", "location fsn1 -> hel1, image debian-12 -> debian-13"),
    ],
)
def test_a_location_or_image_change_is_refused_unless_confirmed(wanted: HetznerServer, key: str, change: str) -> None:
    message = refusal(current(), wanted)
    # One line: the setting, the old and the new value, what is lost, and how to confirm.
    assert message.startswith(f"django-vps:{key}: {change} needs a new server"), message
    assert f"SQLite database, media and all else on {NAME} do not move" in message
    assert "pulumi config set replaceServer true" in message


def test_a_confirmed_location_or_image_change_replaces_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr(server_module.pulumi.log, "warn", lambda message, *args, **kwargs: warned.append(message))
    assert plan_replacement(current(), spec(location="nbg1", replace_server=True), type_of) is True
    assert plan_replacement(current(), spec(image="debian-13", replace_server=True), type_of) is True
    assert len(warned) == 2 and "location fsn1 -> nbg1: a new server replaces" in warned[0]
    assert "unset replaceServer afterwards" in warned[0]


def test_a_confirmation_with_nothing_to_replace_is_refused_so_that_it_cannot_stay_behind() -> None:
    message = refusal(current(), spec(replace_server=True))
    assert message.startswith(f"django-vps:replaceServer: is true, but {NAME} already is fsn1, debian-12"), message
    assert "pulumi config rm replaceServer" in message


def test_a_server_type_change_is_in_place_within_what_hetzner_can_do() -> None:
    assert plan_replacement(current(), spec(server_type="cx33"), type_of) is False  # bigger: in place
    assert plan_replacement(current(server_type="cx33", disk_gb=80), spec(server_type="cpx21"), type_of) is False
    # Hetzner cannot shrink a disk; the provider would fail after powering the server off.
    message = refusal(current(server_type="cx33", disk_gb=80), spec(server_type="cx23"))
    assert message.startswith("django-vps:serverType: cx33 -> cx23 would shrink the server's disk (80 GB -> 40 GB)")
    # ...nor change the architecture.
    message = refusal(current(), spec(server_type="cax11"))
    assert message.startswith("django-vps:serverType: cx23 -> cax11 changes the architecture (x86 -> arm)")


def test_an_image_hetzner_no_longer_names_is_no_change() -> None:
    assert plan_replacement(current(image=""), spec(), type_of) is False


# --- the graph ------------------------------------------------------------------------------------


def server_of(run: StackRun) -> Any:
    (found,) = run.mocks.of_type(SERVER)
    return found


def test_the_server_is_found_by_the_stacks_labels_before_anything_is_declared(run_stack) -> None:
    run = run_stack(hetzner_servers=(on_hetzner(),))
    (call, *others) = run.mocks.calls
    assert call.token == "hcloud:index/getServers:getServers" and not others
    assert call.args["withSelector"] == "managed-by=django-vps,app=blog,stack=prod"
    # The same server: location and image stay ignored, nothing can replace it.
    assert set(server_of(run).registration.ignore_changes) == {"userData", "sshKeys", "location", "image"}
    # Another stack's server (other labels) is not the stack's.
    run = run_stack(hetzner_servers=(on_hetzner(location="nbg1", labels={**LABELS, "stack": "staging"}),))
    assert server_of(run).inputs["location"] == "fsn1"


@pytest.mark.parametrize(("setting", "value"), [("location", "nbg1"), ("image", "debian-13")])
def test_an_unconfirmed_change_stops_the_run_before_any_resource_is_declared(
    run_stack, monkeypatch: pytest.MonkeyPatch, setting: str, value: str
) -> None:
    declared: list[str] = []
    original = server_module.plan_replacement

    def spy(*args: Any, **kwargs: Any) -> bool:
        declared.extend(only_custom(recorder))
        return original(*args, **kwargs)

    from tests.unit import conftest

    recorder = conftest.RecordingMocks()
    monkeypatch.setattr(conftest, "RecordingMocks", lambda **kwargs: recorder.__init__(**kwargs) or recorder)
    monkeypatch.setattr(server_module, "plan_replacement", spy)
    with pytest.raises(Exception, match=rf"django-vps:{setting}: {setting} \S+ -> {re.escape(value)} needs a new"):
        run_stack(hetzner_servers=(on_hetzner(),), **{setting: value})
    assert declared == [], "resources were declared before the decision"
    assert only_custom(recorder) == [], "a refused change declared resources"
    # Not vacuous: the recorder is the run's (the components before the decision are in it).
    assert {r.typ for r in recorder.resources} == {"django-vps:site:DjangoSite", "django-vps:server:Server"}


def test_a_confirmed_change_ignores_nothing_and_names_the_new_server_apart(run_stack) -> None:
    run = run_stack(hetzner_servers=(on_hetzner(),), location="nbg1", replaceServer="true")
    server = server_of(run)
    # Nothing ignored: location is ForceNew (a replacement) and the new server boots with the
    # user data and key of now; create-before-delete under a name the old server does not hold.
    assert server.registration.ignore_changes == ()
    assert server.registration.delete_before_replace is False
    assert server.inputs["location"] == "nbg1" and server.inputs["name"] == "blog-prod-nbg1-debian-12" != NAME


def test_server_type_and_backups_change_the_same_server(run_stack) -> None:
    run = run_stack(hetzner_servers=(on_hetzner(),), serverType="cx33", backups="true")
    server = server_of(run)
    assert (server.inputs["serverType"], server.inputs["backups"]) == ("cx33", True)
    assert set(server.registration.ignore_changes) == {"userData", "sshKeys", "location", "image"}
    assert [c.token for c in run.mocks.calls].count("hcloud:index/getServerType:getServerType") == 2
    with pytest.raises(Exception, match=r"django-vps:serverType: cx23 -> cax11 changes the architecture"):
        run_stack(hetzner_servers=(on_hetzner(),), serverType="cax11")


def test_after_a_failed_replacement_the_server_as_configured_is_the_current_one(run_stack) -> None:
    """The old server outlives a replacement that failed before its end: both carry the labels."""
    new = on_hetzner(id=4712, name="blog-prod-nbg1-debian-12", location="nbg1")
    run = run_stack(hetzner_servers=(on_hetzner(), new), location="nbg1")  # no confirmation needed again
    assert set(server_of(run).registration.ignore_changes) == {"userData", "sshKeys", "location", "image"}


def test_an_existing_host_asks_hetzner_nothing(run_stack) -> None:
    run = run_stack(
        existingHost="203.0.113.10",
        existingHostKey=ed25519_public("existing-host"),
        existingHostPrivateKey=ed25519_pair("existing-login")[0],
        serverType=None,
        location=None,
        backups=None,
    )
    assert run.mocks.calls == [] and not run.mocks.of_type(SERVER)


# --- Hetzner's naming rules, in settings ----------------------------------------------------------


def load(stack: str = "prod", **values: str) -> Any:
    config = {f"django-vps:{key}": value for key, value in {**MINIMAL, **values}.items()}
    return load_settings(config.get, stack=stack)


def settings_error(stack: str = "prod", **values: str) -> str:
    with pytest.raises(Exception) as caught:
        load(stack, **values)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_server_name_is_a_hostname_label() -> None:
    assert hetzner_server_name("blog-prod", "fsn1", "ubuntu-24.04") == "blog-prod-fsn1-ubuntu-2404"
    assert load().server is not None
    message = settings_error(appName="my_blog")
    assert message.startswith("django-vps:appName: 'my_blog' makes the server's Hetzner name 'my_blog-prod-"), message
    assert "e.g. 'my-blog'" in message
    # Derived from the repository's name, the same.
    assert settings_error(repository="acme/shop_front").startswith("django-vps:appName: 'shop_front' makes")
    # ...and fine where no server is made.
    existing = {"existingHost": "203.0.113.10", "existingHostKey": ed25519_public("existing-host"),
                "existingHostPrivateKey": ed25519_pair("existing-login")[0]}  # fmt: skip
    assert load(appName="my_blog", **existing).app_name == "my_blog"


def test_the_stack_name_must_make_a_hostname_and_label_values() -> None:
    message = settings_error(stack="Prod_EU")
    assert message.startswith("django-vps: the stack name 'Prod_EU' makes the server's Hetzner name"), message
    assert "pulumi stack rename" in message
    long_stack = "production-" + "x" * 60
    message = settings_error(stack=long_stack)
    assert message.startswith("django-vps: the stack name 'production-xxx"), message
    assert "no Hetzner label value (the stack label): at most 63 characters" in message
    # 63 characters in all: appName-stack-location-image.
    fits = "s" * (63 - len("blog--fsn1-debian-12"))
    assert load(stack=fits).server is not None
    message = settings_error(stack=fits + "s")
    assert message.startswith(f"django-vps:appName: with the stack {fits + 's'!r} the server's Hetzner name"), message
    assert "has 64 characters" in message


def test_an_app_name_that_is_no_label_value_is_refused_wherever_labels_go() -> None:
    existing = {"existingHost": "203.0.113.10", "existingHostKey": ed25519_public("existing-host"),
                "existingHostPrivateKey": ed25519_pair("existing-login")[0]}  # fmt: skip
    # Hetzner DNS records carry the labels too.
    message = settings_error(appName="blog_", **existing)
    assert message == "django-vps:appName: 'blog_' is no Hetzner label value (the app label): end it with a-z or 0-9"
    # Without Hetzner DNS nothing of the stack's is on Hetzner: no rule to keep.
    assert load(appName="blog_", manageDns="false", **existing).app_name == "blog_"
    assert load(stack="x" * 80, manageDns="false", **existing).existing_host is not None
